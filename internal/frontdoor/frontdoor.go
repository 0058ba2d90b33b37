// Package frontdoor builds Hangar's public HTTPS server, the one port that
// serves the API and every app: HTTP/2 (ALPN) and HTTP/1.1, with the
// timeouts and limits that keep a client from holding it open or
// exhausting it: an idle keep-alive timeout, a header timeout and size cap,
// a per-read deadline on request bodies, and a cap on connections per
// client IP. Apps' plain HTTP/1.1 requests are read by its own loop and
// handed to a Proxy (the router) without net/http (server.go, http1.go),
// and so are HTTP/2 connections to apps' hosts (h2.go).
// It imports only the standard library; the composition root wires it.
package frontdoor

import (
	"io"
	"net/http"
	"runtime"
	"time"
)

// Config holds the front door's timeouts and limits. The zero value of each
// field means its default.
type Config struct {
	// IdleTimeout closes a keep-alive connection (HTTP/1.1 or HTTP/2) that
	// has no request for this long. Default 2m.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers. Default 30s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout cuts a request whose body makes no progress for this
	// long: each read of the body must return within it. Unlike
	// http.Server.ReadTimeout it does not bound the whole request, so a
	// long upload that keeps moving, a WebSocket or a streamed body lives
	// on. Default 30s.
	BodyReadTimeout time.Duration
	// MaxHeaderBytes caps the size of a request's headers (HTTP/1.1 request
	// line and headers; HTTP/2 header list). Default 64 KiB.
	MaxHeaderBytes int
	// MaxConnsPerIP caps the open connections from one client IP address
	// (LimitPerIP); a connection over the cap is closed on accept. Default
	// 256; negative means no cap.
	MaxConnsPerIP int
	// Loops is the number of event loops that serve HTTP/1.1 connections
	// and HTTP/2 ones to apps' hosts (package evloop, docs/frontdoor.md
	// "The event loop", docs/h2-loop.md). Default: half the CPUs Go may
	// use, at least 1, so that executors keep the rest; negative means
	// none: a goroutine per connection, and net/http for all HTTP/2.
	Loops int
}

// Defaults of Config's fields; config.Defaults repeats them for the flags' help.
const (
	defaultIdleTimeout       = 2 * time.Minute
	defaultReadHeaderTimeout = 30 * time.Second
	defaultBodyReadTimeout   = 30 * time.Second
	defaultMaxHeaderBytes    = 64 << 10
	defaultMaxConnsPerIP     = 256
)

func (c Config) withDefaults() Config {
	if c.IdleTimeout == 0 {
		c.IdleTimeout = defaultIdleTimeout
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = defaultReadHeaderTimeout
	}
	if c.BodyReadTimeout == 0 {
		c.BodyReadTimeout = defaultBodyReadTimeout
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = defaultMaxHeaderBytes
	}
	if c.MaxConnsPerIP == 0 {
		c.MaxConnsPerIP = defaultMaxConnsPerIP
	}
	if c.Loops == 0 {
		c.Loops = max(1, runtime.GOMAXPROCS(0)/2)
	}
	return c
}

// bodyDeadline gives each read of a request body timeout to return: a body
// that stalls fails with a timeout, which the handler reading it sees as
// an error (the router answers 408 and the connection is closed).
func bodyDeadline(h http.Handler, timeout time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &deadlineBody{ReadCloser: r.Body, rc: http.NewResponseController(w), timeout: timeout}
		}
		h.ServeHTTP(w, r)
	})
}

// deadlineBody sets the connection's (HTTP/1.1) or stream's (HTTP/2) read
// deadline before each read of the body, and clears it at the body's end:
// the server reads the idle connection in the background from then on
// (to notice a client that goes away), and a deadline left behind would
// cancel a handler still writing its response.
type deadlineBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	timeout time.Duration
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	// An error means the writer cannot set deadlines (not Hangar's server,
	// e.g. in a test): the body is read without one.
	_ = b.rc.SetReadDeadline(time.Now().Add(b.timeout))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}
