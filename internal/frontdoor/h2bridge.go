package frontdoor

import (
	"bytes"
	"context"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// The streams of a loop's HTTP/2 connection that the router's raw path
// does not serve (a request body, the API's host coalesced onto an app's
// connection, a path or method it leaves alone) go to the net/http handler
// the HTTP/1.1 loop hands such requests to, on a goroutine of their own,
// as net/http's HTTP/2 server would run them: the request body comes from
// the loop's DATA frames (the client's window given back as the handler
// reads), and the response goes to the loop as HEADERS, DATA and trailers.

// bridge serves s with the net/http handler.
func (h *h2Conn) bridge(s *h2Stream, r *h2Request) error {
	u, err := url.ParseRequestURI(r.path)
	if r.path == "*" && r.method == "OPTIONS" {
		u, err = &url.URL{Path: "*"}, nil
	}
	if err != nil {
		h.respond(s.id, 400, s.remoteDone)
		s.localDone, s.remoteDone = true, true
		h.closeIfDone(s)
		return nil
	}
	hdr := make(http.Header, len(r.fields))
	var cookies []string
	for _, f := range r.fields {
		switch f.Name {
		case "cookie":
			cookies = append(cookies, f.Value)
			continue
		case "host":
			continue // as net/http does: the host is req.Host
		}
		k := http.CanonicalHeaderKey(f.Name)
		hdr[k] = append(hdr[k], f.Value)
	}
	if len(cookies) > 0 {
		hdr.Set("Cookie", strings.Join(cookies, "; "))
	}
	if h.tls == nil {
		st := h.c.tc.ConnectionState()
		h.tls = &st
	}
	req := &http.Request{
		Method: r.method, URL: u, Proto: "HTTP/2.0", ProtoMajor: 2,
		Header: hdr, Host: r.host(), RemoteAddr: h.c.tc.RemoteAddr().String(), RequestURI: r.path,
		TLS: h.tls, Body: http.NoBody,
	}
	if !s.remoteDone {
		s.body = &h2Body{s: s, left: r.contentLength, ready: make(chan struct{}, 1)}
		req.Body, req.ContentLength = s.body, r.contentLength
		for _, v := range hdr["Trailer"] {
			for k := range strings.SplitSeq(v, ",") {
				if k = http.CanonicalHeaderKey(strings.TrimSpace(k)); k != "" {
					if req.Trailer == nil {
						req.Trailer = http.Header{}
					}
					req.Trailer[k] = nil
				}
			}
		}
		s.body.trailer = req.Trailer
	}
	ctx := context.WithValue(context.Background(), http.ServerContextKey, h.s.http)
	ctx = context.WithValue(ctx, http.LocalAddrContextKey, h.c.tc.LocalAddr())
	ctx, s.cancel = context.WithCancel(ctx)
	s.cond = sync.NewCond(&s.mu)
	w := &h2Writer{s: s, header: http.Header{}, isHead: r.method == "HEAD"}
	go w.run(h.s.http.Handler, req.WithContext(ctx))
	return nil
}

// post runs f on the stream's loop; nothing when the loop is stopped.
func (s *h2Stream) post(f func()) { s.h.loop.Post(f) }

// h2Writer is the http.ResponseWriter of a bridged stream; its handler's
// goroutine calls it.
type h2Writer struct {
	s           *h2Stream
	header      http.Header
	status      int // 0 until the head is written
	isHead      bool
	trailerKeys []string // declared in the Trailer header
}

func (w *h2Writer) run(handler http.Handler, req *http.Request) {
	s := w.s
	defer func() {
		if err := recover(); err != nil {
			if err != http.ErrAbortHandler {
				s.h.s.log.Printf("http2: panic serving %v: %v", req.RemoteAddr, err)
			}
			s.post(func() { s.finished = true; s.h.reset(s, http2.ErrCodeInternal) })
			return
		}
		w.finish()
	}()
	handler.ServeHTTP(w, req)
}

func (w *h2Writer) Header() http.Header { return w.header }

func (w *h2Writer) WriteHeader(code int) {
	if w.status != 0 || code < 200 || code > 999 {
		return // informational responses are not relayed
	}
	w.status = code
	fields := []hpack.HeaderField{{Name: ":status", Value: strconv.Itoa(code)}}
	for k, vv := range w.header {
		switch k {
		case "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade":
			continue
		case "Trailer":
			for _, v := range vv {
				for t := range strings.SplitSeq(v, ",") {
					if t = strings.TrimSpace(t); t != "" {
						w.trailerKeys = append(w.trailerKeys, http.CanonicalHeaderKey(t))
					}
				}
			}
		}
		if strings.HasPrefix(k, http.TrailerPrefix) || !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		name := strings.ToLower(k)
		for _, v := range vv {
			if httpguts.ValidHeaderFieldValue(v) {
				fields = append(fields, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	s := w.s
	s.post(func() {
		if s.dead {
			return
		}
		for _, f := range fields {
			s.h.enc.WriteField(f)
		}
		s.h.writeBlock(s.id, false)
		s.started = true
		s.h.drain(s)
	})
}

func (w *h2Writer) bodyAllowed() bool {
	return !w.isHead && w.status != 204 && w.status != 304
}

func (w *h2Writer) Write(p []byte) (int, error) {
	if w.status == 0 {
		if _, ok := w.header["Content-Type"]; !ok && w.header.Get("Transfer-Encoding") == "" {
			w.header.Set("Content-Type", http.DetectContentType(p))
		}
		w.WriteHeader(http.StatusOK)
	}
	if w.isHead {
		return len(p), nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	return w.s.queue(p)
}

// Flush sends the head, if not yet: the body goes as it is written.
func (w *h2Writer) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
}

// SetReadDeadline bounds the next reads of the request's body (the front
// door's BodyReadTimeout).
func (w *h2Writer) SetReadDeadline(t time.Time) error {
	if b := w.s.body; b != nil {
		b.setDeadline(t)
	}
	return nil
}

// finish ends the response once the handler returned: trailers, if it
// set any, then the end of the stream.
func (w *h2Writer) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	var trailers []hpack.HeaderField
	add := func(k string, vv []string) {
		name := strings.ToLower(k)
		for _, v := range vv {
			if httpguts.ValidHeaderFieldName(k) && httpguts.ValidHeaderFieldValue(v) {
				trailers = append(trailers, hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	for _, k := range w.trailerKeys {
		add(k, w.header[k])
	}
	for k, vv := range w.header {
		if t, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			add(t, vv)
		}
	}
	s := w.s
	s.mu.Lock()
	s.end, s.trailers = true, trailers
	s.mu.Unlock()
	if b := s.body; b != nil {
		b.Close()
	}
	s.post(func() {
		s.finished = true
		s.h.drain(s)
		if s.localDone && !s.dead {
			s.h.ended(s)
		}
	})
}

// queue adds p to the stream's response bytes for the loop to frame,
// waiting while the queue is full.
func (s *h2Stream) queue(p []byte) (int, error) {
	n := 0
	s.mu.Lock()
	defer s.mu.Unlock()
	for n < len(p) {
		for s.sendq.Len() >= h2SendQueue && !s.gone {
			s.cond.Wait()
		}
		if s.gone {
			return n, errStreamReset
		}
		k := min(len(p)-n, h2SendQueue-s.sendq.Len())
		s.sendq.Write(p[n : n+k])
		n += k
		if !s.posted {
			s.posted = true
			s.post(func() {
				s.mu.Lock()
				s.posted = false
				s.mu.Unlock()
				s.h.drain(s)
			})
		}
	}
	return n, nil
}

// h2Body is a bridged request's body: DATA frames the loop pushes, read by
// the handler's goroutine.
type h2Body struct {
	s        *h2Stream
	ready    chan struct{} // something came, or the deadline moved
	mu       sync.Mutex
	buf      bytes.Buffer
	err      error       // after buf: io.EOF, or the stream's failure
	left     int64       // of its content-length; -1: none given
	trailer  http.Header // the request's, keys declared: the reader fills it at EOF
	got      http.Header // trailers come, not yet in trailer
	deadline time.Time
	owed     int64 // read, not yet given back to the client's windows
	posted   bool  // giveBack is posted
	closed   bool  // the handler is done with it: what comes is thrown away
}

// push adds data (the loop); false when it overruns the content-length
// given, or ends short of it.
func (b *h2Body) push(data []byte, end bool) bool {
	b.mu.Lock()
	ok := true
	if b.left >= 0 {
		if b.left -= int64(len(data)); b.left < 0 || end && b.left > 0 {
			ok = false
		}
	}
	if b.closed {
		b.owe(len(data))
	} else {
		b.buf.Write(data)
	}
	if end && b.err == nil {
		b.err = io.EOF
	}
	b.mu.Unlock()
	b.signal()
	return ok
}

// end ends the body with trailers (the loop).
func (b *h2Body) end(fields []hpack.HeaderField) {
	b.mu.Lock()
	for _, f := range fields {
		k := http.CanonicalHeaderKey(f.Name)
		if _, declared := b.trailer[k]; declared {
			if b.got == nil {
				b.got = http.Header{}
			}
			b.got[k] = append(b.got[k], f.Value)
		}
	}
	if b.err == nil {
		b.err = io.EOF
		if b.left > 0 {
			b.err = io.ErrUnexpectedEOF
		}
	}
	b.mu.Unlock()
	b.signal()
}

// fail ends the body with err (the loop: the stream was reset).
func (b *h2Body) fail(err error) {
	b.mu.Lock()
	if b.err == nil || b.err == io.EOF {
		b.err = err
	}
	b.mu.Unlock()
	b.signal()
}

func (b *h2Body) signal() {
	select {
	case b.ready <- struct{}{}:
	default:
	}
}

func (b *h2Body) setDeadline(t time.Time) {
	b.mu.Lock()
	b.deadline = t
	b.mu.Unlock()
	b.signal()
}

func (b *h2Body) Read(p []byte) (int, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		b.mu.Lock()
		if b.buf.Len() > 0 {
			n, _ := b.buf.Read(p)
			b.owe(n)
			b.mu.Unlock()
			return n, nil
		}
		err, deadline := b.err, b.deadline
		if err == io.EOF && b.got != nil {
			// As net/http's server: the handler may read the request's
			// Trailer once the body is read, not while the loop gets them.
			maps.Copy(b.trailer, b.got)
			b.got = nil
		}
		b.mu.Unlock()
		if err != nil {
			return 0, err
		}
		var expired <-chan time.Time
		if !deadline.IsZero() {
			d := time.Until(deadline)
			if d <= 0 {
				return 0, os.ErrDeadlineExceeded
			}
			if timer == nil {
				timer = time.NewTimer(d)
			} else {
				timer.Reset(d)
			}
			expired = timer.C
		}
		select {
		case <-b.ready:
		case <-expired:
		}
	}
}

// Close throws away what the handler did not read, giving it back to the
// client's windows.
func (b *h2Body) Close() error {
	b.mu.Lock()
	b.closed = true
	b.owe(b.buf.Len())
	b.buf.Reset()
	b.mu.Unlock()
	return nil
}

// owe counts n bytes consumed, and has the loop give them back (b.mu
// held).
func (b *h2Body) owe(n int) {
	if n == 0 {
		return
	}
	b.owed += int64(n)
	if b.posted {
		return
	}
	b.posted = true
	s := b.s
	s.post(func() {
		b.mu.Lock()
		n := b.owed
		b.owed, b.posted = 0, false
		b.mu.Unlock()
		s.h.credit(s, n)
	})
}
