package frontdoor_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/hangar-oss/hangar/internal/frontdoor"
)

// HTTP/2 served by the front door's event loop (docs/h2-loop.md): a
// client that asks for an app's host by name (SNI) gets it.

// appClient returns an HTTP/2 client of the front door that names host
// in its TLS handshake, as a browser opening https://host/ does.
func (f *front) appClient(host string) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: f.roots, ServerName: host, NextProtos: []string{"h2"}},
		ForceAttemptHTTP2: true,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, f.addr)
		},
	}
	return &http.Client{Transport: tr}
}

// protoClient returns a client that speaks proto to the front door:
// "HTTP/1.1", "HTTP/2" (no server name: net/http's server) or "HTTP/2 on
// the loop" (host as the server name: an app's host, served by the loop).
func (f *front) protoClient(proto, host string) *http.Client {
	switch proto {
	case "HTTP/1.1":
		return f.client(false)
	case "HTTP/2":
		return f.client(true)
	}
	return f.appClient(host)
}

// h2Settings returns the server's first SETTINGS on a connection that
// names host.
func (f *front) h2Settings(t *testing.T, host string) map[http2.SettingID]uint32 {
	t.Helper()
	c, err := tls.Dial("tcp", f.addr, &tls.Config{RootCAs: f.roots, ServerName: host, NextProtos: []string{"h2"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Minute))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatal(err)
		}
		if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
			m := map[http2.SettingID]uint32{}
			sf.ForeachSetting(func(s http2.Setting) error { m[s.ID] = s.Val; return nil })
			return m
		}
	}
}

// TestFrontDoor_H2OnLoop: requests of every kind over HTTP/2 to an app's
// host, served by the loop (its settings, not net/http's), reach the
// executor and come back whole.
func TestFrontDoor_H2OnLoop(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Write(big)
		case "/chunked":
			w.Header().Set("Trailer", "X-Sum")
			for i := range 50 {
				fmt.Fprintf(w, "chunk %d\n", i)
				w.(http.Flusher).Flush()
			}
			w.Header().Set("X-Sum", "done")
		case "/echo":
			h := sha256.New()
			n, err := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%s %d %x %v", r.Method, n, h.Sum(nil), err)
		case "/empty":
			w.WriteHeader(http.StatusNoContent)
		default:
			fmt.Fprintf(w, "%s %s %s host=%s xff=%s xfp=%s cookie=%q", r.Proto, r.Method, r.URL, r.Host,
				r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), r.Header.Get("Cookie"))
		}
	}))
	if got := f.h2Settings(t, "h2.apps.test")[http2.SettingMaxConcurrentStreams]; got != 100 {
		t.Fatalf("an app's host: SETTINGS_MAX_CONCURRENT_STREAMS %d, want the loop's 100", got)
	}
	c := f.appClient("h2.apps.test")
	do := func(method, path string, body io.Reader, hdr ...string) (*http.Response, string) {
		t.Helper()
		return f.do(t, c, method, "h2.apps.test", path, body, hdr...)
	}

	_, got := do("GET", "/a?b=c", nil, "Cookie", "x=1", "Cookie", "y=2", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Proto", "http")
	if want := `HTTP/1.1 GET /a?b=c host=h2.apps.test xff=127.0.0.1 xfp=https cookie="x=1; y=2"`; got != want {
		t.Errorf("GET: got %q, want %q", got, want)
	}
	resp, got := do("HEAD", "/", nil)
	if got != "" || resp.StatusCode != 200 {
		t.Errorf("HEAD: %d %q", resp.StatusCode, got)
	}
	if resp, _ := do("GET", "/empty", nil); resp.StatusCode != 204 {
		t.Errorf("204: got %d", resp.StatusCode)
	}
	if _, got := do("GET", "/big", nil); got != string(big) {
		t.Errorf("1 MiB: got %d bytes, not the executor's", len(got))
	}
	resp, got = do("GET", "/chunked", nil)
	if !strings.HasPrefix(got, "chunk 0\n") || !strings.HasSuffix(got, "chunk 49\n") || resp.Trailer.Get("X-Sum") != "done" {
		t.Errorf("chunked: %d bytes, trailer %q", len(got), resp.Trailer.Get("X-Sum"))
	}
	// A body goes through net/http's handler, streamed both ways.
	sum := sha256.Sum256(big)
	if _, got := do("POST", "/echo", bytes.NewReader(big)); got != fmt.Sprintf("POST %d %x <nil>", len(big), sum) {
		t.Errorf("POST of 1 MiB: got %q", got)
	}
	// A host without an app, on the app's connection: the router's 404.
	if resp, _ := f.do(t, c, "GET", "none.apps.test", "/", nil); resp.StatusCode != 404 {
		t.Errorf("a host without an app: got %d, want 404", resp.StatusCode)
	}

	// Small windows (16 KiB a stream, 64 KiB the connection): four 1 MiB
	// responses at once go out in pieces as the client gives them room.
	small := f.appClient("h2.apps.test")
	small.Transport.(*http.Transport).HTTP2 = &http.HTTP2Config{MaxReceiveBufferPerStream: 16 << 10, MaxReceiveBufferPerConnection: 64 << 10}
	var bigs sync.WaitGroup
	for range 4 {
		bigs.Go(func() {
			req, _ := http.NewRequest("GET", "https://h2.apps.test/big", nil)
			resp, err := small.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if b, err := io.ReadAll(resp.Body); err != nil || !bytes.Equal(b, big) {
				t.Errorf("1 MiB through small windows: %d bytes, %v", len(b), err)
			}
		})
	}
	bigs.Wait()

	// Many streams at once, on one connection.
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("https://h2.apps.test/%d", i), nil)
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if want := fmt.Sprintf("HTTP/1.1 GET /%d ", i); !strings.HasPrefix(string(b), want) {
				errs <- fmt.Errorf("stream %d: got %q", i, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, got := f.do(t, f.appClient("h2.apps.test"), "GET", "h2.apps.test", "/x", nil); !strings.HasPrefix(got, "HTTP/1.1 GET /x") {
		t.Errorf("a new connection: %q", got)
	}
}

// do sends a request for host over c and returns its response with the
// body read.
func (f *front) do(t *testing.T, c *http.Client, method, host, path string, body io.Reader, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "https://h2.apps.test"+path, body)
	req.Host = host
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Add(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: body: %v", method, path, err)
	}
	if resp.ProtoMajor != 2 {
		t.Fatalf("%s %s: %s, want HTTP/2", method, path, resp.Proto)
	}
	return resp, string(b)
}

// TestFrontDoor_H2LoopClientLeaves: a client that resets a stream while its
// executor works ends the executor's request (its connection closes), on
// both of the loop's paths (the raw one, and a body's through net/http's
// handler).
func TestFrontDoor_H2LoopClientLeaves(t *testing.T) {
	t.Parallel()
	ended := make(chan string, 2)
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		ended <- r.Method
	}))
	c := f.appClient("h2.apps.test")
	for _, method := range []string{"GET", "POST"} {
		ctx, cancel := context.WithCancel(context.Background())
		var body io.Reader
		if method == "POST" {
			body = strings.NewReader("a body")
		}
		req, _ := http.NewRequestWithContext(ctx, method, "https://h2.apps.test/", body)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cancel() // RST_STREAM
		resp.Body.Close()
		select {
		case m := <-ended:
			if m != method {
				t.Errorf("got %s's end, want %s's", m, method)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: the executor's request still runs after the client reset its stream", method)
		}
	}
}

// TestFrontDoor_H2LoopShutdown: Shutdown lets a stream in flight on the
// loop finish, tells the client with GOAWAY that no new one is taken, and
// returns once the stream is done.
func TestFrontDoor_H2LoopShutdown(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	unblock := sync.OnceFunc(func() { close(release) })
	defer unblock() // a failed test must not leave the executor waiting
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "finished")
	}))
	c := f.appClient("h2.apps.test")
	got := make(chan string, 1)
	go func() {
		resp, err := c.Get("https://h2.apps.test/")
		if err != nil {
			got <- err.Error()
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- fmt.Sprint(string(b), err)
	}()
	// An idle connection: its one stream reset by the client (the
	// executor waits for release).
	idle, _ := f.h2Dial(t, "h2.apps.test")
	if err := idle.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("h2.apps.test", "/"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	idle.WriteRSTStream(1, http2.ErrCodeCancel)
	time.Sleep(200 * time.Millisecond) // the request reaches the executor
	done := make(chan error, 1)
	go func() { done <- f.srv.Shutdown(context.Background()) }()
	time.Sleep(200 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a stream in flight", err)
	default:
	}
	// The idle connection is told (GOAWAY, no error, stream 1 the last
	// seen), then closed: its client knows what was not served.
	for {
		fr, err := idle.ReadFrame()
		if err != nil {
			t.Fatalf("the idle connection ended without GOAWAY: %v", err)
		}
		if g, ok := fr.(*http2.GoAwayFrame); ok {
			if g.ErrCode != http2.ErrCodeNo || g.LastStreamID != 1 {
				t.Errorf("GOAWAY %v, last stream %d; want NO_ERROR, 1", g.ErrCode, g.LastStreamID)
			}
			if _, err := idle.ReadFrame(); err == nil {
				t.Error("a frame after GOAWAY, want the connection closed")
			}
			break
		}
	}
	unblock()
	if b := <-got; b != "finished<nil>" {
		t.Errorf("the stream in flight got %q, want its response", b)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Shutdown did not return once the stream finished")
	}
}

// TestFrontDoor_H2LoopMalformed: a malformed request (RFC 9113, 8.2: an
// uppercase field name, a field of HTTP/1.1's connection, a pseudo-header
// field after a regular one) is reset with PROTOCOL_ERROR and reaches no
// executor; the connection goes on serving the next stream.
func TestFrontDoor_H2LoopMalformed(t *testing.T) {
	t.Parallel()
	var reached atomic.Int64
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		io.WriteString(w, "ok")
	}))
	fr, _ := f.h2Dial(t, "h2.apps.test")
	get := []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
		{Name: ":authority", Value: "h2.apps.test"}, {Name: ":path", Value: "/"}}
	bad := [][]hpack.HeaderField{
		append(slices.Clone(get), hpack.HeaderField{Name: "X-Upper", Value: "1"}),
		append(slices.Clone(get), hpack.HeaderField{Name: "connection", Value: "keep-alive"}),
		append([]hpack.HeaderField{{Name: "x-first", Value: "1"}}, get...),
		get[1:], // no :method
	}
	id := uint32(1)
	for _, fields := range bad {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: encode(fields...), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		id += 2
	}
	// A stream may not depend on itself (RFC 9113, 5.3.1): by its HEADERS,
	// well formed otherwise, or by a PRIORITY frame (here on a closed one).
	self := http2.PriorityParam{StreamDep: id}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: encode(get...), EndStream: true, EndHeaders: true, Priority: self}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WritePriority(1, http2.PriorityParam{StreamDep: 1}); err != nil {
		t.Fatal(err)
	}
	wantResets := len(bad) + 2
	id += 2
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: encode(get...), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	resets := 0
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("after %d resets: %v", resets, err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok {
			if rst.ErrCode != http2.ErrCodeProtocol || rst.StreamID >= id {
				t.Fatalf("RST_STREAM %v for stream %d", rst.ErrCode, rst.StreamID)
			}
			resets++
		}
		if d, ok := f.(*http2.DataFrame); ok && d.StreamID == id && d.StreamEnded() {
			break
		}
	}
	if resets != wantResets || reached.Load() != 1 {
		t.Errorf("%d of %d malformed requests reset, %d requests reached the executor (want only the good one)", resets, wantResets, reached.Load())
	}
}

// handlerProxy routes every host to the loop and serves what the loop
// does not relay itself with h.
type handlerProxy struct {
	frontdoor.Proxy
	h http.Handler
}

func (p handlerProxy) Routes([]byte) bool                               { return true }
func (p handlerProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) { p.h.ServeHTTP(w, r) }

// TestFrontDoor_H2RequestTrailers: a request's trailers reach the handler
// as net/http's server gives them: Trailer holds the declared keys from
// the start and their values once the body has been read to its end, and
// the loop does not write the map while the handler may read it (a proxy
// clones the request first; the race detector checks).
func TestFrontDoor_H2RequestTrailers(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{}, handlerProxy{h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The client sends the body and trailers at once: by now the
		// loop has them.
		time.Sleep(100 * time.Millisecond)
		declared := r.Clone(r.Context()).Trailer
		b, err := io.ReadAll(r.Body)
		_, ok := declared["X-Check"]
		fmt.Fprintf(w, "%s %v declared=%v trailer=%s", b, err, ok, r.Trailer.Get("X-Check"))
	})})
	trailer := http.Header{"X-Check": nil}
	req, _ := http.NewRequest("POST", "https://h2.apps.test/", io.MultiReader(strings.NewReader("body"), trailerLast{trailer}))
	req.Trailer = trailer
	resp, err := f.appClient("h2.apps.test").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); string(b) != "body <nil> declared=true trailer=sent" {
		t.Errorf("the handler saw %q, want the body, then the trailer X-Check: sent", b)
	}
}

// trailerLast ends a request body, setting X-Check in its request's
// trailer first (the client sends a request's trailers once its body
// ends).
type trailerLast struct{ trailer http.Header }

func (t trailerLast) Read([]byte) (int, error) {
	t.trailer.Set("X-Check", "sent")
	return 0, io.EOF
}
