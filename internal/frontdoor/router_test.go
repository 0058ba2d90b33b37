package frontdoor_test

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/frontdoor"
	"github.com/hangar-oss/hangar/internal/router"
)

// Apps' traffic through the front door and the router, as `hangar serve`
// wires them.

// idle is how long streams stay quiet in these tests: longer than the
// front door's idle and body timeouts below, which must not cut them.
const idle = 60 * time.Second

// shortTimeouts are far below idle.
var shortTimeouts = frontdoor.Config{IdleTimeout: time.Second, BodyReadTimeout: time.Second}

// throughRouter serves the router, with host routed to an executor serving
// h, behind a front door.
func throughRouter(t testing.TB, cfg frontdoor.Config, host string, h http.Handler) *front {
	t.Helper()
	up := httptest.NewServer(h)
	t.Cleanup(up.Close)
	rt := router.New(slog.New(slog.DiscardHandler))
	rt.Set(host, []string{up.Listener.Addr().String()})
	return start(t, cfg, rt)
}

// TestFrontDoor_StreamsSurviveIdle: a WebSocket and server-sent event
// streams (HTTP/1.1 and HTTP/2) pass through the router unbuffered and
// carry data again after a minute of silence. They share the one wait, so
// the test takes a minute however few CPUs run the tests.
func TestFrontDoor_StreamsSurviveIdle(t *testing.T) {
	t.Parallel()
	resume := []func(){webSocket(t), sse(t, "HTTP/1.1"), sse(t, "HTTP/2"), sse(t, "HTTP/2 on the loop")}
	<-time.After(idle)
	for _, r := range resume {
		r()
	}
}

// webSocket upgrades a connection to an echoing executor, checks the echo,
// and returns a func that checks it again.
func webSocket(t *testing.T) (resume func()) {
	f := throughRouter(t, shortTimeouts, "ws.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "want an upgrade", http.StatusBadRequest)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw) // echo
	}))
	c := f.dial(t)
	fmt.Fprint(c, "GET /socket HTTP/1.1\r\nHost: ws.apps.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("WebSocket upgrade: got %s, want 101", resp.Status)
	}
	echo := func(msg string) {
		t.Helper()
		fmt.Fprint(c, msg)
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(br, got); err != nil || string(got) != msg {
			t.Errorf("WebSocket echo: got %q, %v; want %q", got, err, msg)
		}
	}
	echo("ping before")
	return func() { echo("ping after a minute") }
}

// sse opens an event stream over proto, checks that its first event
// arrives before the executor sends the second, and returns a func that
// has the executor send the second and checks it arrives.
func sse(t *testing.T, proto string) (resume func()) {
	next := make(chan struct{})
	f := throughRouter(t, shortTimeouts, "sse.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		w.(http.Flusher).Flush()
		select {
		case <-next:
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, "data: two\n\n")
	}))
	req, _ := http.NewRequest(http.MethodGet, f.url("/events"), nil)
	req.Host = "sse.apps.test"
	resp, err := f.protoClient(proto, "sse.apps.test").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	br := bufio.NewReader(resp.Body)
	event := func(want string) {
		t.Helper()
		line, err := br.ReadString('\n')
		if err != nil || line != want {
			t.Errorf("SSE over %s: got %q, %v; want %q", proto, line, err, want)
		}
		br.ReadString('\n') // the blank line that ends the event
	}
	event("data: one\n")
	return func() {
		close(next)
		event("data: two\n")
	}
}

// TestFrontDoor_ForwardedHeaders: the executor sees the client's address,
// the host it asked for and https, whatever the client claimed in its own
// copies of these headers.
func TestFrontDoor_ForwardedHeaders(t *testing.T) {
	t.Parallel()
	f := throughRouter(t, frontdoor.Config{}, "app.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "xff=%s xfh=%s xfp=%s forwarded=%s host=%s",
			strings.Join(r.Header.Values("X-Forwarded-For"), ","), r.Header.Get("X-Forwarded-Host"),
			r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Forwarded"), r.Host)
	}))
	for _, h2 := range []bool{false, true} {
		req, _ := http.NewRequest(http.MethodGet, f.url("/"), nil)
		req.Host = "app.apps.test"
		req.Header.Set("X-Forwarded-For", "6.6.6.6")
		req.Header.Set("X-Forwarded-Host", "evil.test")
		req.Header.Set("X-Forwarded-Proto", "http")
		req.Header.Set("Forwarded", "for=6.6.6.6")
		resp, err := f.client(h2).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := "xff=127.0.0.1 xfh=app.apps.test xfp=https forwarded= host=app.apps.test"; string(b) != want {
			t.Errorf("h2=%t: got %q, want %q", h2, b, want)
		}
	}
}

// TestFrontDoor_StalledBodyThroughRouter: a client whose body stalls gets
// 408, and the executor sees its request end, not hang.
func TestFrontDoor_StalledBodyThroughRouter(t *testing.T) {
	t.Parallel()
	for _, proto := range []string{"HTTP/2", "HTTP/2 on the loop"} {
		t.Run(proto, func(t *testing.T) {
			t.Parallel()
			stalledBody(t, proto)
		})
	}
}

func stalledBody(t *testing.T, proto string) {
	upErr := make(chan error, 1)
	f := throughRouter(t, frontdoor.Config{BodyReadTimeout: 500 * time.Millisecond}, "app.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		upErr <- err
	}))
	pr, pw := io.Pipe()
	defer pw.Close() // the stall: nothing more is ever written
	go pw.Write([]byte("hello"))
	req, _ := http.NewRequest(http.MethodPost, f.url("/upload"), pr)
	req.Host = "app.apps.test"
	req.ContentLength = 100
	resp, err := f.protoClient(proto, "app.apps.test").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("stalled body through the router: got %s, want 408", resp.Status)
	}
	if err := <-upErr; err == nil {
		t.Error("executor read the whole body of a stalled request, want an error")
	}
}

// TestFrontDoor_SlowCertificate: a certificate that takes its time (ACME
// on demand, whose TLS-ALPN-01 challenge comes in on the same port) holds
// up only its own handshake, on a loop as on goroutines.
func TestFrontDoor_SlowCertificate(t *testing.T) {
	t.Parallel()
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cert, roots := selfSigned(t)
			release := make(chan struct{})
			defer close(release)
			waiting := make(chan struct{}, 1)
			tc := &tls.Config{GetCertificate: func(h *tls.ClientHelloInfo) (*tls.Certificate, error) {
				if h.ServerName == "slow.apps.test" {
					waiting <- struct{}{}
					<-release
				}
				return &cert, nil
			}}
			up := httptest.NewServer(echo)
			t.Cleanup(up.Close)
			rt := router.New(slog.New(slog.DiscardHandler))
			rt.Set("127.0.0.1", []string{up.Listener.Addr().String()})
			f := startTLS(t, frontdoor.Config{Loops: m.loops}, rt, tc, roots)

			go func() {
				c, err := tls.Dial("tcp", f.addr, &tls.Config{ServerName: "slow.apps.test", RootCAs: roots})
				if err == nil {
					c.Close()
				}
			}()
			<-waiting
			f.getWithin(t, "/", 10*time.Second, "a handshake waiting for its certificate held up another client's")
		})
	}
}

// TestFrontDoor_TenantCannotStallLoop: on one loop shared by every app, an
// executor that takes requests and never answers holds up only its own
// app's requests; another app on the same loop is served meanwhile.
func TestFrontDoor_TenantCannotStallLoop(t *testing.T) {
	t.Parallel()
	stuck := make(chan struct{})
	defer close(stuck)
	entered := make(chan struct{}, 8)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-stuck
	}))
	t.Cleanup(bad.Close)
	f := besideEcho(t, "bad.apps.test", bad)

	for range 4 {
		c := f.dial(t)
		defer c.Close()
		fmt.Fprint(c, "GET /hang HTTP/1.1\r\nHost: bad.apps.test\r\n\r\n")
	}
	for range 4 {
		select {
		case <-entered:
		case <-time.After(10 * time.Second):
			t.Fatal("the stuck app's requests never reached its executor")
		}
	}
	f.getWithin(t, "/ok", 10*time.Second, "an app whose executor never answers held up another app on the same loop")
}

// besideEcho serves, behind a front door of one event loop, host routed to
// the executor up and 127.0.0.1 to one that echoes: two apps sharing the
// loop.
func besideEcho(t *testing.T, host string, up *httptest.Server) *front {
	t.Helper()
	good := httptest.NewServer(echo)
	t.Cleanup(good.Close)
	rt := router.New(slog.New(slog.DiscardHandler))
	rt.Set(host, []string{up.Listener.Addr().String()})
	rt.Set("127.0.0.1", []string{good.Listener.Addr().String()})
	return start(t, frontdoor.Config{Loops: 1}, rt)
}

// getWithin GETs path and fails t with stalled when no response comes
// within d.
func (f *front) getWithin(t *testing.T, path string, d time.Duration, stalled string) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		resp, err := f.client(false).Get(f.url(path))
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(d):
		t.Fatal(stalled)
	}
}

// TestFrontDoor_EndlessStreamCannotHoldLoop: on one loop shared by every
// app, an executor that streams without pause to a client that reads as
// fast (both a tenant's) holds up no other app: the loop moves on to
// other connections after a bounded run of the stream's bytes.
func TestFrontDoor_EndlessStreamCannotHoldLoop(t *testing.T) {
	t.Parallel()
	stream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		// One-byte chunks: the router's work per byte is its most, the
		// executor's and the client's (who reads them undecoded) their
		// least.
		bw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
		bw.Flush()
		buf := bytes.Repeat([]byte("1\r\nx\r\n"), 64<<10)
		for {
			if _, err := c.Write(buf); err != nil {
				return
			}
		}
	}))
	t.Cleanup(stream.Close)
	f := besideEcho(t, "stream.apps.test", stream)

	c := f.dial(t)
	fmt.Fprint(c, "GET /endless HTTP/1.1\r\nHost: stream.apps.test\r\n\r\n")
	br := bufio.NewReaderSize(c, 1<<20)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("the stream: got %s, want 200", resp.Status)
	}
	flowing := make(chan error, 1)
	go func() {
		buf := make([]byte, 1<<20)
		var n int64
		for {
			m, err := br.Read(buf)
			if err != nil {
				flowing <- err
				return
			}
			if n += int64(m); n >= 16<<20 && n-int64(m) < 16<<20 {
				flowing <- nil
			}
		}
	}()
	if err := <-flowing; err != nil {
		t.Fatalf("the stream ended: %v", err)
	}
	f.getWithin(t, "/ok", 10*time.Second, "an endless stream read as fast as it came held up another app on the same loop")
}
