// Package router is Hangar's front door for app traffic: a reverse proxy
// that picks an app by the request's Host and spreads requests over the
// app's executors round-robin. The host table is replaced atomically, so a
// deploy switches all traffic from one version to the next at once. A
// request without a body that cannot reach its executor (connection refused:
// the executor just died and the supervisor has not withdrawn it yet) is
// tried on the app's next executor; a request with a body is never sent
// twice. Executors are spoken to in HTTP/1.1 over pooled keep-alive
// connections: requests the front door parsed itself (ProxyHTTP1, in
// http1.go: apps' plain HTTP/1.1 GETs) relayed without net/http's request
// and response types, other replayable requests (GET and the like without
// a body, e.g. over HTTP/2) directly from the handler's goroutine, the
// rest through httputil.ReverseProxy. Bodies stream both ways unbuffered
// (server-sent events and other responses without a length are flushed as
// they come), upgrades (WebSocket) pass through, and X-Forwarded-For, -Host
// and -Proto are set afresh, replacing any the client sent. Observers
// (metrics, history) learn of every request from the router itself. It
// imports only the standard library; composition roots wire it and deploy
// updates it through a small interface of its own.
package router

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Router routes requests to the executors of the app their Host names. It is
// safe for concurrent use.
type Router struct {
	logger    *slog.Logger
	observers []Observer
	transport http.RoundTripper
	errorLog  *log.Logger
	buffers   bufferPool
	mu        sync.Mutex                      // serializes writers of table
	table     atomic.Pointer[map[string]*app] // never modified once stored
	backends  sync.Map                        // "ip:port" → *backend
}

// app is the routing entry of one host. Set replaces entries rather than
// modifying them; only the round-robin counter moves.
type app struct {
	host      string // canonical, as in the table
	upstreams []*backend
	proxies   []*httputil.ReverseProxy // one per upstream
	next      atomic.Uint64
	adm       admission
}

// Observer learns of every request the router serves, e.g. to count it. It
// runs on every request, so it must be cheap and safe for concurrent use.
type Observer interface {
	// RequestStarted is called as a request arrives.
	RequestStarted()
	// RequestEnded is called once the request is answered (or its
	// response aborted): host as the client sent it, whether an app is
	// routed there, the status sent (the app's, or the router's own 404,
	// 408 or 502) and how long it took.
	RequestEnded(host string, routed bool, status int, d time.Duration)
}

// New returns a Router with no routes that tells observers of every
// request. One place observes, so that each counter (metrics, history)
// does not wrap the response writer and look the host up again.
func New(logger *slog.Logger, observers ...Observer) *Router {
	r := &Router{logger: logger, observers: observers, transport: newTransport(), errorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	r.table.Store(&map[string]*app{})
	return r
}

// upstreamIdleTimeout closes connections to executors idle this long. It
// is below the 5 s keep-alive timeout of Node's and uvicorn's servers, so
// that the router, not the app, closes an idle connection: otherwise a
// request sent just as the app closes it fails, and one with a body cannot
// be replayed.
const upstreamIdleTimeout = 4 * time.Second

// newTransport returns the transport to executors: HTTP/1.1 over plain TCP
// on this host's private networks, with keep-alive connections pooled per
// executor. http.DefaultTransport keeps 2 idle connections per host, so
// under concurrency nearly every request opened (and left in TIME_WAIT) a
// connection of its own; here the pool keeps as many as were in use.
func newTransport() *http.Transport {
	return &http.Transport{
		// Never send executors' traffic to a proxy named in the
		// environment.
		Proxy: nil,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		MaxIdleConnsPerHost: 1024,
		IdleConnTimeout:     upstreamIdleTimeout,
		// The client's Accept-Encoding passes through unchanged, and so
		// does the response: never decompress on the way.
		DisableCompression:    true,
		ExpectContinueTimeout: time.Second,
		ReadBufferSize:        16 << 10,
		WriteBufferSize:       16 << 10,
	}
}

// Set routes host to upstreams ("ip:port"), replacing its previous
// upstreams at once; an empty list removes host. Host is matched without
// port and case.
func (r *Router) Set(host string, upstreams []string) {
	host = canonicalHost(host)
	var a *app
	if len(upstreams) > 0 {
		a = &app{host: host, upstreams: make([]*backend, len(upstreams)), proxies: make([]*httputil.ReverseProxy, len(upstreams))}
		a.adm.admitted = make([]int, len(upstreams))
		for i, addr := range upstreams {
			a.upstreams[i] = r.backend(addr)
			a.proxies[i] = r.proxy(addr)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	table := maps.Clone(*r.table.Load())
	if a == nil {
		delete(table, host)
	} else {
		table[host] = a
	}
	r.table.Store(&table)
}

// Has reports whether host has upstreams.
func (r *Router) Has(host string) bool {
	_, ok := (*r.table.Load())[canonicalHost(host)]
	return ok
}

// ServeHTTP proxies req to an upstream of its host: 404 when the host is
// unknown, 502 when no upstream answers. A request without a body whose
// upstream refuses the connection goes to the next upstream, each tried at
// most once: nothing of it reached the app, so it cannot run twice.
//
// Replayable requests (GET, HEAD, OPTIONS, TRACE without a body or upgrade:
// nearly all of an app's traffic) take a direct path: the request is
// written to a pooled connection and the response read back in the
// handler's goroutine. The rest (bodies, upgrades) go through
// httputil.ReverseProxy, whose transport writes a body while it reads the
// response and which hands upgraded connections over.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	for _, o := range r.observers {
		o.RequestStarted()
	}
	host := canonicalHost(req.Host)
	a := (*r.table.Load())[host]
	var status int
	// Deferred: a response that fails midway is aborted with a panic
	// (http.ErrAbortHandler).
	defer func() {
		for _, o := range r.observers {
			o.RequestEnded(req.Host, a != nil, status, time.Since(start))
		}
	}()
	if a == nil {
		status = http.StatusNotFound
		http.Error(w, "no application at "+host, status)
		return
	}
	if replayable(req) {
		p, err := a.admit(req.Context(), nil)
		if err != nil { // the client left while its request waited
			status = r.proxyError(w, req, "", err)
			return
		}
		defer p.release()
		first := p.i
		n := len(a.upstreams)
		for k := range n {
			u := a.upstreams[(first+k)%n]
			err := r.forward(w, req, u, &status, &p)
			if err == nil {
				return
			}
			if k < n-1 && isDialError(err) {
				r.logger.DebugContext(req.Context(), "upstream refused the connection: trying the next one", "host", host, "upstream", u.addr, "err", err)
				continue
			}
			status = r.proxyError(w, req, u.addr, err)
			return
		}
	}
	// Requests with a body or an upgrade are not queued (admit): they
	// go round robin.
	n := uint64(len(a.upstreams))
	first := a.next.Add(1) - 1
	sw := &statusWriter{ResponseWriter: w}
	defer func() { status = sw.status() }()
	var at *attempt
	if n > 1 && (req.Body == nil || req.Body == http.NoBody) {
		at = &attempt{}
		req = req.WithContext(context.WithValue(req.Context(), attemptKey{}, at))
	}
	for k := range n {
		i := (first + k) % n
		if at != nil {
			at.retry = k < n-1
			at.failed = false
		}
		r.serve(sw, req, a, i)
		if at == nil || !at.failed {
			return
		}
	}
}

// serve proxies req to upstream i of a, counting it in flight meanwhile.
func (r *Router) serve(w http.ResponseWriter, req *http.Request, a *app, i uint64) {
	u := a.upstreams[i]
	u.inflight.Add(1)
	defer u.inflight.Add(-1)
	a.proxies[i].ServeHTTP(w, req)
}

// statusWriter remembers the status code of a response. Unwrap lets
// http.ResponseController reach the connection underneath, to flush
// streamed responses and to hijack upgraded ones.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	// 1xx responses other than 101 precede the final one.
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// status is the response's status code: 200 when nothing was written, as
// net/http then sends.
func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}

// attempt is how ServeHTTP and a proxy's error handler agree on a retry:
// retry says another upstream may be tried, failed that the handler wrote
// nothing because the connection could not be opened.
type attempt struct {
	retry, failed bool
}

type attemptKey struct{}

// backend returns the backend at addr, created on first use.
func (r *Router) backend(addr string) *backend {
	if u, ok := r.backends.Load(addr); ok {
		return u.(*backend)
	}
	u, _ := r.backends.LoadOrStore(addr, &backend{addr: addr})
	return u.(*backend)
}

// InFlight returns how many requests are being proxied to upstream now. A
// deploy waits for it to reach zero before it stops a replaced executor.
func (r *Router) InFlight(upstream string) int64 { return r.backend(upstream).inflight.Load() }

// proxy returns the reverse proxy to upstream.
func (r *Router) proxy(upstream string) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: upstream}
	return &httputil.ReverseProxy{
		Transport:  r.transport,
		BufferPool: &r.buffers,
		ErrorLog:   r.errorLog,
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Apps see the host the client asked for, as they would
			// without a proxy, e.g. to build absolute URLs.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, req *http.Request, err error) {
			if at, ok := req.Context().Value(attemptKey{}).(*attempt); ok && at.retry && isDialError(err) {
				r.logger.DebugContext(req.Context(), "upstream refused the connection: trying the next one", "host", canonicalHost(req.Host), "upstream", upstream, "err", err)
				at.failed = true
				return
			}
			r.proxyError(w, req, upstream, err)
		},
	}
}

// proxyError answers a request that upstream failed before any of its
// response was written, and returns the status it sent.
func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, upstream string, err error) int {
	if errors.Is(err, os.ErrDeadlineExceeded) && !isDialError(err) {
		// The client's body stalled past the front door's read
		// deadline: the client's fault, not the app's.
		r.logger.DebugContext(req.Context(), "request body timed out", "host", canonicalHost(req.Host), "err", err)
		http.Error(w, "request body timed out", http.StatusRequestTimeout)
		return http.StatusRequestTimeout
	}
	if !errors.Is(err, context.Canceled) {
		r.logger.WarnContext(req.Context(), "proxy to upstream", "host", canonicalHost(req.Host), "upstream", upstream, "err", err)
	}
	http.Error(w, fmt.Sprintf("application at %s is not reachable", canonicalHost(req.Host)), http.StatusBadGateway)
	return http.StatusBadGateway
}

// bufferPool lends the proxies the 32 KiB buffers they copy response
// bodies through; without one, every request allocates its own. It pools
// array pointers, which, unlike slices, go in and out of a sync.Pool
// without an allocation.
type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if buf, ok := b.p.Get().(*[32 << 10]byte); ok {
		return buf[:]
	}
	return new([32 << 10]byte)[:]
}

func (b *bufferPool) Put(buf []byte) {
	if len(buf) == 32<<10 {
		b.p.Put((*[32 << 10]byte)(buf))
	}
}

// isDialError reports whether err is a failure to open the connection to
// the upstream, before any of the request was sent.
func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// canonicalHost lowercases host and strips its port and any trailing dot.
func canonicalHost(host string) string {
	// Only a host with a colon may have a port: SplitHostPort allocates
	// its error for every host without one.
	if strings.LastIndexByte(host, ':') > strings.LastIndexByte(host, ']') {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.TrimSuffix(strings.ToLower(host), ".")
}
