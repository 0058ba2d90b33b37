package router

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"time"

	"github.com/hangar-oss/hangar/internal/evloop"
	"github.com/hangar-oss/hangar/internal/rawconn"
)

// The raw path: the front door parses plain HTTP/1.1 requests without a
// body itself (frontdoor.Proxy) and hands the router the request as it is
// to be sent, with the X-Forwarded-* headers already set; the router sends
// it to an executor over a pooled connection and relays the response to
// the client's buffered writer without building an http.Request, an
// http.Response or a header map.

// Routes reports whether host, canonical (lowercase, without port or
// trailing dot), has an app. It does not allocate.
func (r *Router) Routes(host []byte) bool {
	_, ok := (*r.table.Load())[string(host)]
	return ok
}

// ProxyHTTP1 sends req, a complete HTTP/1.1 request head without a body,
// to an executor of the app at host (canonical) and writes the response to
// w: a request whose executor refuses the connection goes to the next one,
// a failure before the response answers 502, and host without an app (its
// route just removed) answers 404. isHead says the request's method is
// HEAD (the response has no body); closing adds "Connection: close" to the
// response. It flushes w whenever it waits on the executor, so streams
// (server-sent events) reach the client as they come, and leaves the end
// of the response in w. When ctx ends (the client left), the executor's
// connection is closed; under an event loop's task (evloop.WithTask), the
// caller cancels the task too (Task.Cancel), which ends the wait for the
// executor. It reports whether the client's connection may
// carry another request: not after a response cut midway.
func (r *Router) ProxyHTTP1(ctx context.Context, host, req []byte, isHead, closing bool, w *bufio.Writer) (keepAlive bool) {
	start := time.Now()
	for _, o := range r.observers {
		o.RequestStarted()
	}
	a := (*r.table.Load())[string(host)]
	status, name := 0, ""
	defer func() {
		for _, o := range r.observers {
			o.RequestEnded(name, a != nil, status, time.Since(start))
		}
	}()
	if a == nil {
		name = string(host)
		status = 404
		writeError(w, status, "Not Found", "no application at "+name, closing)
		return !closing
	}
	name = a.host
	task := evloop.TaskFrom(ctx)
	p, err := a.admit(ctx, task)
	if err != nil {
		status = 502 // the client left while its request waited
		return false
	}
	defer p.release()
	first := p.i
	n := len(a.upstreams)
	for k := range n {
		u := a.upstreams[(first+k)%n]
		var wrote bool
		status, wrote, err = r.forwardRaw(ctx, task, u, req, isHead, closing, w, &p)
		switch {
		case err == nil:
			return !closing
		case wrote:
			// The status line is out: only closing the connection tells
			// the client the response is incomplete.
			r.logger.DebugContext(ctx, "response from upstream cut", "host", name, "upstream", u.addr, "err", err)
			return false
		case ctx.Err() != nil:
			status = 502
			return false
		case k < n-1 && isDialError(err):
			r.logger.DebugContext(ctx, "upstream refused the connection: trying the next one", "host", name, "upstream", u.addr, "err", err)
			continue
		}
		r.logger.WarnContext(ctx, "proxy to upstream", "host", name, "upstream", u.addr, "err", err)
		status = 502
		writeError(w, status, "Bad Gateway", fmt.Sprintf("application at %s is not reachable", name), closing)
		return !closing
	}
	return false // not reached: the last upstream's error is answered
}

// writeError writes a plain-text response, as http.Error would.
func writeError(w *bufio.Writer, status int, reason, msg string, closing bool) {
	fmt.Fprintf(w, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: %d\r\n", status, reason, len(msg)+1)
	if closing {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	w.WriteString(msg)
	w.WriteString("\n")
}

// forwardRaw sends req to u, under the event loop's task if not nil, and
// relays the response to w, giving p back once the response's head has
// come. wrote says whether any of the response went to w: if not, the
// caller may try another upstream or answer itself.
func (r *Router) forwardRaw(ctx context.Context, task *evloop.Task, u *backend, req []byte, isHead, closing bool, w *bufio.Writer, p *place) (status int, wrote bool, err error) {
	u.inflight.Add(1)
	defer u.inflight.Add(-1)
	p.forwarding()
	for retried := false; ; retried = true {
		var c *conn
		var reused bool
		if retried {
			c, err = u.dialOn(ctx, task)
		} else if c, reused = u.get(task != nil); c == nil {
			c, err = u.dialOn(ctx, task)
		}
		if err == nil && task != nil {
			err = c.bind(task)
		}
		if err != nil {
			return 0, false, err
		}
		// When ctx ends (the client left), the wait on the executor
		// ends: under a task, the loop cancels the task (no allocation
		// per request); otherwise a past deadline does.
		stopped := func() bool { return true }
		if task == nil {
			stopped = context.AfterFunc(ctx, func() { c.nc.SetReadDeadline(time.Unix(1, 0)) })
		}
		var reusable bool
		status, reusable, wrote, err = c.exchange(req, isHead, closing, w, p)
		c.bind(nil)
		if !stopped() || err != nil || !reusable {
			c.nc.Close()
		} else {
			c.put()
		}
		if err != nil && ctx.Err() != nil {
			return status, wrote, ctx.Err()
		}
		if err != nil && !wrote && reused && errors.Is(err, errBeforeResponse) {
			// An executor that closed the pooled connection while idle:
			// the request goes once more, on a new one.
			continue
		}
		return status, wrote, err
	}
}

// dialOn dials u; under an event loop's task, on a goroutine of its own,
// so that the loop does not wait for the executor to accept.
func (u *backend) dialOn(ctx context.Context, task *evloop.Task) (c *conn, err error) {
	if task == nil {
		return u.dial(ctx)
	}
	task.Await(func() { c, err = u.dial(ctx) })
	return c, err
}

// bind makes c's reads and writes wait through task (nil: the poller).
func (c *conn) bind(task *evloop.Task) error {
	raw, ok := c.nc.(*rawconn.Conn)
	if !ok {
		return nil
	}
	if task == nil {
		return raw.Bind(nil)
	}
	if err := raw.Bind(task); err != nil {
		c.nc.Close()
		return err
	}
	return nil
}

// framing is how a response's body ends.
type framing int

const (
	noBody    framing = iota // HEAD, 204, 304
	byLength                 // Content-Length
	byChunks                 // Transfer-Encoding: chunked
	byClosing                // neither: the body ends when the executor closes
)

// exchange writes req to c, reads the response's head, gives p back,
// writes the head to w rewritten for the client, then relays the body.
// reusable says whether c may carry another request.
func (c *conn) exchange(req []byte, isHead, closing bool, w *bufio.Writer, p *place) (status int, reusable, wrote bool, err error) {
	if _, err := c.nc.Write(req); err != nil {
		return 0, false, false, fmt.Errorf("%w: %w", errBeforeResponse, err)
	}
	if raw, ok := c.nc.(*rawconn.Conn); ok {
		// Under an event loop's task, the response is read in the next
		// turn, after the loop has served this one's other sockets. Read
		// at once, an executor that preempted the loop as the write woke
		// it has often answered already, and the request ends within
		// the turn: its place at the executor is back before the next
		// client's request is read, the admission limits never bind, and
		// one executor ends up serving every client in turn while the
		// others idle until the loop's next epoll_wait (docs/performance.md,
		// "Session 22").
		raw.Yield()
	}
	// The executor is the tenant's code: its header may take only so much
	// of Hangar's memory.
	c.lim.left = maxResponseHeaderBytes
	if _, err := c.br.Peek(1); err != nil {
		c.lim.left = math.MaxInt64
		return 0, false, false, fmt.Errorf("%w: %w", errBeforeResponse, err)
	}
	h, err := c.readHead(isHead, closing)
	c.lim.left = math.MaxInt64
	if cap(c.long) > 64<<10 {
		c.long = nil
	}
	if err != nil {
		return 0, false, false, err
	}
	p.release()
	w.Write(c.out)
	if cap(c.out) > 64<<10 {
		c.out = nil
	}
	switch h.framing {
	case byLength:
		err = c.copyN(w, h.length)
	case byChunks:
		err = c.copyChunks(w)
	case byClosing:
		err = c.copyUntilEOF(w)
	}
	return h.status, err == nil && h.reusable, true, err
}

// head is what the router needs of a response's head.
type head struct {
	status   int
	framing  framing
	length   int64
	reusable bool // the executor keeps the connection open after the body
}

// readHead reads the response's head, skipping informational (1xx)
// responses, and puts the head for the client in c.out: HTTP/1.1, without
// hop-by-hop headers and those its Connection header names, framed by
// Content-Length or chunked.
func (c *conn) readHead(isHead, closing bool) (head, error) {
	var h head
	for range max1xxResponses + 1 {
		line, err := c.readLine(maxResponseHeaderBytes)
		if err != nil {
			return h, err
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || (len(line) > 12 && line[12] != ' ') {
			return h, fmt.Errorf("malformed status line %q", truncate(line))
		}
		http10 := line[7] == '0'
		c64, ok := parseUint(line[9:12], 10)
		code := int(c64)
		if !ok || code < 100 {
			return h, fmt.Errorf("malformed status line %q", truncate(line))
		}
		out := append(append(c.out[:0], "HTTP/1.1"...), line[8:]...)
		out = append(out, "\r\n"...)
		// The header's lines, one per \n, to be filtered once the
		// Connection header is known.
		raw := c.raw[:0]
		for {
			line, err := c.readLine(maxResponseHeaderBytes)
			if err != nil {
				return h, err
			}
			if len(line) == 0 {
				break
			}
			if line[0] == ' ' || line[0] == '\t' || bytes.IndexByte(line, '\r') >= 0 {
				return h, errors.New("malformed response header: line folding or a bare CR")
			}
			raw = append(append(raw, line...), '\n')
		}
		c.raw = raw
		if code == 101 {
			return h, errors.New("101 Switching Protocols to a request without Upgrade")
		}
		if code < 200 {
			continue
		}
		c.out = out
		return c.frame(code, http10, isHead, closing)
	}
	return h, fmt.Errorf("more than %d informational (1xx) responses", max1xxResponses)
}

// frame decides how the response in c.raw (its header lines) is framed
// and appends its header for the client to c.out: without hop-by-hop
// headers and those its Connection header names, with Content-Length or
// chunked.
func (c *conn) frame(code int, http10, isHead, closing bool) (head, error) {
	out := c.out
	h := head{status: code, framing: byClosing, length: -1, reusable: !http10}
	var conn [][]byte // values of Connection headers
	chunked := false
	for line := range lines(c.raw) {
		name, value, ok := splitHeader(line)
		if !ok {
			return h, fmt.Errorf("malformed response header line %q", truncate(line))
		}
		switch {
		case equalFold(name, "connection"):
			conn = append(conn, value)
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				tok = bytes.TrimSpace(tok)
				if equalFold(tok, "close") {
					h.reusable = false
				} else if equalFold(tok, "keep-alive") && http10 {
					h.reusable = true
				}
			}
		case equalFold(name, "transfer-encoding"):
			if !equalFold(value, "chunked") {
				return h, fmt.Errorf("unsupported transfer encoding %q", truncate(value))
			}
			chunked = true
		case equalFold(name, "content-length"):
			n, ok := parseUint(value, 10)
			if !ok || (h.length >= 0 && n != h.length) {
				return h, fmt.Errorf("bad Content-Length %q", truncate(value))
			}
			h.length = n
		}
	}
	switch {
	case isHead || code == 204 || code == 304:
		h.framing = noBody
	case chunked:
		// With a Content-Length too, the executor and the router may
		// disagree on where the body ends: the connection is not reused.
		h.reusable = h.reusable && h.length < 0
		h.framing, h.length = byChunks, -1
	case h.length >= 0:
		h.framing = byLength
	default:
		h.reusable = false
	}
	for line := range lines(c.raw) {
		name, _, _ := splitHeader(line)
		if responseHopByHop(name) || named(conn, name) {
			continue
		}
		out = append(append(out, line...), "\r\n"...)
	}
	switch {
	case h.framing == byChunks || h.framing == byClosing || isHead && chunked:
		out = append(out, "Transfer-Encoding: chunked\r\n"...)
	case h.length >= 0:
		out = append(strconv.AppendInt(append(out, "Content-Length: "...), h.length, 10), "\r\n"...)
	}
	if closing {
		out = append(out, "Connection: close\r\n"...)
	}
	c.out = append(out, "\r\n"...)
	return h, nil
}

// responseHopByHop reports whether the response header name is one the
// router does not forward: the hop-by-hop headers, and the framing it
// writes itself. Trailer stays: the trailers it announces pass through
// with the chunks.
func responseHopByHop(name []byte) bool {
	for _, k := range [...]string{"connection", "proxy-connection", "keep-alive", "proxy-authenticate", "te", "transfer-encoding", "upgrade", "content-length"} {
		if equalFold(name, k) {
			return true
		}
	}
	return false
}

// named reports whether the Connection header values conn name k.
func named(conn [][]byte, k []byte) bool {
	for _, v := range conn {
		for f := range bytes.SplitSeq(v, []byte(",")) {
			if bytes.EqualFold(bytes.TrimSpace(f), k) {
				return true
			}
		}
	}
	return false
}

// lines yields the \n-terminated lines of raw, without their \n.
func lines(raw []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		for len(raw) > 0 {
			i := bytes.IndexByte(raw, '\n')
			if !yield(raw[:i]) {
				return
			}
			raw = raw[i+1:]
		}
	}
}

// splitHeader splits a header line into its name and trimmed value.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 || bytes.IndexByte(line[:i], ' ') >= 0 || bytes.IndexByte(line[:i], '\t') >= 0 {
		return nil, nil, false
	}
	return line[:i], bytes.Trim(line[i+1:], " \t"), true
}

// equalFold reports whether b is lower, in any case (ASCII).
func equalFold(b []byte, lower string) bool {
	if len(b) != len(lower) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}

// parseUint parses b, digits in base 10 or 16, without allocating; it
// fails on anything else, and past 2^62.
func parseUint(b []byte, base int64) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		var d int64
		switch {
		case '0' <= c && c <= '9':
			d = int64(c - '0')
		case base == 16 && 'a' <= c && c <= 'f':
			d = int64(c-'a') + 10
		case base == 16 && 'A' <= c && c <= 'F':
			d = int64(c-'A') + 10
		default:
			return 0, false
		}
		n = n*base + d
	}
	return n, true
}

func truncate(b []byte) []byte { return b[:min(len(b), 64)] }

// readLine returns the next line of the executor's response without its
// line end; it is valid until the next read. A line longer than limit bytes
// is an error: the executor is the tenant's code.
func (c *conn) readLine(limit int) ([]byte, error) {
	line, err := c.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		c.long = append(c.long[:0], line...)
		for err == bufio.ErrBufferFull {
			if len(c.long) > limit {
				return nil, fmt.Errorf("a line of the response longer than %d bytes", limit)
			}
			line, err = c.br.ReadSlice('\n')
			c.long = append(c.long, line...)
		}
		line = c.long
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	line = line[:len(line)-1]
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, nil
}
