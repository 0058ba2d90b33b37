package frontdoor

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"log"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hangar-oss/hangar/internal/evloop"
	"github.com/hangar-oss/hangar/internal/rawconn"
)

// Proxy serves the requests the front door parses itself: no body, no
// upgrade, for a host it routes, over HTTP/1.1 or HTTP/2 (h2.go turns
// them into HTTP/1.1 and back). *router.Router implements it.
type Proxy interface {
	// Routes reports whether host (lowercase, without port or trailing
	// dot) is served by the proxy.
	Routes(host []byte) bool
	// ProxyHTTP1 sends req, a complete request head to be sent as it is
	// (X-Forwarded-For, -Host and -Proto set, hop-by-hop headers removed),
	// and writes the response to w, adding "Connection: close" when
	// closing. isHead says the method is HEAD. It flushes w whenever it
	// waits, leaves the rest in w, and stops when ctx ends (the client
	// left). It reports whether the connection may carry another request.
	ProxyHTTP1(ctx context.Context, host, req []byte, isHead, closing bool, w *bufio.Writer) (keepAlive bool)
}

// Server is the front door's HTTPS server. It does the TLS handshake
// itself and dispatches by the protocol negotiated (ALPN): HTTP/2 to an
// app's host (the server name the client gave) is served by the front
// door's loop (h2.go), HTTP/2 to any other host and anything else go to a
// net/http server of the handler; HTTP/1.1 connections are read by the
// front door's own loop (http1.go), which
// hands the proxy the requests it can serve without net/http (no body, no
// upgrade, an app's host) and gives the connection over to net/http at
// the first request it cannot. So apps' plain GETs, nearly all of their
// traffic, skip net/http's per-request work, while bodies, upgrades, the
// API and errors keep net/http's handling.
type Server struct {
	cfg     Config
	proxy   Proxy // nil: every connection goes to net/http
	http    *http.Server
	tls     *tls.Config
	handoff *handoff
	log     *log.Logger

	closing atomic.Bool
	mu      sync.Mutex
	lns     map[net.Listener]struct{}
	conns   map[*http1Conn]struct{}
	wg      sync.WaitGroup // the own loop's connections

	loops    []*evloop.Loop // serve HTTP/1.1 connections; none: goroutines do
	next     atomic.Uint32  // the loop of the next connection
	stopOnce sync.Once
}

// NewServer returns the server of h and p (nil: h serves everything), to
// be started with Serve(LimitPerIP(ln, cfg)); it speaks HTTP/2 and
// HTTP/1.1 over TLS with tlsConfig. errorLog receives the server's own
// errors (TLS handshakes, panics); nil means the log package's default.
func NewServer(cfg Config, h http.Handler, p Proxy, tlsConfig *tls.Config, errorLog *log.Logger) *Server {
	cfg = cfg.withDefaults()
	tc := tlsConfig.Clone()
	// As http.Server.ServeTLS does: h2 first, so that clients that speak
	// it get it.
	if !slices.Contains(tc.NextProtos, "h2") {
		tc.NextProtos = append(tc.NextProtos, "h2")
	}
	if !slices.Contains(tc.NextProtos, "http/1.1") {
		tc.NextProtos = append(tc.NextProtos, "http/1.1")
	}
	offLoop(tc)
	if errorLog == nil {
		errorLog = log.Default()
	}
	s := &Server{
		cfg: cfg, proxy: p, tls: tc, log: errorLog,
		lns: map[net.Listener]struct{}{}, conns: map[*http1Conn]struct{}{},
	}
	s.handoff = &handoff{c: make(chan net.Conn), done: make(chan struct{})}
	if p != nil {
		for range max(cfg.Loops, 0) {
			l, err := evloop.New(errorLog)
			if err != nil {
				// The loop path is an optimisation: goroutines serve.
				errorLog.Printf("http: event loop: %v; serving HTTP/1.1 with a goroutine per connection", err)
				break
			}
			s.loops = append(s.loops, l)
		}
	}
	s.http = &http.Server{
		Handler:           withTLSState(bodyDeadline(h, cfg.BodyReadTimeout)),
		TLSConfig:         tc, // lists h2: Serve then sets HTTP/2 up
		ReadHeaderTimeout: cfg.ReadHeaderTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ErrorLog:          errorLog,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if hc, ok := c.(*handedConn); ok {
				return context.WithValue(ctx, tlsStateKey{}, hc.state)
			}
			return ctx
		},
	}
	return s
}

// Serve accepts connections on ln until Shutdown or Close, and returns
// http.ErrServerClosed then.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.lns[ln] = struct{}{}
	s.mu.Unlock()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Serve(s.handoff) }()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				<-httpDone
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || !errors.Is(err, net.ErrClosed) {
				// As net/http does: out of file descriptors and the
				// like pass; wait and try again.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Printf("http: Accept error: %v; retrying in %v", err, delay)
				time.Sleep(delay)
				continue
			}
			s.handoff.Close()
			<-httpDone
			return err
		}
		delay = 0
		go s.serveConn(c)
	}
}

// serveConn does c's TLS handshake and serves it or gives it to net/http.
func (s *Server) serveConn(c net.Conn) {
	// Raw reads and writes under TLS: see package rawconn.
	if cc, ok := c.(*countedConn); ok {
		cc.Conn = rawconn.Wrap(cc.Conn)
	} else {
		c = rawconn.Wrap(c)
	}
	tc := tls.Server(c, s.tls)
	if s.proxy == nil {
		if s.handshake(tc, nil) {
			s.handoff.give(tc)
		} else {
			tc.Close()
		}
		return
	}
	raw, ok := rawOf(c)
	if !ok || len(s.loops) == 0 {
		raw = nil
	}
	hc := s.newHTTP1Conn(tc, raw)
	if hc == nil {
		tc.Close()
		return
	}
	if raw != nil {
		// The handshake runs on the loop too: handshakes on goroutines
		// of their own took both CPUs from a loop serving requests for
		// 100 ms when 200 clients connected at once.
		l := s.loops[int(s.next.Add(1))%len(s.loops)]
		if l.Go(hc.serveOn) {
			return
		}
	}
	hc.serve()
}

// handshake runs tc's handshake, bounded like net/http's by the header
// timeout; it reports false when the handshake fails. On a loop, task
// is the connection's (nil: a goroutine of its own): the certificate is
// looked up off the loop (offLoop).
func (s *Server) handshake(tc *tls.Conn, task *evloop.Task) bool {
	tc.SetDeadline(time.Now().Add(s.cfg.ReadHeaderTimeout))
	// A context without Done: crypto/tls would otherwise watch it on a
	// goroutine that may close the connection under the task.
	ctx := context.Background()
	if task != nil {
		ctx = evloop.WithTask(ctx, task)
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader[:]) {
			re.Conn.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"))
		} else {
			s.log.Printf("http: TLS handshake error from %s: %v", tc.RemoteAddr(), err)
		}
		return false
	}
	tc.SetDeadline(time.Time{})
	return true
}

// offLoop makes tc's certificate callbacks run off the event loop when a
// loop's task runs the handshake: a certificate may take seconds (ACME on
// demand, whose TLS-ALPN-01 challenge then arrives on this same port),
// and the loop serves every other connection meanwhile.
func offLoop(tc *tls.Config) {
	if tc.GetCertificate != nil {
		tc.GetCertificate = awaited(tc.GetCertificate)
	}
	if tc.GetConfigForClient != nil {
		tc.GetConfigForClient = awaited(tc.GetConfigForClient)
	}
}

// awaited runs f on a goroutine of its own when a loop's task calls it.
func awaited[T any](f func(*tls.ClientHelloInfo) (T, error)) func(*tls.ClientHelloInfo) (T, error) {
	return func(h *tls.ClientHelloInfo) (v T, err error) {
		t := evloop.TaskFrom(h.Context())
		if t == nil {
			return f(h)
		}
		t.Await(func() { v, err = f(h) })
		return v, err
	}
}

// rawOf returns the raw connection under c, if any.
func rawOf(c net.Conn) (*rawconn.Conn, bool) {
	if cc, ok := c.(*countedConn); ok {
		c = cc.Conn
	}
	raw, ok := c.(*rawconn.Conn)
	return raw, ok
}

// stopLoops stops the event loops once no connection is served.
func (s *Server) stopLoops() {
	s.stopOnce.Do(func() {
		go func() {
			s.wg.Wait()
			for _, l := range s.loops {
				l.Stop()
			}
		}()
	})
}

func looksLikeHTTP(hdr []byte) bool {
	switch string(hdr) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// track adds or removes c from the connections Shutdown waits for; it
// fails when the server is closing.
func (s *Server) track(c *http1Conn, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.conns, c)
		s.wg.Done()
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return true
}

// Shutdown stops accepting, closes idle connections, and waits for the
// requests in flight to finish (or ctx to end), as http.Server.Shutdown.
// Upgraded (hijacked) connections are not waited for.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closeListeners()
	defer s.stopLoops()
	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Shutdown(ctx) }()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		s.closeIdle(false)
		select {
		case <-done:
			return <-httpDone
		case <-ctx.Done():
			return errors.Join(ctx.Err(), <-httpDone)
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once.
func (s *Server) Close() error {
	s.closeListeners()
	err := s.http.Close()
	s.closeIdle(true)
	s.wg.Wait()
	s.stopLoops()
	return err
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing.Store(true)
	for ln := range s.lns {
		ln.Close()
	}
	s.handoff.Close()
}

// closeIdle closes the own loop's connections that wait for a request, or
// all of them.
func (s *Server) closeIdle(all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		switch {
		case all:
			c.closeFromOutside()
		case c.isH2.Load():
			// Its task sees the server closing once it runs: GOAWAY (to
			// an idle one too: its client learns that nothing it sent
			// meanwhile was served), then the streams in flight finish.
			c.raw.Interrupt()
			c.task.Wake()
		case c.state.CompareAndSwap(stateIdle, stateClosed):
			c.closeFromOutside()
		}
	}
}

// handoff is the listener of the net/http server: it accepts the
// connections the front door gives it.
type handoff struct {
	c    chan net.Conn
	done chan struct{}
	once sync.Once
}

func (l *handoff) Accept() (net.Conn, error) {
	select {
	case c := <-l.c:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *handoff) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *handoff) Addr() net.Addr { return &net.TCPAddr{} }

// give hands c to net/http, or closes it when the server is closed.
func (l *handoff) give(c net.Conn) {
	select {
	case l.c <- c:
	case <-l.done:
		c.Close()
	}
}

// handedConn is a TLS connection the front door's loop gives net/http
// after reading from it: reads return what the loop buffered first.
// net/http does not see a *tls.Conn, so the connection's TLS state
// reaches requests through the context (withTLSState).
type handedConn struct {
	*tls.Conn
	br    *bufio.Reader
	state *tls.ConnectionState
}

func (c *handedConn) Read(p []byte) (int, error) {
	if c.br != nil && c.br.Buffered() > 0 {
		return c.br.Read(p)
	}
	return c.Conn.Read(p)
}

type tlsStateKey struct{}

// withTLSState sets the TLS state of requests on handed connections.
func withTLSState(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			if st, ok := r.Context().Value(tlsStateKey{}).(*tls.ConnectionState); ok {
				r.TLS = st
			}
		}
		h.ServeHTTP(w, r)
	})
}
