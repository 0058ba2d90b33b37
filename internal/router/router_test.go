package router

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// upstream starts a server that answers with its name and what it saw of
// the request, and returns its "ip:port".
func upstream(t testing.TB, name string) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s host=%s path=%s xff=%s xfh=%s xfp=%s",
			name, r.Host, r.URL.RequestURI(), r.Header.Get("X-Forwarded-For"),
			r.Header.Get("X-Forwarded-Host"), r.Header.Get("X-Forwarded-Proto"))
	}))
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func newRouter(t testing.TB) *Router {
	t.Helper()
	return New(slog.New(slog.DiscardHandler))
}

// do serves a request for host and path and returns status and body.
func do(t testing.TB, r *Router, host, path string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "http://"+host+path, nil)
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // spoofed: must not pass
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	b, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(b)
}

func TestRouter_RoutesByHost(t *testing.T) {
	t.Parallel()
	r := newRouter(t)
	r.Set("alice-shop.apps.test", []string{upstream(t, "shop")})
	r.Set("alice-blog.apps.test", []string{upstream(t, "blog")})
	for _, tc := range []struct {
		name, host string
		want       string // name of the upstream
	}{
		{"Shop", "alice-shop.apps.test", "shop"},
		{"Blog", "alice-blog.apps.test", "blog"},
		{"WithPort", "alice-shop.apps.test:8443", "shop"},
		{"UpperCase", "Alice-Blog.Apps.Test", "blog"},
		{"TrailingDot", "alice-blog.apps.test.", "blog"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			code, body := do(t, r, tc.host, "/greet/x?y=1")
			if code != http.StatusOK || !strings.HasPrefix(body, tc.want+" ") {
				t.Fatalf("got %d %q, want 200 from %s", code, body, tc.want)
			}
			// Host is kept, path and query pass, X-Forwarded-* are fresh.
			want := fmt.Sprintf("%s host=%s path=/greet/x?y=1 xff=192.0.2.1 xfh=%s xfp=http", tc.want, tc.host, tc.host)
			if body != want {
				t.Errorf("got %q, want %q", body, want)
			}
		})
	}
}

func TestRouter_UnknownHost(t *testing.T) {
	t.Parallel()
	r := newRouter(t)
	r.Set("known.apps.test", []string{upstream(t, "known")})
	code, body := do(t, r, "Nobody.apps.test:80", "/")
	if code != http.StatusNotFound || body != "no application at nobody.apps.test\n" {
		t.Errorf("got %d %q, want 404 %q", code, body, "no application at nobody.apps.test\n")
	}
}

func TestRouter_RoundRobin(t *testing.T) {
	t.Parallel()
	r := newRouter(t)
	r.Set("app.test", []string{upstream(t, "a"), upstream(t, "b"), upstream(t, "c")})
	var got []string
	for range 6 {
		_, body := do(t, r, "app.test", "/")
		got = append(got, strings.Fields(body)[0])
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "a", "b", "c"}, got); diff != "" {
		t.Errorf("upstreams picked (-want +got):\n%s", diff)
	}
}

func TestRouter_SetAndRemove(t *testing.T) {
	t.Parallel()
	r := newRouter(t)
	if r.Has("app.test") {
		t.Fatal("Has before Set: got true")
	}
	r.Set("APP.test:443", []string{upstream(t, "v1")})
	if !r.Has("app.test") {
		t.Fatal("Has after Set: got false")
	}
	r.Set("app.test", []string{upstream(t, "v2")})
	if _, body := do(t, r, "app.test", "/"); !strings.HasPrefix(body, "v2 ") {
		t.Errorf("after switch: got %q, want v2", body)
	}
	r.Set("app.test", nil)
	if r.Has("app.test") {
		t.Error("Has after removal: got true")
	}
	if code, _ := do(t, r, "app.test", "/"); code != http.StatusNotFound {
		t.Errorf("after removal: got status %d, want 404", code)
	}
}

// TestRouter_SwitchIsAtomic switches versions while requests flow: every
// request reaches either the old or the new version, none fails, and once
// Set returned only the new version answers.
func TestRouter_SwitchIsAtomic(t *testing.T) {
	t.Parallel()
	r := newRouter(t)
	v1 := []string{upstream(t, "v1"), upstream(t, "v1")}
	v2 := []string{upstream(t, "v2"), upstream(t, "v2")}
	r.Set("app.test", v1)
	r.Set("other.test", []string{upstream(t, "other")})

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				code, body := do(t, r, "app.test", "/")
				if code != http.StatusOK || !(strings.HasPrefix(body, "v1 ") || strings.HasPrefix(body, "v2 ")) {
					t.Errorf("during switch: got %d %q", code, body)
					return
				}
			}
		})
	}
	for i := range 50 {
		if i%2 == 0 {
			r.Set("app.test", v2)
		} else {
			r.Set("app.test", v1)
		}
	}
	r.Set("app.test", v2)
	close(stop)
	wg.Wait()
	for range 4 {
		if _, body := do(t, r, "app.test", "/"); !strings.HasPrefix(body, "v2 ") {
			t.Errorf("after switch: got %q, want v2", body)
		}
	}
	if _, body := do(t, r, "other.test", "/"); !strings.HasPrefix(body, "other ") {
		t.Errorf("other host: got %q, want it untouched", body)
	}
}

func TestRouter_UpstreamDown(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := ln.Addr().String()
	ln.Close()
	r := newRouter(t)
	r.Set("app.test", []string{down})
	code, body := do(t, r, "app.test", "/")
	if code != http.StatusBadGateway || body != "application at app.test is not reachable\n" {
		t.Errorf("got %d %q, want 502 %q", code, body, "application at app.test is not reachable\n")
	}
}

func TestRouter_InFlight(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	entered := make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		entered <- struct{}{}
		<-release
	}))
	defer up.Close()
	addr := strings.TrimPrefix(up.URL, "http://")
	r := New(slog.New(slog.DiscardHandler))
	r.Set("a.example", []string{addr})
	front := httptest.NewServer(r)
	defer front.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest(http.MethodGet, front.URL, nil)
		req.Host = "a.example"
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	<-entered
	if got := r.InFlight(addr); got != 1 {
		t.Errorf("InFlight during a request = %d, want 1", got)
	}
	r.Set("a.example", nil) // switching routes must not forget requests in flight
	if got := r.InFlight(addr); got != 1 {
		t.Errorf("InFlight after the route switched = %d, want 1", got)
	}
	close(release)
	<-done
	if got := r.InFlight(addr); got != 0 {
		t.Errorf("InFlight after the request = %d, want 0", got)
	}
}

// downAddr returns an address nothing listens on.
func downAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRouter_SkipsDeadUpstream: an executor that died before the
// supervisor withdrew it refuses connections; requests without a body go to
// the next executor, requests with one are not replayed.
func TestRouter_SkipsDeadUpstream(t *testing.T) {
	t.Parallel()
	down := downAddr(t)
	r := newRouter(t)
	r.Set("app.test", []string{down, upstream(t, "a"), downAddr(t), upstream(t, "b")})
	var got []string
	for range 4 {
		code, body := do(t, r, "app.test", "/")
		if code != http.StatusOK {
			t.Fatalf("got %d %q, want 200 from a live upstream", code, body)
		}
		got = append(got, strings.Fields(body)[0])
	}
	if diff := cmp.Diff([]string{"a", "a", "b", "b"}, got); diff != "" {
		t.Errorf("upstreams that answered (-want +got):\n%s", diff)
	}
	if n := r.InFlight(down); n != 0 {
		t.Errorf("InFlight(down) = %d, want 0", n)
	}

	t.Run("WithBody", func(t *testing.T) {
		r := newRouter(t)
		r.Set("app.test", []string{downAddr(t), upstream(t, "a")})
		req := httptest.NewRequest(http.MethodPost, "http://app.test/", strings.NewReader("payload"))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		if w.Code != http.StatusBadGateway {
			t.Errorf("POST to a dead upstream: got %d, want 502 (a body is never replayed)", w.Code)
		}
	})

	t.Run("AllDown", func(t *testing.T) {
		r := newRouter(t)
		r.Set("app.test", []string{downAddr(t), downAddr(t)})
		code, body := do(t, r, "app.test", "/")
		if code != http.StatusBadGateway || body != "application at app.test is not reachable\n" {
			t.Errorf("got %d %q, want one 502", code, body)
		}
	})
}

// TestRouter_BodyNotRetried: an executor that reads a request with a body
// and drops the connection without answering gets it once; the client gets
// 502, never a second execution. The connection is a reused keep-alive one,
// the case in which a transport replays requests it may replay.
func TestRouter_BodyNotRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var posts int
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if req.Method == http.MethodPost {
						mu.Lock()
						posts++
						mu.Unlock()
						return // read it all, then drop the connection unanswered
					}
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	r := newRouter(t)
	r.Set("app.test", []string{ln.Addr().String()})
	if code, body := do(t, r, "app.test", "/"); code != http.StatusOK || body != "ok" {
		t.Fatalf("GET: got %d %q, want 200 ok", code, body)
	}
	req := httptest.NewRequest(http.MethodPost, "http://app.test/charge", strings.NewReader("amount=10"))
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if w.Code != http.StatusBadGateway {
		t.Errorf("POST dropped by the executor: got %d, want 502", w.Code)
	}
	mu.Lock()
	defer mu.Unlock()
	if posts != 1 {
		t.Errorf("executor received the POST %d times, want 1", posts)
	}
}

// TestRouter_StreamsRequestBody: the executor reads the start of a body
// before the client has sent the rest, so the router does not buffer it.
func TestRouter_StreamsRequestBody(t *testing.T) {
	t.Parallel()
	first := make(chan string, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b := make([]byte, 5)
		if _, err := io.ReadFull(req.Body, b); err != nil {
			t.Errorf("executor reading the body: %v", err)
			return
		}
		first <- string(b)
		rest, _ := io.ReadAll(req.Body)
		fmt.Fprintf(w, "%s%s", b, rest)
	}))
	t.Cleanup(up.Close)
	r := newRouter(t)
	r.Set("app.test", []string{up.Listener.Addr().String()})
	front := httptest.NewServer(r)
	t.Cleanup(front.Close)

	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("part1"))
		// The rest only once the executor has the first part.
		select {
		case <-first:
			pw.Write([]byte("part2"))
			pw.Close()
		case <-time.After(time.Minute):
			pw.CloseWithError(fmt.Errorf("the executor never saw the first part: the body was buffered"))
		}
	}()
	req, _ := http.NewRequest(http.MethodPost, front.URL+"/upload", pr)
	req.Host = "app.test"
	resp, err := front.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "part1part2" {
		t.Errorf("got %d %q, want %q", resp.StatusCode, b, "part1part2")
	}
}

// TestRouter_StaleConnectionRetried: an executor that closes a keep-alive
// connection while it is idle (without saying so) does not fail the next
// GET, which goes again on a new connection.
func TestRouter_StaleConnectionRetried(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close() // after one response, however keep-alive it looked
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				}
			}()
		}
	}()
	r := newRouter(t)
	r.Set("app.test", []string{ln.Addr().String()})
	for i := range 3 {
		if code, body := do(t, r, "app.test", "/"); code != http.StatusOK || body != "ok" {
			t.Fatalf("GET %d: got %d %q, want 200 ok", i, code, body)
		}
	}
}

// TestRouter_ClientGoneClosesUpstream: a client that leaves while its
// executor is still working closes the connection to the executor, which
// sees its request canceled (a long poll ends there, not when it answers).
func TestRouter_ClientGoneClosesUpstream(t *testing.T) {
	t.Parallel()
	entered, canceled := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(time.Minute):
		}
	}))
	t.Cleanup(up.Close)
	r := newRouter(t)
	r.Set("app.test", []string{up.Listener.Addr().String()})
	ctx, cancel := context.WithCancel(t.Context())
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://app.test/result", nil)
	done := make(chan int)
	go func() {
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		done <- w.Code
	}()
	<-entered
	cancel()
	select {
	case <-canceled:
	case <-time.After(30 * time.Second):
		t.Fatal("the executor's request was not canceled when the client left")
	}
	if code := <-done; code != http.StatusBadGateway {
		t.Errorf("got %d, want 502 for a request whose client left", code)
	}
}

// TestRouter_HopByHopHeaders: hop-by-hop headers, and those the
// Connection header names, stop at the router both ways.
func TestRouter_HopByHopHeaders(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var seen []string
		for _, k := range []string{"Keep-Alive", "X-Private", "Proxy-Authorization", "X-Kept"} {
			if r.Header.Get(k) != "" {
				seen = append(seen, k)
			}
		}
		w.Header().Set("Connection", "X-Secret")
		w.Header().Set("X-Secret", "1")
		w.Header().Set("X-Public", "1")
		fmt.Fprint(w, strings.Join(seen, ","))
	}))
	t.Cleanup(up.Close)
	r := newRouter(t)
	r.Set("app.test", []string{up.Listener.Addr().String()})
	req := httptest.NewRequest(http.MethodGet, "http://app.test/", nil)
	req.Header.Set("Connection", "X-Private")
	req.Header.Set("X-Private", "1")
	req.Header.Set("Keep-Alive", "timeout=5")
	req.Header.Set("Proxy-Authorization", "Basic eDp5")
	req.Header.Set("X-Kept", "1")
	w := httptest.NewRecorder()
	r.ServeHTTP(w, req)
	if got := w.Body.String(); got != "X-Kept" {
		t.Errorf("executor saw %q, want only X-Kept", got)
	}
	if w.Header().Get("X-Secret") != "" || w.Header().Get("X-Public") != "1" {
		t.Errorf("response headers %v: want X-Public and no X-Secret", w.Header())
	}
}

// rawUpstream serves each connection with answer, after reading its
// request.
func rawUpstream(t *testing.T, answer func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					answer(c)
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// TestRouter_ResponseHeaderBounded is the attack of an executor on the
// router's memory: a response header that never ends, and informational
// responses that never end. Each request fails with 502, and the router
// stops reading the header past its bound instead of buffering all of it.
func TestRouter_ResponseHeaderBounded(t *testing.T) {
	t.Parallel()
	const sent = 64 << 20
	written := make(chan int64, 1)
	header := rawUpstream(t, func(c net.Conn) {
		line := []byte("X-Flood: " + strings.Repeat("a", 64<<10) + "\r\n")
		n, _ := c.Write([]byte("HTTP/1.1 200 OK\r\n"))
		total := int64(n)
		for total < sent {
			n, err := c.Write(line)
			total += int64(n)
			if err != nil {
				break
			}
		}
		written <- total
	})
	r := newRouter(t)
	r.Set("flood.test", []string{header})
	if code, _ := do(t, r, "flood.test", "/"); code != http.StatusBadGateway {
		t.Errorf("endless header: got %d, want 502", code)
	}
	// The router closed the connection past its bound: the executor's
	// writes failed long before it sent everything.
	if n := <-written; n >= sent {
		t.Errorf("the executor wrote a %d-byte header unhindered; want the connection closed past %d", n, maxResponseHeaderBytes)
	}
	t.Logf("attempt: an executor sends an endless response header -> 502, connection closed past %d bytes", maxResponseHeaderBytes)

	informational := rawUpstream(t, func(c net.Conn) {
		for range 100 {
			if _, err := c.Write([]byte("HTTP/1.1 102 Processing\r\n\r\n")); err != nil {
				return
			}
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	r.Set("early.test", []string{informational})
	if code, _ := do(t, r, "early.test", "/"); code != http.StatusBadGateway {
		t.Errorf("100 informational responses: got %d, want 502 after %d", code, max1xxResponses)
	}
}
