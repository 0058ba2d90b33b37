package frontdoor

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/hangar-oss/hangar/internal/evloop"
	"github.com/hangar-oss/hangar/internal/rawconn"
)

// The front door's own HTTP/1.1 loop. For each request it peeks at the
// head in its read buffer; a request it serves (GET, HEAD, OPTIONS or
// TRACE in HTTP/1.1, no body, no Upgrade or Expect, a well-formed head
// that fits in the buffer, a host the proxy routes) is rewritten into the
// request for the executor, in one buffer, and handed to the proxy; at the
// first it does not serve, the connection goes to net/http with the
// request still unread, and net/http answers it (the API, 400, 404, 431,
// bodies and upgrades) and the rest of the connection.

// Connection states, for Shutdown.
const (
	stateActive int32 = iota // reading or serving a request
	stateIdle                // waiting for a request
	stateClosed              // closed by Shutdown
)

// http1ReadBuffer is the read buffer of a connection: a request head that
// does not fit goes to net/http, which has its own cap (MaxHeaderBytes).
const http1ReadBuffer = 8 << 10

// watchDelay is how long a request runs before the loop starts watching
// for the client leaving (a read that ends at EOF): net/http watches every
// request, at the cost of a goroutine and a read each; an app's quick
// answers do not need it, long polls and streams do.
const watchDelay = 50 * time.Millisecond

// http1Conn is an HTTP/1.1 connection served by the front door's loop.
type http1Conn struct {
	s      *Server
	tc     *tls.Conn
	br     *bufio.Reader   // nil while it waits for a request (awaitRequest)
	in     firstByte       // what br reads
	ctx    context.Context // ends when the client leaves
	cancel context.CancelFunc
	ip     []byte // the client's IP address, for X-Forwarded-For
	out    []byte // the request for the executor
	host   []byte // the request's host, canonical
	state  atomic.Int32

	deadline time.Time // the read deadline set last

	watch    *time.Timer   // starts watchClient
	stopping atomic.Bool   // the request is over: watchClient stops
	watched  chan struct{} // watchClient returned

	// raw is the connection under tc when an event loop serves it; then
	// the loop, not watchClient, learns that the client left.
	raw  *rawconn.Conn
	task *evloop.Task // the loop's task serving it, once it runs
	isH2 atomic.Bool  // it serves HTTP/2 (h2.go), once task is set
}

// newHTTP1Conn returns the connection tc, to be served by an event loop's
// task (serveOn) when raw, the connection under tc, is not nil, else by
// serve.
func (s *Server) newHTTP1Conn(tc *tls.Conn, raw *rawconn.Conn) *http1Conn {
	c := &http1Conn{s: s, tc: tc, raw: raw, watched: make(chan struct{}, 1)}
	// Idle until a request comes: a client still in its handshake has
	// none in flight, and Shutdown closes it at once.
	c.state.Store(stateIdle)
	if !s.track(c, true) {
		return nil
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if a, ok := tc.RemoteAddr().(*net.TCPAddr); ok {
		c.ip = a.AddrPort().Addr().Unmap().AppendTo(nil)
	}
	c.watch = time.AfterFunc(time.Hour, c.watchClient)
	c.watch.Stop()
	return c
}

// serveOn serves the connection as the event loop's task t: its reads
// and writes, and those of the router's connections to executors for its
// requests (the task rides in c.ctx), wait through t; when the client
// hangs up during a request, the loop cancels c.ctx and t, whose wait on
// the executor then ends.
func (c *http1Conn) serveOn(t *evloop.Task) {
	if err := c.raw.Bind(t); err != nil {
		c.s.log.Printf("http: event loop: %v", err)
		go c.serve() // on a goroutine, not the loop
		return
	}
	c.task = t
	c.ctx = evloop.WithTask(c.ctx, t)
	t.OnHangup(c.raw.FD(), func() {
		c.cancel()
		t.Cancel()
	})
	defer t.OnHangup(c.raw.FD(), nil)
	c.serve()
}

// closeFromOutside closes the connection from a goroutine other than the
// one serving it (Shutdown, Close).
func (c *http1Conn) closeFromOutside() {
	if c.raw != nil {
		// Ends the task's wait; the task closes the TLS connection.
		c.raw.Abort()
		return
	}
	c.tc.Close()
}

// serve runs the connection's TLS handshake, then its loop until it
// closes or goes to net/http (an HTTP/2 one right after the handshake).
func (c *http1Conn) serve() {
	handover, h2 := false, false
	defer func() {
		if err := recover(); err != nil {
			// As net/http does for a handler: the connection ends, the
			// server goes on.
			c.s.log.Printf("http: panic serving %v: %v", c.tc.RemoteAddr(), err)
			handover = false
		}
		c.end(handover, h2)
	}()
	if !c.s.handshake(c.tc, c.task) {
		return
	}
	if st := c.tc.ConnectionState(); st.NegotiatedProtocol != "http/1.1" && st.NegotiatedProtocol != "" {
		// HTTP/2 for an app's host stays on the loop; for any other
		// (the API's) it goes to net/http's server.
		if st.NegotiatedProtocol == "h2" && c.task != nil && c.s.proxy.Routes(canonicalHost(nil, []byte(st.ServerName))) {
			c.serveH2()
			return
		}
		handover, h2 = true, true
		return
	}
	limit := min(http1ReadBuffer, c.s.cfg.MaxHeaderBytes)
	for {
		c.state.Store(stateIdle)
		if c.s.closing.Load() {
			return
		}
		c.idleDeadline()
		if c.awaitRequest() != nil {
			return
		}
		if !c.state.CompareAndSwap(stateIdle, stateActive) {
			return // closed by Shutdown
		}
		head, err := c.readHead(limit)
		if err != nil {
			return
		}
		isHead, closeReq, ok := c.parse(head)
		if !ok || !c.s.proxy.Routes(c.host) {
			handover = true
			return
		}
		c.br.Discard(len(head))
		closing := closeReq || c.s.closing.Load()
		if c.task == nil {
			c.stopping.Store(false)
			c.watch.Reset(watchDelay)
		}
		bw := getWriter(c.tc)
		keep := c.s.proxy.ProxyHTTP1(c.ctx, c.host, c.out, isHead, closing, bw)
		// The response goes out before the watch stops: stopping a watch
		// that runs waits for its goroutine to be scheduled, milliseconds
		// on a saturated host, and the client must not wait for that.
		err = bw.Flush()
		putWriter(bw)
		if c.task == nil && !c.watch.Stop() {
			// watchClient runs: stop its read, and wait for it.
			c.stopping.Store(true)
			c.tc.SetReadDeadline(time.Unix(1, 0))
			<-c.watched
			c.deadline = time.Time{}
		}
		if err != nil || !keep || closing || c.ctx.Err() != nil {
			return
		}
		if cap(c.out) > 64<<10 {
			c.out = nil
		}
	}
}

// end closes the connection, or gives it to net/http when handover: an
// HTTP/2 one (h2) as the *tls.Conn net/http sets HTTP/2 up from, an
// HTTP/1.1 one with what the loop buffered.
func (c *http1Conn) end(handover, h2 bool) {
	c.cancel()
	c.s.track(c, false)
	if !handover {
		c.tc.Close()
		return
	}
	var nc net.Conn = c.tc
	if !h2 {
		st := c.tc.ConnectionState()
		nc = &handedConn{Conn: c.tc, br: c.br, state: &st}
	}
	if c.task != nil {
		// net/http's goroutines wait in the poller; the loop does not
		// wait for net/http to take the connection.
		if err := c.raw.Attach(); err != nil {
			c.tc.Close()
			return
		}
		go c.s.handoff.give(nc)
		return
	}
	c.s.handoff.give(nc)
}

// idleDeadline sets the read deadline for the wait for the next request:
// IdleTimeout from now. A deadline set for the previous request and at
// most idleSlack earlier stays: moving a runtime timer on each request is
// a few percent of the loop's CPU, and an idle timeout a second short
// changes nothing.
func (c *http1Conn) idleDeadline() {
	d := time.Now().Add(c.s.cfg.IdleTimeout)
	if c.deadline.IsZero() || d.Sub(c.deadline) > min(idleSlack, c.s.cfg.IdleTimeout/8) {
		c.setReadDeadline(d)
	}
}

// idleSlack is how much shorter than IdleTimeout idleDeadline may leave
// the wait for a request.
const idleSlack = time.Second

// setReadDeadline sets the connection's read deadline and remembers it.
// Only the goroutine that serves the connection calls it: watchClient and
// its stop set the deadline directly, and serve forgets the one it
// remembers after them.
func (c *http1Conn) setReadDeadline(t time.Time) {
	c.deadline = t
	c.tc.SetReadDeadline(t)
}

// watchClient reads the connection while a request runs, to learn that
// the client left: then ctx ends, and the proxy closes the executor's
// connection (a long poll or a stream ends there too). A byte that
// arrives (the next request) stays in the buffer.
func (c *http1Conn) watchClient() {
	defer func() { c.watched <- struct{}{} }()
	if c.br.Buffered() > 0 {
		return
	}
	c.tc.SetReadDeadline(time.Time{})
	if c.stopping.Load() {
		return
	}
	if _, err := c.br.Peek(1); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		c.cancel()
	}
}

// readHead returns the request head at the start of the read buffer, up to
// and including its empty line, without consuming it; nil when it does not
// fit in limit bytes.
func (c *http1Conn) readHead(limit int) ([]byte, error) {
	deadline := false
	for {
		buf, _ := c.br.Peek(c.br.Buffered())
		if end := headEnd(buf); end > 0 {
			return buf[:end], nil
		}
		if len(buf) >= limit {
			return nil, nil
		}
		if !deadline {
			c.setReadDeadline(time.Now().Add(c.s.cfg.ReadHeaderTimeout))
			deadline = true
		}
		if _, err := c.br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// headEnd returns the length of the head that begins buf, up to its empty
// line (CRLF or a bare LF), or 0 when buf does not hold all of it.
func headEnd(buf []byte) int {
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 0 {
			return 0
		}
		i += j + 1
		switch {
		case i < len(buf) && buf[i] == '\n':
			return i + 1
		case i+1 < len(buf) && buf[i] == '\r' && buf[i+1] == '\n':
			return i + 2
		}
	}
}

// parse checks that the loop may serve the request head and writes the
// request for the executor to c.out and its canonical host to c.host.
func (c *http1Conn) parse(head []byte) (isHead, closeReq, ok bool) {
	line, rest, ok := cutLine(head)
	if !ok {
		return false, false, false
	}
	method, line, _ := bytes.Cut(line, []byte(" "))
	target, proto, _ := bytes.Cut(line, []byte(" "))
	switch string(method) {
	case "GET", "OPTIONS", "TRACE":
	case "HEAD":
		isHead = true
	default:
		return false, false, false
	}
	if string(proto) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return false, false, false
	}
	for _, b := range target {
		if b <= ' ' || b >= 0x7f {
			return false, false, false
		}
	}
	out := append(c.out[:0], head[:len(head)-len(rest)]...)
	var host []byte
	for {
		line, rest, ok = cutLine(rest)
		if !ok {
			return false, false, false
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := splitHeader(line)
		if !ok {
			return false, false, false
		}
		switch {
		case equalFold(name, "host"):
			if host != nil {
				return false, false, false
			}
			host = value
		case equalFold(name, "content-length"), equalFold(name, "transfer-encoding"),
			equalFold(name, "upgrade"), equalFold(name, "expect"):
			return false, false, false
		case equalFold(name, "connection"):
			for tok := range bytes.SplitSeq(value, []byte(",")) {
				switch tok = bytes.Trim(tok, " \t"); {
				case equalFold(tok, "close"):
					closeReq = true
				case equalFold(tok, "keep-alive"), len(tok) == 0:
				default:
					// It names headers to drop: net/http's proxy does.
					return false, false, false
				}
			}
		case equalFold(name, "keep-alive"), equalFold(name, "proxy-connection"), equalFold(name, "te"),
			equalFold(name, "trailer"), equalFold(name, "proxy-authorization"), equalFold(name, "proxy-authenticate"),
			equalFold(name, "x-forwarded-for"), equalFold(name, "x-forwarded-host"), equalFold(name, "x-forwarded-proto"),
			equalFold(name, "forwarded"):
			// Hop-by-hop, or the client's claims that Hangar replaces.
		default:
			out = append(append(out, line...), "\r\n"...)
		}
	}
	if !validHost(host) {
		return false, false, false
	}
	out = append(append(append(out, "Host: "...), host...), "\r\n"...)
	if len(c.ip) > 0 {
		out = append(append(append(out, "X-Forwarded-For: "...), c.ip...), "\r\n"...)
	}
	out = append(append(append(out, "X-Forwarded-Host: "...), host...), "\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	c.out = out
	c.host = canonicalHost(c.host[:0], host)
	return isHead, closeReq, true
}

// cutLine cuts the CRLF-terminated line that begins b; it fails on a bare
// LF or CR.
func cutLine(b []byte) (line, rest []byte, ok bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 1 || b[i-1] != '\r' || bytes.IndexByte(b[:i-1], '\r') >= 0 {
		return nil, nil, false
	}
	return b[:i-1], b[i+1:], true
}

// splitHeader splits a header line into its name and its value without
// surrounding blanks; it fails on anything net/http would reject or treat
// with care: a name that is not a token, a value with control characters,
// a continuation line.
func splitHeader(line []byte) (name, value []byte, ok bool) {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return nil, nil, false
	}
	name, value = line[:i], bytes.Trim(line[i+1:], " \t")
	for _, b := range name {
		if !isTokenByte(b) {
			return nil, nil, false
		}
	}
	for _, b := range value {
		if b < ' ' && b != '\t' || b == 0x7f {
			return nil, nil, false
		}
	}
	return name, value, true
}

func isTokenByte(b byte) bool {
	switch {
	case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		return true
	}
	switch b {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validHost reports whether host is a plain host name or address, with an
// optional port.
func validHost(host []byte) bool {
	if len(host) == 0 {
		return false
	}
	for _, b := range host {
		switch {
		case 'a' <= b && b <= 'z', 'A' <= b && b <= 'Z', '0' <= b && b <= '9':
		case b == '-', b == '.', b == '_', b == ':', b == '[', b == ']':
		default:
			return false
		}
	}
	return true
}

// canonicalHost appends host to dst lowercase, without its port and any
// trailing dot, as the router keys its table.
func canonicalHost(dst, host []byte) []byte {
	if i := bytes.LastIndexByte(host, ':'); i > bytes.LastIndexByte(host, ']') {
		host = host[:i]
	}
	if len(host) > 1 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	host = bytes.TrimSuffix(host, []byte("."))
	for _, b := range host {
		if 'A' <= b && b <= 'Z' {
			b += 'a' - 'A'
		}
		dst = append(dst, b)
	}
	return dst
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
