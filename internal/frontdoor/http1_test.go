package frontdoor_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/frontdoor"
)

// The front door's own HTTP/1.1 loop, in front of the router.

// echo answers with what the executor saw of the request.
var echo = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	fmt.Fprintf(w, "%s %s host=%s xff=%s xfp=%s body=%q", r.Method, r.URL, r.Host,
		r.Header.Get("X-Forwarded-For"), r.Header.Get("X-Forwarded-Proto"), b)
})

// roundTrip writes raw to c and reads one response.
func roundTrip(t *testing.T, c io.Writer, br *bufio.Reader, raw string) (*http.Response, string) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	method, _, _ := strings.Cut(raw, " ")
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("%q: %v", raw, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

// TestFrontDoor_HTTP1Handover: on one keep-alive connection, requests the
// loop serves and requests it gives to net/http (a body, an unknown host, a
// malformed head) each get their answer, and the connection goes on; on
// both, the executor sees https and the client's address.
func TestFrontDoor_HTTP1Handover(t *testing.T) {
	t.Parallel()
	f := throughRouter(t, frontdoor.Config{}, "app.apps.test", echo)
	c := f.dial(t)
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		raw, want string
		code      int
	}{
		{"GET /a HTTP/1.1\r\nHost: app.apps.test\r\nX-Forwarded-Proto: http\r\n\r\n", `GET /a host=app.apps.test xff=127.0.0.1 xfp=https body=""`, 200},
		{"HEAD /a HTTP/1.1\r\nHost: APP.apps.test:443\r\n\r\n", "", 200},
		{"GET /b HTTP/1.1\r\nHost: nowhere.apps.test\r\n\r\n", "no application at nowhere.apps.test\n", 404},
		{"POST /c HTTP/1.1\r\nHost: app.apps.test\r\nContent-Length: 5\r\n\r\nhello", `POST /c host=app.apps.test xff=127.0.0.1 xfp=https body="hello"`, 200},
		{"GET /d HTTP/1.1\r\nHost: app.apps.test\r\n\r\n", `GET /d host=app.apps.test xff=127.0.0.1 xfp=https body=""`, 200},
	} {
		resp, body := roundTrip(t, c, br, tc.raw)
		if resp.StatusCode != tc.code || body != tc.want || resp.Close {
			t.Errorf("%q: got %d %q (close %t), want %d %q on a kept connection", tc.raw, resp.StatusCode, body, resp.Close, tc.code, tc.want)
		}
	}
	c2 := f.dial(t)
	resp, _ := roundTrip(t, c2, bufio.NewReader(c2), "GET /e HTTP/1.1\r\nHost: app.apps.test\r\nBad Header: 1\r\n\r\n")
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("malformed header: got %d, want 400 (net/http's answer)", resp.StatusCode)
	}
}

// TestFrontDoor_HTTP1Trickle: requests sent a byte per TLS record on a
// keep-alive connection, whose first byte a waiting connection reads alone
// (it holds no read buffer while idle), come whole to the executor; the
// one with a body through net/http too, and the connection goes on.
func TestFrontDoor_HTTP1Trickle(t *testing.T) {
	t.Parallel()
	for _, mode := range loopModes {
		f := throughRouter(t, frontdoor.Config{Loops: mode.loops}, "app.apps.test", echo)
		c := f.dial(t)
		br := bufio.NewReader(c)
		for _, tc := range []struct{ raw, want string }{
			{"GET /a HTTP/1.1\r\nHost: app.apps.test\r\n\r\n", `GET /a host=app.apps.test xff=127.0.0.1 xfp=https body=""`},
			{"GET /b HTTP/1.1\r\nHost: app.apps.test\r\n\r\n", `GET /b host=app.apps.test xff=127.0.0.1 xfp=https body=""`},
			{"POST /b HTTP/1.1\r\nHost: app.apps.test\r\nContent-Length: 5\r\n\r\nhello", `POST /b host=app.apps.test xff=127.0.0.1 xfp=https body="hello"`},
		} {
			for i := range len(tc.raw) - 1 {
				if _, err := io.WriteString(c, tc.raw[i:i+1]); err != nil {
					t.Fatal(err)
				}
			}
			if resp, body := roundTrip(t, c, br, tc.raw[len(tc.raw)-1:]); resp.StatusCode != 200 || body != tc.want {
				t.Errorf("%s: %q a byte at a time: got %d %q, want 200 %q", mode.name, tc.raw, resp.StatusCode, body, tc.want)
			}
		}
	}
}

// TestFrontDoor_HTTP1Close: "Connection: close" from the client is
// honoured, and the loop's idle connections are closed after the idle
// timeout.
func TestFrontDoor_HTTP1Close(t *testing.T) {
	t.Parallel()
	f := throughRouter(t, frontdoor.Config{IdleTimeout: 300 * time.Millisecond}, "app.apps.test", echo)
	for _, tc := range []struct {
		name, raw string
		close     bool
	}{
		{"Requested", "GET / HTTP/1.1\r\nHost: app.apps.test\r\nConnection: close\r\n\r\n", true},
		{"Idle", "GET / HTTP/1.1\r\nHost: app.apps.test\r\n\r\n", false},
	} {
		c := f.dial(t)
		br := bufio.NewReader(c)
		resp, _ := roundTrip(t, c, br, tc.raw)
		if resp.StatusCode != http.StatusOK || resp.Close != tc.close {
			t.Errorf("%s: got %d close %t, want 200 close %t", tc.name, resp.StatusCode, resp.Close, tc.close)
		}
		if n, err := br.ReadByte(); err != io.EOF {
			t.Errorf("%s: reading on: got %v %v, want EOF (closed by the server)", tc.name, n, err)
		}
	}
}

// loopModes are the two ways the front door serves HTTP/1.1: on event
// loops (the default) and with a goroutine per connection.
var loopModes = []struct {
	name  string
	loops int
}{{"loops", 0}, {"goroutines", -1}}

// TestFrontDoor_HTTP1ClientGone: a client that leaves while its executor
// works on a GET (a long poll) cancels the executor's request.
func TestFrontDoor_HTTP1ClientGone(t *testing.T) {
	t.Parallel()
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) { testHTTP1ClientGone(t, m.loops) })
	}
}

func testHTTP1ClientGone(t *testing.T, loops int) {
	entered, canceled := make(chan struct{}), make(chan struct{})
	f := throughRouter(t, frontdoor.Config{Loops: loops}, "app.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-r.Context().Done():
			close(canceled)
		case <-time.After(time.Minute):
		}
	}))
	c := f.dial(t)
	fmt.Fprint(c, "GET /poll HTTP/1.1\r\nHost: app.apps.test\r\n\r\n")
	<-entered
	c.Close()
	select {
	case <-canceled:
	case <-time.After(30 * time.Second):
		t.Fatal("the executor's request was not canceled when the client left")
	}
}

// TestFrontDoor_HTTP1ShutdownDrains: Shutdown closes the loop's idle
// connections at once and lets a request in flight finish.
func TestFrontDoor_HTTP1ShutdownDrains(t *testing.T) {
	t.Parallel()
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) { testHTTP1ShutdownDrains(t, m.loops) })
	}
}

func testHTTP1ShutdownDrains(t *testing.T, loops int) {
	entered, release := make(chan struct{}), make(chan struct{})
	f := throughRouter(t, frontdoor.Config{Loops: loops}, "app.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(entered)
			<-release
		}
		fmt.Fprint(w, "finished")
	}))
	idle := f.dial(t)
	idleBR := bufio.NewReader(idle)
	roundTrip(t, idle, idleBR, "GET / HTTP/1.1\r\nHost: app.apps.test\r\n\r\n")
	busy := f.dial(t)
	fmt.Fprint(busy, "GET /slow HTTP/1.1\r\nHost: app.apps.test\r\n\r\n")
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(context.Background()) }()
	if n, err := idleBR.ReadByte(); err != io.EOF {
		t.Errorf("idle connection during shutdown: got %v %v, want EOF", n, err)
	}
	close(release)
	busyBR := bufio.NewReader(busy)
	resp, err := http.ReadResponse(busyBR, nil)
	if err != nil {
		t.Fatalf("request in flight: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "finished" {
		t.Errorf("request in flight: got %q, want %q", b, "finished")
	}
	if n, err := busyBR.ReadByte(); err != io.EOF {
		t.Errorf("after the request in flight: got %v %v, want EOF", n, err)
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestFrontDoor_HTTP1HeaderCap: a head too large for the loop goes to
// net/http, which caps it.
func TestFrontDoor_HTTP1HeaderCap(t *testing.T) {
	t.Parallel()
	f := throughRouter(t, frontdoor.Config{MaxHeaderBytes: 4 << 10}, "app.apps.test", echo)
	for _, tc := range []struct {
		size, want int
	}{{1 << 10, http.StatusOK}, {6 << 10, http.StatusOK}, {16 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		c := f.dial(t)
		resp, _ := roundTrip(t, c, bufio.NewReader(c), "GET / HTTP/1.1\r\nHost: app.apps.test\r\nX-Big: "+strings.Repeat("a", tc.size)+"\r\n\r\n")
		if resp.StatusCode != tc.want {
			t.Errorf("%d-byte header: got %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}

// TestFrontDoor_Handshakes: the TLS handshake, which runs in the
// connection's task on a loop: plain HTTP to the port gets a 400, a client
// that never starts its handshake is closed after the header timeout, and
// neither holds up a client behind them.
func TestFrontDoor_Handshakes(t *testing.T) {
	t.Parallel()
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			const timeout = 500 * time.Millisecond
			f := throughRouter(t, frontdoor.Config{Loops: m.loops, ReadHeaderTimeout: timeout}, "127.0.0.1", echo)
			// Before the dial: the server may accept, and start its
			// timeout, before Dial returns here.
			start := time.Now()
			silent, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()

			plain, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close()
			fmt.Fprint(plain, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
			plain.SetReadDeadline(time.Now().Add(10 * time.Second))
			if line, err := bufio.NewReader(plain).ReadString('\n'); err != nil || !strings.Contains(line, "400 Bad Request") {
				t.Errorf("plain HTTP: got %q, %v; want a 400", line, err)
			}

			resp, err := f.client(false).Get(f.url("/after"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.HasPrefix(string(b), "GET /after") {
				t.Errorf("a client behind them: got %d %q", resp.StatusCode, b)
			}

			silent.SetReadDeadline(time.Now().Add(10 * time.Second))
			if n, err := silent.Read(make([]byte, 1)); err == nil {
				t.Errorf("silent client: read %d bytes, want the connection closed", n)
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Error("silent client: still open after 10 s")
			}
			if d := time.Since(start); d < timeout {
				t.Errorf("silent client closed after %v, before the %v timeout", d, timeout)
			}
		})
	}
}

// TestFrontDoor_ShutdownDuringHandshake: a client that connected and
// never starts its handshake has no request in flight, so Shutdown does
// not wait for its header timeout.
func TestFrontDoor_ShutdownDuringHandshake(t *testing.T) {
	t.Parallel()
	for _, m := range loopModes {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			f := throughRouter(t, frontdoor.Config{Loops: m.loops, ReadHeaderTimeout: time.Minute}, "127.0.0.1", echo)
			silent, err := net.Dial("tcp", f.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer silent.Close()
			// The server has the connection once a client behind it is served.
			resp, err := f.client(false).Get(f.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			start := time.Now()
			if err := f.srv.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v after %v", err, time.Since(start))
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Shutdown took %v with a client in its handshake", d)
			}
		})
	}
}
