package router

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/evloop"
	"github.com/hangar-oss/hangar/internal/rawconn"
)

// The raw path (ProxyHTTP1), as the front door calls it.

// rawGET is a request head as the front door hands it over.
func rawGET(method, host, path string) []byte {
	return fmt.Appendf(nil, "%s %s HTTP/1.1\r\nX-Kept: 1\r\nHost: %s\r\nX-Forwarded-For: 192.0.2.9\r\nX-Forwarded-Host: %s\r\nX-Forwarded-Proto: https\r\n\r\n", method, path, host, host)
}

// proxyRaw sends req for host through the raw path and returns the
// response as the client reads it, and whether the connection may go on.
func proxyRaw(t testing.TB, ctx context.Context, r *Router, host string, req []byte) (*http.Response, string, bool) {
	t.Helper()
	var out bytes.Buffer
	w := bufio.NewWriter(&out)
	keep := r.ProxyHTTP1(ctx, []byte(host), req, bytes.HasPrefix(req, []byte("HEAD ")), false, w)
	w.Flush()
	method, _, _ := strings.Cut(string(req), " ")
	resp, err := http.ReadResponse(bufio.NewReader(&out), &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the response %q: %v", out.String(), err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of %q: %v", out.String(), err)
	}
	return resp, string(b), keep
}

// TestRouter_Raw: the raw path's responses as the client sees them, for
// each way an executor frames a body, with the executor's connection
// reused whenever the framing allows.
func TestRouter_Raw(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, method, answer string
		wantBody             string
		wantHeader           http.Header // compared on its keys
		wantTrailer          http.Header
		reused               bool
	}{
		{
			name: "Length", method: "GET", answer: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-App: 1\r\n\r\nhello",
			wantBody: "hello", wantHeader: http.Header{"X-App": {"1"}}, reused: true,
		},
		{
			name: "Chunked", method: "GET",
			answer:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Sum: 42\r\n\r\n",
			wantBody: "hello world", wantHeader: http.Header{}, wantTrailer: http.Header{"X-Sum": {"42"}}, reused: true,
		},
		{
			name: "UntilClose", method: "GET", answer: "HTTP/1.1 200 OK\r\nConnection: close\r\nX-App: 1\r\n\r\nstreamed until the end",
			wantBody: "streamed until the end", wantHeader: http.Header{"X-App": {"1"}},
		},
		{
			name: "HTTP10", method: "GET", answer: "HTTP/1.0 200 OK\r\nX-App: 1\r\n\r\nold",
			wantBody: "old", wantHeader: http.Header{"X-App": {"1"}},
		},
		{
			name: "Head", method: "HEAD", answer: "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nX-App: 1\r\n\r\n",
			wantHeader: http.Header{"X-App": {"1"}}, reused: true,
		},
		{
			name: "NoContent", method: "GET", answer: "HTTP/1.1 204 No Content\r\nX-App: 1\r\n\r\n",
			wantHeader: http.Header{"X-App": {"1"}}, reused: true,
		},
		{
			name: "Informational", method: "GET", answer: "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
			wantBody: "ok", wantHeader: http.Header{}, reused: true,
		},
		{
			name: "HopByHop", method: "GET", answer: "HTTP/1.1 200 OK\r\nConnection: X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\nX-Public: 1\r\nContent-Length: 2\r\n\r\nok",
			wantBody: "ok", wantHeader: http.Header{"X-Public": {"1"}}, reused: true,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var conns atomic.Int32
			var got []string
			var mu sync.Mutex
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
					conns.Add(1)
					go func() {
						defer c.Close()
						br := bufio.NewReader(c)
						for {
							req, err := http.ReadRequest(br)
							if err != nil {
								return
							}
							mu.Lock()
							got = append(got, fmt.Sprintf("%s %s host=%s xff=%s kept=%s", req.Method, req.URL, req.Host, req.Header.Get("X-Forwarded-For"), req.Header.Get("X-Kept")))
							mu.Unlock()
							io.WriteString(c, tc.answer)
							if !tc.reused {
								return
							}
						}
					}()
				}
			}()
			r := newRouter(t)
			r.Set("app.test", []string{ln.Addr().String()})
			for range 2 {
				resp, body, keep := proxyRaw(t, t.Context(), r, "app.test", rawGET(tc.method, "App.test:443", "/p?q=1"))
				if !keep || body != tc.wantBody {
					t.Errorf("got %q keep-alive %t, want %q and keep-alive", body, keep, tc.wantBody)
				}
				for _, k := range []string{"X-App", "X-Public", "X-Secret", "Keep-Alive", "Link"} {
					if v, w := resp.Header.Values(k), tc.wantHeader.Values(k); !cmp.Equal(v, w) {
						t.Errorf("header %s: got %q, want %q", k, v, w)
					}
				}
				if tc.wantTrailer != nil {
					if diff := cmp.Diff(tc.wantTrailer, resp.Trailer); diff != "" {
						t.Errorf("trailers (-want +got):\n%s", diff)
					}
				}
			}
			want := tc.method + " /p?q=1 host=App.test:443 xff=192.0.2.9 kept=1"
			if diff := cmp.Diff([]string{want, want}, got); diff != "" {
				t.Errorf("the executor saw (-want +got):\n%s", diff)
			}
			if n, want := conns.Load(), map[bool]int32{true: 1, false: 2}[tc.reused]; n != want {
				t.Errorf("%d connections to the executor, want %d", n, want)
			}
		})
	}
}

// TestRouter_RawErrors: the raw path answers 404 for a host without an app
// and 502 for an executor that fails, skips an executor that refuses
// connections, and tells the observers.
func TestRouter_RawErrors(t *testing.T) {
	t.Parallel()
	obs := &recorder{}
	r := New(newRouter(t).logger, obs)
	if resp, _, keep := proxyRaw(t, t.Context(), r, "nope.test", rawGET("GET", "nope.test", "/")); resp.StatusCode != http.StatusNotFound || !keep {
		t.Errorf("unknown host: got %d keep-alive %t, want 404 and keep-alive", resp.StatusCode, keep)
	}
	dead := deadAddr(t)
	r.Set("dead.test", []string{dead})
	if resp, _, _ := proxyRaw(t, t.Context(), r, "dead.test", rawGET("GET", "dead.test", "/")); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("dead executor: got %d, want 502", resp.StatusCode)
	}
	r.Set("half.test", []string{dead, upstream(t, "alive")})
	for i := range 4 {
		if resp, body, _ := proxyRaw(t, t.Context(), r, "half.test", rawGET("GET", "half.test", "/")); resp.StatusCode != http.StatusOK || !strings.HasPrefix(body, "alive") {
			t.Errorf("GET %d with one executor dead: got %d %q, want 200 from the live one", i, resp.StatusCode, body)
		}
	}
	bad := rawUpstream(t, func(c net.Conn) { io.WriteString(c, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n") })
	r.Set("bad.test", []string{bad})
	if resp, _, _ := proxyRaw(t, t.Context(), r, "bad.test", rawGET("GET", "bad.test", "/")); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("unsupported transfer encoding: got %d, want 502", resp.StatusCode)
	}
	want := []string{"nope.test false 404", "dead.test true 502", "half.test true 200", "half.test true 200", "half.test true 200", "half.test true 200", "bad.test true 502"}
	if diff := cmp.Diff(want, obs.ended()); diff != "" {
		t.Errorf("observed (-want +got):\n%s", diff)
	}
}

// recorder is an Observer that remembers what it saw.
type recorder struct {
	mu   sync.Mutex
	seen []string
}

func (o *recorder) RequestStarted() {}

func (o *recorder) RequestEnded(host string, routed bool, status int, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, fmt.Sprintf("%s %t %d", host, routed, status))
}

func (o *recorder) ended() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.seen
}

// deadAddr returns an address where nothing listens.
func deadAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestRouter_RawResponseHeaderBounded: the raw path bounds an executor's
// response header as the other paths do.
func TestRouter_RawResponseHeaderBounded(t *testing.T) {
	t.Parallel()
	flood, written := floodUpstream(t, "HTTP/1.1 200 OK\r\n", "X-Flood: "+strings.Repeat("a", 64<<10)+"\r\n")
	r := newRouter(t)
	r.Set("flood.test", []string{flood})
	if resp, _, _ := proxyRaw(t, t.Context(), r, "flood.test", rawGET("GET", "flood.test", "/")); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("endless header: got %d, want 502", resp.StatusCode)
	}
	if n := <-written; n >= floodBytes {
		t.Errorf("the executor wrote a %d-byte header unhindered; want the connection closed past %d", n, maxResponseHeaderBytes)
	}
	early := rawUpstream(t, func(c net.Conn) {
		for range 100 {
			if _, err := c.Write([]byte("HTTP/1.1 102 Processing\r\n\r\n")); err != nil {
				return
			}
		}
		fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	r.Set("early.test", []string{early})
	if resp, _, _ := proxyRaw(t, t.Context(), r, "early.test", rawGET("GET", "early.test", "/")); resp.StatusCode != http.StatusBadGateway {
		t.Errorf("100 informational responses: got %d, want 502", resp.StatusCode)
	}
}

// floodBytes is what floodUpstream's executor writes at most.
const floodBytes = 64 << 20

// floodUpstream is an executor that answers with start, then repeats
// fill until it has written floodBytes or the router closes the
// connection; written gets how much it wrote.
func floodUpstream(t *testing.T, start, fill string) (addr string, written <-chan int64) {
	t.Helper()
	ch := make(chan int64, 1)
	addr = rawUpstream(t, func(c net.Conn) {
		n, _ := io.WriteString(c, start)
		total := int64(n)
		for total < floodBytes {
			n, err := io.WriteString(c, fill)
			total += int64(n)
			if err != nil {
				break
			}
		}
		ch <- total
	})
	return addr, ch
}

// TestRouter_RawBodyLinesBounded: a chunked body's lines (a chunk's size
// with its extensions, a trailer) are read whole before they are relayed;
// an executor sending one without end has its connection closed past
// maxBodyLineBytes instead of growing the router's memory.
func TestRouter_RawBodyLinesBounded(t *testing.T) {
	t.Parallel()
	for name, start := range map[string]string{
		"chunk size": "1;ext=",
		"trailer":    "5\r\nhello\r\n0\r\nX-Trailer: ",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			flood, written := floodUpstream(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+start, strings.Repeat("a", 64<<10))
			r := newRouter(t)
			r.Set("flood.test", []string{flood})
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			if r.ProxyHTTP1(t.Context(), []byte("flood.test"), rawGET("GET", "flood.test", "/"), false, false, w) {
				t.Error("the client's connection may go on after a broken body; want it closed")
			}
			if n := <-written; n >= floodBytes {
				t.Errorf("the executor wrote a %d-byte line unhindered; want its connection closed past %d", n, maxBodyLineBytes)
			}
			w.Flush()
			if !bytes.HasPrefix(out.Bytes(), []byte("HTTP/1.1 200 OK\r\n")) || bytes.HasSuffix(out.Bytes(), []byte("0\r\n\r\n")) {
				t.Errorf("the client got %q; want the head and a body cut short", truncate(out.Bytes()))
			}
		})
	}
}

// TestRouter_RawStaleConnectionRetried: on the raw path too, a pooled
// connection the executor closed while idle does not fail the next GET.
func TestRouter_RawStaleConnectionRetried(t *testing.T) {
	t.Parallel()
	addr := rawUpstream(t, func(c net.Conn) { fmt.Fprint(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok") })
	r := newRouter(t)
	r.Set("app.test", []string{addr})
	for i := range 3 {
		if resp, body, _ := proxyRaw(t, t.Context(), r, "app.test", rawGET("GET", "app.test", "/")); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Fatalf("GET %d: got %d %q, want 200 ok", i, resp.StatusCode, body)
		}
	}
}

// TestRouter_RawAmbiguousFraming: a response with both Content-Length and
// Transfer-Encoding is read as chunked, and the executor's connection is
// not reused: what follows the body on it never answers another request.
func TestRouter_RawAmbiguousFraming(t *testing.T) {
	t.Parallel()
	addr := rawUpstream(t, func(c net.Conn) {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"+
			"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled")
	})
	r := newRouter(t)
	r.Set("app.test", []string{addr})
	for i := range 2 {
		if resp, body, _ := proxyRaw(t, t.Context(), r, "app.test", rawGET("GET", "app.test", "/")); resp.StatusCode != http.StatusOK || body != "ok" {
			t.Errorf("GET %d: got %d %q, want 200 ok", i, resp.StatusCode, body)
		}
	}
}

// TestRouter_RawClientGone: when the client leaves (its context ends),
// the executor's connection is closed and the client's is not reused.
func TestRouter_RawClientGone(t *testing.T) {
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
	keep := make(chan bool)
	go func() {
		keep <- r.ProxyHTTP1(ctx, []byte("app.test"), rawGET("GET", "app.test", "/poll"), false, false, bufio.NewWriter(io.Discard))
	}()
	<-entered
	cancel()
	select {
	case <-canceled:
	case <-time.After(30 * time.Second):
		t.Fatal("the executor's request was not canceled when the client left")
	}
	if <-keep {
		t.Error("keep-alive after the client left, want the connection closed")
	}
}

// TestProxyHTTP1_ResponseReadNextTurn: under an event loop's task, a
// request to an executor whose answer is already waiting in the socket
// still lets the loop serve its other ready sockets before the response
// is read. Read at once, an executor that answered within the turn ended
// its request there, and came to serve a whole turn's clients one after
// another (docs/performance.md, "Session 22").
func TestProxyHTTP1_ResponseReadNextTurn(t *testing.T) {
	t.Parallel()
	const answer = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	pooled, ahead := make(chan struct{}), make(chan struct{})
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		http.ReadRequest(br)
		io.WriteString(c, answer)
		<-pooled
		io.WriteString(c, answer) // the second answer, before its request
		close(ahead)
		http.ReadRequest(br)
	}()
	r := newRouter(t)
	r.Set("app.test", []string{ln.Addr().String()})
	l := newLoop(t)
	get := func(before func(), then func() bool) chan bool {
		done := make(chan bool, 1)
		if !l.Go(func(task *evloop.Task) {
			before()
			w := bufio.NewWriter(io.Discard)
			r.ProxyHTTP1(evloop.WithTask(t.Context(), task), []byte("app.test"), rawGET("GET", "app.test", "/"), false, false, w)
			done <- then()
		}) {
			t.Fatal("loop stopped")
		}
		return done
	}
	<-get(func() {}, func() bool { return true }) // the connection is pooled for the loop
	close(pooled)
	<-ahead

	// Another socket of the loop, whose task waits to read.
	oln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer oln.Close()
	peer, err := net.Dial("tcp", oln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	accepted, err := oln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	other := rawconn.Wrap(accepted).(*rawconn.Conn)
	defer other.Close()
	var read atomic.Bool
	parked := make(chan struct{})
	if !l.Go(func(task *evloop.Task) {
		if err := other.Bind(task); err != nil {
			t.Error(err)
		}
		close(parked) // it parks in the read below, in this turn
		other.Read(make([]byte, 1))
		read.Store(true)
	}) {
		t.Fatal("loop stopped")
	}
	<-parked
	// The other socket becomes ready as the request starts, in its turn.
	if !<-get(func() { peer.Write([]byte{1}) }, read.Load) {
		t.Error("the response was read before the loop served its other ready socket")
	}
}
