package frontdoor

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/hangar-oss/hangar/internal/evloop"
)

// h2Stream is a request of an HTTP/2 connection. Its protocol state is the
// loop's (the connection's task and the stream's own); what its
// producer queues (the stream's task, or a net/http handler's goroutine)
// is under mu.
type h2Stream struct {
	h          *h2Conn
	id         uint32
	sendWindow int64     // the client's window for the stream
	recvWindow int64     // what the client may still send
	recvOwed   int64     // consumed, not yet given back
	remoteDone bool      // the client ended its side (or the stream was reset)
	localDone  bool      // the server did
	dead       bool      // reset: its work is canceled
	blocked    bool      // in h.blocked
	finished   bool      // the producer is done: the request's body is not read any more
	started    bool      // the response's HEADERS went out: DATA may follow
	stalledAt  time.Time // since when its bytes wait for a window; zero: they do not

	mu       sync.Mutex
	sendq    bytes.Buffer // response bytes not yet framed
	end      bool         // the producer's last byte is in sendq
	trailers []hpack.HeaderField
	gone     bool       // dead, for the producer
	posted   bool       // a drain is posted to the loop (bridge)
	cond     *sync.Cond // the bridge's producer waits on it for room

	// The router's raw path (serveFast).
	task     *evloop.Task
	cancel   context.CancelFunc
	waitRoom bool // the task waits for room in sendq
	isHead   bool
	host     []byte // canonical
	req      []byte // the HTTP/1.1 request head for the executor
	resp     h1Response

	body *h2Body // the bridge's request body, if any; set before its handler runs
}

// kill cancels the stream's work: its task's waits fail, its handler's
// context ends, its body and writer fail.
func (s *h2Stream) kill() {
	if s.dead {
		return
	}
	s.dead = true
	if s.cancel != nil {
		s.cancel()
	}
	if s.task != nil && !s.finished {
		s.task.CancelSoon()
	}
	if s.body != nil {
		s.body.fail(errStreamReset)
	}
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()
	s.room()
}

var errStreamReset = errors.New("http2: stream reset")

// room tells the producer that sendq has room, or that the stream ended.
func (s *h2Stream) room() {
	if s.cond != nil {
		s.mu.Lock()
		s.cond.Broadcast()
		s.mu.Unlock()
		return
	}
	if s.waitRoom {
		s.waitRoom = false
		s.task.Schedule()
	}
}

// h2IdleWorkers is how many idle workers (h2Worker) a connection keeps: a
// burst of streams leaves no more behind.
const h2IdleWorkers = 16

// h2Worker is a loop task that serves streams on the router's raw path,
// one after the other: a stream does not pay for a task of its own (a
// coroutine and its stack).
type h2Worker struct {
	next *h2Stream // the stream to serve next; nil: none yet
}

// startFast serves s on the raw path: on an idle worker of the connection,
// or a new one.
func (h *h2Conn) startFast(s *h2Stream) {
	if n := len(h.idleWorkers); n > 0 {
		t := h.idleWorkers[n-1]
		h.idleWorkers = h.idleWorkers[:n-1]
		h.workers[t].next = s
		t.Schedule()
		return
	}
	w := &h2Worker{next: s}
	h.task.Go(func(t *evloop.Task) {
		h.workers[t] = w
		defer delete(h.workers, t)
		for {
			s := w.next
			w.next = nil
			s.serveFast(t)
			// A worker whose stream was reset may have been canceled:
			// its waits would fail from now on.
			if s.dead || h.closed || len(h.idleWorkers) >= h2IdleWorkers {
				return
			}
			h.idleWorkers = append(h.idleWorkers, t)
			for w.next == nil {
				if t.Park() != nil {
					return // the connection ended (closeAll)
				}
			}
		}
	})
}

// serveFast serves s on the router's raw path, as the worker task t.
func (s *h2Stream) serveFast(t *evloop.Task) {
	s.task = t
	h := s.h
	if s.dead {
		return // reset before it started
	}
	ctx, cancel := context.WithCancel(h.c.ctx)
	s.cancel = cancel
	defer func() {
		cancel()
		s.finished = true
		if s.resp.state != h1Done && !s.dead {
			// The response was cut, or never came.
			h.reset(s, http2.ErrCodeInternal)
		}
	}()
	s.resp.s = s
	bw := getWriter(&s.resp)
	defer putWriter(bw)
	h.s.proxy.ProxyHTTP1(evloop.WithTask(ctx, t), s.host, s.req, s.isHead, false, bw)
	bw.Flush()
}

// h1Response turns the HTTP/1.1 response the router writes for a stream
// (a head, then a body framed by Content-Length or chunked, trailers
// included) into HEADERS and DATA frames.
type h1Response struct {
	s     *h2Stream
	state h1State
	left  int64  // bytes of the body or chunk still to come
	head  []byte // the head, until it is whole
	line  []byte // a chunk's size line or a trailer, until it is whole
	// trailerBytes counts the trailers kept until the response ends: the
	// executor is the tenant's code, and HTTP/2 sends them in one block.
	trailerBytes int
}

type h1State uint8

const (
	h1Head      h1State = iota
	h1Length            // the body, r.left bytes to come
	h1ChunkSize         // a chunk's size line
	h1ChunkData         // a chunk's data, r.left bytes to come
	h1ChunkEnd          // the CRLF after a chunk
	h1Trailers          // after the last chunk: trailers, then an empty line
	h1Done
)

var errBadResponse = errors.New("http2: malformed response from the router")

// h2MaxTrailerBytes caps a response's trailers, held until its last chunk:
// the response is reset past it.
const h2MaxTrailerBytes = 64 << 10

func (r *h1Response) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if r.s.dead {
			return 0, errStreamReset
		}
		switch r.state {
		case h1Head:
			r.head = append(r.head, p...)
			end := headEnd(r.head)
			if end == 0 {
				if len(r.head) > 1<<20 {
					return 0, errBadResponse
				}
				return n, nil
			}
			if err := r.onHead(r.head[:end]); err != nil {
				return 0, err
			}
			p = r.head[end:]
		case h1Length, h1ChunkData:
			k := min(int64(len(p)), r.left)
			r.left -= k
			last := r.left == 0 && r.state == h1Length
			if r.left == 0 && last {
				r.state = h1Done
			} else if r.left == 0 {
				r.state = h1ChunkEnd
			}
			if err := r.data(p[:k], last); err != nil {
				return 0, err
			}
			p = p[k:]
		case h1ChunkSize, h1ChunkEnd, h1Trailers:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				if r.line = append(r.line, p...); len(r.line) > 64<<10 {
					return 0, errBadResponse
				}
				return n, nil
			}
			line := p[:i+1]
			p = p[i+1:]
			if len(r.line) > 0 {
				line = append(r.line, line...)
				r.line = line[:0]
			}
			if err := r.onLine(bytes.TrimRight(line, "\r\n")); err != nil {
				return 0, err
			}
		case h1Done:
			return 0, errBadResponse
		}
	}
	return n, nil
}

// onHead sends the response's head as HEADERS, and sets how its body
// comes.
func (r *h1Response) onHead(head []byte) error {
	s, h := r.s, r.s.h
	line, rest, ok := cutLine(head)
	if !ok || len(line) < 12 {
		return errBadResponse
	}
	status := line[9:12]
	code, err := strconv.Atoi(string(status))
	if err != nil {
		return errBadResponse
	}
	h.enc.WriteField(hpack.HeaderField{Name: ":status", Value: string(status)})
	r.state, r.left = h1Done, 0
	chunked := false
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return errBadResponse
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := splitHeader(line)
		if !ok {
			return errBadResponse
		}
		switch {
		case equalFold(name, "transfer-encoding"):
			chunked = true
			continue
		case equalFold(name, "content-length"):
			r.left, _ = strconv.ParseInt(string(value), 10, 64)
			if r.left > 0 {
				r.state = h1Length
			}
		case equalFold(name, "connection"), equalFold(name, "keep-alive"), equalFold(name, "proxy-connection"), equalFold(name, "upgrade"):
			continue
		}
		h.enc.WriteField(hpack.HeaderField{Name: lower(name), Value: string(value)})
	}
	if chunked {
		r.state = h1ChunkSize
	}
	if s.isHead || code == 204 || code == 304 {
		r.state = h1Done
	}
	end := r.state == h1Done
	h.writeBlock(s.id, end)
	s.started = true
	if end {
		s.localDone = true
		h.closeIfDone(s)
	}
	return nil
}

// onLine takes a line of the chunked framing.
func (r *h1Response) onLine(line []byte) error {
	switch r.state {
	case h1ChunkEnd:
		if len(line) != 0 {
			return errBadResponse
		}
		r.state = h1ChunkSize
	case h1ChunkSize:
		size, _, _ := bytes.Cut(line, []byte(";"))
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return errBadResponse
		}
		r.state, r.left = h1ChunkData, n
		if n == 0 {
			r.state = h1Trailers
		}
	case h1Trailers:
		s := r.s
		if len(line) > 0 {
			name, value, ok := splitHeader(line)
			if !ok {
				return errBadResponse
			}
			if r.trailerBytes += len(line); r.trailerBytes > h2MaxTrailerBytes {
				return errBadResponse
			}
			s.trailers = append(s.trailers, hpack.HeaderField{Name: lower(name), Value: string(value)})
			return nil
		}
		r.state = h1Done
		return r.data(nil, true)
	}
	return nil
}

// data queues body bytes for DATA frames, and the end after them when
// last; it waits while the stream's queue is full (the client's window
// closed, or out full).
func (r *h1Response) data(p []byte, last bool) error {
	s := r.s
	s.mu.Lock()
	s.sendq.Write(p)
	s.end = last
	s.mu.Unlock()
	s.h.drain(s)
	for s.sendq.Len() >= h2SendQueue && !s.dead {
		s.waitRoom = true
		if err := s.task.Park(); err != nil {
			return err
		}
	}
	if s.dead {
		return errStreamReset
	}
	return nil
}

// lower returns name in lowercase, as HTTP/2 sends field names.
func lower(name []byte) string { return strings.ToLower(string(name)) }
