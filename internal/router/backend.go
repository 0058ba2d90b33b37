package router

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-oss/hangar/internal/rawconn"
)

// backend is one executor: its requests in flight and its idle keep-alive
// connections. The Router keeps one per address for as long as it lives, so
// that a route switch neither forgets requests in flight nor drops pooled
// connections to executors that stay.
type backend struct {
	addr     string
	inflight atomic.Int64
	limit    atomic.Int64 // requests sent at once, 0 for no limit (SetLimit)
	mu       sync.Mutex
	idle     []*conn // least recently used first
	loopIdle []*conn // idle and detached from the runtime's poller (rawconn.Conn.Bind), for event loops' tasks
}

// maxIdlePerUpstream bounds the idle connections kept to one executor.
const maxIdlePerUpstream = 1024

// conn is a keep-alive HTTP/1.1 connection to an upstream.
type conn struct {
	u     *backend
	nc    net.Conn
	lim   *budgetReader // under br: bounds what a response's header may take
	br    *bufio.Reader
	bw    *bufio.Writer
	timer *time.Timer // closes the connection once idle for upstreamIdleTimeout
	idle  bool        // in u.idle; guarded by u.mu

	// The raw path's buffers (http1.go), reused from one response to the
	// next: the head for the client, the executor's header lines, a line
	// longer than br's buffer, and digits.
	out, raw, long []byte
	scratch        [16]byte
}

var dialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// get returns an idle connection to u, if it has one: for an event
// loop's task (loop), one detached from the runtime's poller if there is.
func (u *backend) get(loop bool) (c *conn, reused bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	pool := &u.idle
	if loop && len(u.loopIdle) > 0 {
		pool = &u.loopIdle
	}
	if n := len(*pool); n > 0 {
		c = (*pool)[n-1]
		(*pool)[n-1] = nil
		*pool = (*pool)[:n-1]
		c.idle = false
		c.timer.Stop()
		return c, true
	}
	return nil, false
}

func (u *backend) dial(ctx context.Context) (*conn, error) {
	nc, err := dialer.DialContext(ctx, "tcp", u.addr)
	if err != nil {
		return nil, err
	}
	// Raw reads and writes: fewer thread hand-offs per request (package
	// rawconn); on an event loop, the executor's responses are served
	// before new requests in each turn.
	nc = rawconn.WrapFirst(nc)
	lim := &budgetReader{r: nc, left: math.MaxInt64}
	c := &conn{u: u, nc: nc, lim: lim, br: bufio.NewReaderSize(lim, 16<<10), bw: bufio.NewWriterSize(nc, 4<<10)}
	c.timer = time.AfterFunc(upstreamIdleTimeout, c.expire)
	c.timer.Stop()
	return c, nil
}

// put returns c to the idle pool, to be closed if unused for
// upstreamIdleTimeout.
func (c *conn) put() {
	u := c.u
	pool := &u.idle
	if raw, ok := c.nc.(*rawconn.Conn); ok && raw.Detached() {
		pool = &u.loopIdle
	}
	u.mu.Lock()
	if len(*pool) >= maxIdlePerUpstream {
		u.mu.Unlock()
		c.nc.Close()
		return
	}
	c.idle = true
	*pool = append(*pool, c)
	c.timer.Reset(upstreamIdleTimeout)
	u.mu.Unlock()
}

// expire closes c if it is still idle.
func (c *conn) expire() {
	u := c.u
	u.mu.Lock()
	if !c.idle {
		u.mu.Unlock()
		return
	}
	c.idle = false
	if i := slices.Index(u.idle, c); i >= 0 {
		u.idle = slices.Delete(u.idle, i, i+1)
	}
	if i := slices.Index(u.loopIdle, c); i >= 0 {
		u.loopIdle = slices.Delete(u.loopIdle, i, i+1)
	}
	u.mu.Unlock()
	c.nc.Close()
}

// replayable reports whether req may take the direct path: a request
// without a body or upgrade, whose method is safe to send again (the
// transport's own rule for replaying a request on a fresh connection).
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody {
		return false
	}
	if _, ok := req.Header["Upgrade"]; ok {
		return false
	}
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// errBeforeResponse marks a failure on a reused connection before any byte
// of the response arrived: the executor had closed it while idle.
var errBeforeResponse = errors.New("connection closed before the response")

// forward sends req, replayable, to u and copies the response to w,
// giving p back once the response's head has come. An error means nothing
// was written to w: the caller may try another upstream or answer itself.
// A failure once the response has begun aborts it (http.ErrAbortHandler),
// as httputil.ReverseProxy does. It sets *status to the response's status
// once it is known.
func (r *Router) forward(w http.ResponseWriter, req *http.Request, u *backend, status *int, p *place) error {
	u.inflight.Add(1)
	defer u.inflight.Add(-1)
	p.forwarding()
	ctx := req.Context()
	for retried := false; ; retried = true {
		var c *conn
		var reused bool
		var err error
		if retried {
			c, err = u.dial(ctx)
		} else if c, reused = u.get(false); c == nil {
			c, err = u.dial(ctx)
		}
		if err != nil {
			return err
		}
		// A client that goes away stops the wait and the copy: reads from
		// the executor fail at once, and the connection is not reused.
		stop := context.AfterFunc(ctx, func() { c.nc.SetReadDeadline(time.Unix(1, 0)) })
		resp, err := c.roundTrip(req)
		if err != nil {
			stop()
			c.nc.Close()
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if reused && errors.Is(err, errBeforeResponse) {
				// Like http.Transport: a replayable request that met a
				// connection the executor closed while idle goes once
				// more, on a new one.
				continue
			}
			return err
		}
		*status = resp.StatusCode
		p.release()
		err = r.copyResponse(w, resp)
		if !stop() || err != nil || resp.Close {
			c.nc.Close()
		} else {
			c.put()
		}
		if err != nil && req.Context().Value(http.ServerContextKey) != nil {
			// The status line is out: only a broken connection tells the
			// client the response is incomplete. The server recovers.
			panic(http.ErrAbortHandler)
		}
		return nil
	}
}

// roundTrip writes req to c and reads the response's header, skipping
// informational (1xx) responses.
func (c *conn) roundTrip(req *http.Request) (*http.Response, error) {
	if err := writeRequest(c.bw, req); err != nil {
		return nil, fmt.Errorf("%w: %w", errBeforeResponse, err)
	}
	// The executor is the tenant's code: its header may take only so much
	// of Hangar's memory, as http.Transport bounds it on the other path.
	c.lim.left = maxResponseHeaderBytes
	defer func() { c.lim.left = math.MaxInt64 }()
	if _, err := c.br.Peek(1); err != nil {
		return nil, fmt.Errorf("%w: %w", errBeforeResponse, err)
	}
	for range max1xxResponses + 1 {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 {
			return resp, nil
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			return nil, errors.New("101 Switching Protocols to a request without Upgrade")
		}
	}
	return nil, fmt.Errorf("more than %d informational (1xx) responses", max1xxResponses)
}

// maxResponseHeaderBytes bounds what a response's header, with its
// informational responses, may take: http.Transport's default. Beyond it
// the request fails with 502.
const maxResponseHeaderBytes = 10 << 20

// max1xxResponses bounds the informational responses before the final
// one, as http.Transport does.
const max1xxResponses = 5

// errResponseHeaderTooLarge is the read error past maxResponseHeaderBytes.
var errResponseHeaderTooLarge = fmt.Errorf("the response's header is larger than %d bytes", maxResponseHeaderBytes)

// budgetReader reads from r at most left bytes, then fails.
type budgetReader struct {
	r    io.Reader
	left int64
}

func (b *budgetReader) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errResponseHeaderTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= int64(n)
	return n, err
}

// hopByHop reports whether the header k (canonical) is a hop-by-hop header
// (RFC 9110, 7.6.1), which a proxy does not forward.
func hopByHop(k string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return false
}

// namedIn reports whether the Connection header values conn name k.
func namedIn(conn []string, k string) bool {
	for _, v := range conn {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), k) {
				return true
			}
		}
	}
	return false
}

// writeRequest writes req to bw as an HTTP/1.1 request for an executor:
// hop-by-hop headers and the client's X-Forwarded-* and Forwarded dropped,
// X-Forwarded-For, -Host and -Proto set afresh, Host kept.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.Host)
	bw.WriteString("\r\n")
	conn := req.Header["Connection"]
	for k, vv := range req.Header {
		switch {
		case hopByHop(k), k == "X-Forwarded-For", k == "X-Forwarded-Host", k == "X-Forwarded-Proto", k == "Forwarded":
			continue
		case len(conn) > 0 && namedIn(conn, k):
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	if ip, _, err := net.SplitHostPort(req.RemoteAddr); err == nil {
		bw.WriteString("X-Forwarded-For: ")
		bw.WriteString(ip)
		bw.WriteString("\r\n")
	}
	bw.WriteString("X-Forwarded-Host: ")
	bw.WriteString(req.Host)
	if req.TLS != nil {
		bw.WriteString("\r\nX-Forwarded-Proto: https\r\n\r\n")
	} else {
		bw.WriteString("\r\nX-Forwarded-Proto: http\r\n\r\n")
	}
	return bw.Flush()
}

// copyResponse writes resp to w: its headers without the hop-by-hop ones,
// then its body, flushed as it comes when its length is unknown (a stream,
// e.g. server-sent events), then its trailers. An error means the body
// could not be copied whole.
func (r *Router) copyResponse(w http.ResponseWriter, resp *http.Response) error {
	defer resp.Body.Close()
	h := w.Header()
	conn := resp.Header["Connection"]
	for k, vv := range resp.Header {
		if hopByHop(k) || len(conn) > 0 && namedIn(conn, k) {
			continue
		}
		h[k] = vv
	}
	for k := range resp.Trailer {
		h.Add("Trailer", k)
	}
	w.WriteHeader(resp.StatusCode)
	stream := resp.ContentLength < 0 || strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
	var flush func() error
	if stream {
		flush = http.NewResponseController(w).Flush
		if err := flush(); err != nil {
			return err
		}
	}
	buf := r.buffers.Get()
	defer r.buffers.Put(buf)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if flush != nil {
				if err := flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return rerr
		}
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
	return nil
}
