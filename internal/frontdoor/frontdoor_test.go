package frontdoor_test

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/frontdoor"
)

// front is a front door serving on 127.0.0.1:0 as `hangar serve` does.
type front struct {
	srv   *frontdoor.Server
	addr  string
	roots *x509.CertPool
}

// start serves h behind the front door with cfg, on TLS with a certificate
// for 127.0.0.1 and *.apps.test; h is also the front door's proxy when it
// is one (the router).
func start(t testing.TB, cfg frontdoor.Config, h http.Handler) *front {
	t.Helper()
	cert, roots := selfSigned(t)
	return startTLS(t, cfg, h, &tls.Config{Certificates: []tls.Certificate{cert}}, roots)
}

// startTLS is start with the server's TLS configuration given, and the
// roots that trust it.
func startTLS(t testing.TB, cfg frontdoor.Config, h http.Handler, tc *tls.Config, roots *x509.CertPool) *front {
	t.Helper()
	p, _ := h.(frontdoor.Proxy)
	srv := frontdoor.NewServer(cfg, h, p, tc, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(frontdoor.LimitPerIP(ln, cfg)) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return &front{srv: srv, addr: ln.Addr().String(), roots: roots}
}

// client returns a client of the front door that speaks HTTP/2 when h2,
// else HTTP/1.1 only.
func (f *front) client(h2 bool) *http.Client {
	tr := &http.Transport{TLSClientConfig: f.tlsConfig(h2), ForceAttemptHTTP2: h2}
	if !h2 {
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return &http.Client{Transport: tr}
}

func (f *front) tlsConfig(h2 bool) *tls.Config {
	protos := []string{"http/1.1"}
	if h2 {
		protos = []string{"h2", "http/1.1"}
	}
	return &tls.Config{RootCAs: f.roots, ServerName: "127.0.0.1", NextProtos: protos}
}

// dial opens an HTTP/1.1 TLS connection to the front door.
func (f *front) dial(t testing.TB) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", f.addr, f.tlsConfig(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// A safety net: a test that fails must not hang.
	c.SetDeadline(time.Now().Add(2 * time.Minute))
	return c
}

func (f *front) url(path string) string { return "https://" + f.addr + path }

func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "front door test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"*.apps.test"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(c)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: c}, roots
}

var hello = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello ", r.Proto) })

func TestFrontDoor_Protocols(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{}, hello)
	for _, tc := range []struct {
		name string
		h2   bool
		want string
	}{
		{"HTTP2", true, "hello HTTP/2.0"},
		{"HTTP1", false, "hello HTTP/1.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := f.client(tc.h2).Get(f.url("/"))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if string(b) != tc.want {
				t.Errorf("got %q, want %q", b, tc.want)
			}
		})
	}
}

// TestFrontDoor_StalledBodyCut: a body that stops after 5 bytes fails the
// handler's read with a deadline error instead of holding the request.
func TestFrontDoor_StalledBodyCut(t *testing.T) {
	t.Parallel()
	errc := make(chan error, 2)
	f := start(t, frontdoor.Config{BodyReadTimeout: 500 * time.Millisecond}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		errc <- err
		if err != nil {
			http.Error(w, "stalled body", http.StatusRequestTimeout)
		}
	}))
	for _, h2 := range []bool{false, true} {
		t.Run(fmt.Sprintf("h2=%t", h2), func(t *testing.T) {
			pr, pw := io.Pipe()
			defer pw.Close() // the stall: nothing more is ever written
			go pw.Write([]byte("hello"))
			req, _ := http.NewRequest(http.MethodPost, f.url("/upload"), pr)
			req.ContentLength = 100
			go func() {
				if resp, err := f.client(h2).Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			select {
			case err := <-errc:
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("handler's read of a stalled body: got %v, want a deadline error", err)
				}
			case <-time.After(time.Minute):
				t.Fatal("handler's read of a stalled body: still blocked after a minute")
			}
		})
	}
}

// TestFrontDoor_SlowBodyLives: a body that keeps moving outlives the read
// timeout, as a long upload must: it takes 3 s, each read under 2 s.
func TestFrontDoor_SlowBodyLives(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{BodyReadTimeout: 2 * time.Second}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestTimeout)
			return
		}
		fmt.Fprintf(w, "%d bytes", len(b))
	}))
	pr, pw := io.Pipe()
	go func() {
		for range 60 {
			pw.Write([]byte("x"))
			time.Sleep(50 * time.Millisecond)
		}
		pw.Close()
	}()
	req, _ := http.NewRequest(http.MethodPost, f.url("/upload"), pr)
	resp, err := f.client(false).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(b) != "60 bytes" {
		t.Errorf("got %d %q, want 200 %q", resp.StatusCode, b, "60 bytes")
	}
}

// TestFrontDoor_IdleConnectionClosed: a keep-alive connection with no next
// request is closed by the server.
func TestFrontDoor_IdleConnectionClosed(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{IdleTimeout: 300 * time.Millisecond}, hello)
	c := f.dial(t)
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.Close {
		t.Fatal("the server asked to close after one request: want keep-alive")
	}
	if n, err := br.ReadByte(); err != io.EOF {
		t.Errorf("reading an idle connection: got %v %v, want EOF (closed by the server)", n, err)
	}
}

// TestFrontDoor_HeaderCap: headers over the cap get 431.
func TestFrontDoor_HeaderCap(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{MaxHeaderBytes: 4 << 10}, hello)
	for _, tc := range []struct {
		size int
		want int
	}{{1 << 10, http.StatusOK}, {16 << 10, http.StatusRequestHeaderFieldsTooLarge}} {
		req, _ := http.NewRequest(http.MethodGet, f.url("/"), nil)
		req.Header.Set("X-Big", strings.Repeat("a", tc.size))
		resp, err := f.client(false).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%d-byte header: got %d, want %d", tc.size, resp.StatusCode, tc.want)
		}
	}
}

// TestFrontDoor_ConnsPerIP: connections over the per-IP cap are closed
// before their handshake; closing one makes room.
func TestFrontDoor_ConnsPerIP(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{MaxConnsPerIP: 2}, hello)
	first := f.dial(t)
	f.dial(t)
	if c, err := tls.Dial("tcp", f.addr, f.tlsConfig(false)); err == nil {
		c.Close()
		t.Fatal("third connection from one IP: handshake succeeded, want it refused")
	}
	first.Close()
	// The server notices the close when its read fails: poll until then.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		c, err := tls.Dial("tcp", f.addr, f.tlsConfig(false))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after closing a connection: still refused: %v", err)
		}
	}
}

// TestFrontDoor_ShutdownDrains: Shutdown lets a request in flight finish
// while new connections are refused.
func TestFrontDoor_ShutdownDrains(t *testing.T) {
	t.Parallel()
	entered, release := make(chan struct{}), make(chan struct{})
	f := start(t, frontdoor.Config{}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
		fmt.Fprint(w, "finished")
	}))
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := f.client(true).Get(f.url("/slow"))
		if err != nil {
			got <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		got <- result{string(b), err}
	}()
	<-entered
	shut := make(chan error, 1)
	go func() { shut <- f.srv.Shutdown(context.Background()) }()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		c, err := net.Dial("tcp", f.addr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("during shutdown: new connections still accepted")
		}
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "finished" {
		t.Errorf("request in flight: got %q, %v; want %q", r.body, r.err, "finished")
	}
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
