package tlsca

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/tlsca/pebbletest"
)

// serveTLS runs a TLS server on ln with getCert and nextProtos, completing
// handshakes and closing connections, until the test ends.
func serveTLS(t *testing.T, ln net.Listener, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), nextProtos []string) {
	tln := tls.NewListener(ln, &tls.Config{GetCertificate: getCert, NextProtos: nextProtos})
	t.Cleanup(func() { tln.Close() })
	go func() {
		for {
			conn, err := tln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.(*tls.Conn).Handshake()
				io.Copy(io.Discard, conn)
			}()
		}
	}()
}

// newACME returns an ACME source ordering from p, and its logs, which the
// test shows if it fails.
func newACME(t *testing.T, p *pebbletest.Pebble, cfg ACMEConfig, policy HostPolicy) (*ACME, *syncBuffer) {
	t.Helper()
	var logs syncBuffer
	cfg.Dir, cfg.CA, cfg.RootCAs = t.TempDir(), p.Dir, p.HTTPSRoots
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	src, err := NewACME(cfg, policy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		src.Close()
		if t.Failed() {
			t.Logf("certmagic's log:\n%s", logs.String())
		}
	})
	return src, &logs
}

// TestACME_Pebble gets a certificate for an app host from a real ACME
// server, which validates TLS-ALPN-01 on the server's own port; serves it;
// refuses unknown names without ordering; and renews it: Pebble issues
// certificates for 30 minutes, which certmagic renews at the next
// handshake (it renews whatever expires within five of its 10-minute
// checks), asking the policy first: it allows one renewal, so that none
// is in flight when the test ends.
func TestACME_Pebble(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds Pebble")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_, port, _ := splitPort(addr)
	p := pebbletest.New(t)
	p.Start(t, port, pebbletest.FreePort(t), 30*time.Minute)

	const domain = "hangar.test"
	app := uniqueLabel()
	var renewals atomic.Int64 // allowed renewals; -1: not counted yet
	renewals.Store(-1)
	exists := func(_ context.Context, label string) (bool, error) {
		if label != app {
			return false, nil
		}
		return renewals.Load() < 0 || renewals.Add(-1) >= 0, nil
	}
	src, _ := newACME(t, p, ACMEConfig{Email: "ops@hangar.test", TLSAddr: addr, DefaultHost: domain}, AppHosts(domain, exists))
	serveTLS(t, ln, src.GetCertificate, src.NextProtos())
	host := app + "." + domain

	first, err := served(t, addr, host, p.Roots)
	if err != nil {
		t.Fatalf("handshake for an app host: %v", err)
	}
	if got := first.DNSNames; len(got) != 1 || got[0] != host {
		t.Errorf("certificate names %v, want [%s]", got, host)
	}
	if _, err := served(t, addr, "acme-unknown."+domain, p.Roots); err == nil {
		t.Errorf("handshake for an unknown app host succeeded, want a failure")
	}
	renewals.Store(1)

	// Renewed in the background of a handshake; later ones get the new
	// certificate.
	for deadline := time.Now().Add(60 * time.Second); ; {
		got, err := served(t, addr, host, p.Roots)
		if err != nil {
			t.Fatalf("handshake while renewing: %v", err)
		}
		if got.SerialNumber.Cmp(first.SerialNumber) != 0 {
			break // verified against Pebble's root by served
		}
		if time.Now().After(deadline) {
			t.Fatal("the certificate was not renewed")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestACME_HTTP01 gets a certificate by HTTP-01 on the HTTP listener when
// TLS-ALPN-01 cannot succeed (Pebble validates it on a closed port).
func TestACME_HTTP01(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds Pebble")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, httpPort, _ := splitPort(hln.Addr().String())
	p := pebbletest.New(t)
	p.Start(t, pebbletest.FreePort(t), httpPort, 90*24*time.Hour)

	const domain = "hangar.test"
	app := uniqueLabel()
	exists := func(_ context.Context, label string) (bool, error) { return label == app, nil }
	src, logs := newACME(t, p, ACMEConfig{TLSAddr: ln.Addr().String(), HTTPAddr: hln.Addr().String(), DefaultHost: domain}, AppHosts(domain, exists))
	hsrv := &http.Server{Handler: src.HTTPHandler(http.NotFoundHandler())}
	go hsrv.Serve(hln)
	t.Cleanup(func() { hsrv.Close() })
	serveTLS(t, ln, src.GetCertificate, src.NextProtos())

	if _, err := served(t, ln.Addr().String(), app+"."+domain, p.Roots); err != nil {
		t.Fatalf("handshake for an app host: %v", err)
	}
	// TLS-ALPN-01 cannot have succeeded: Pebble checks it on a closed port.
	if !strings.Contains(logs.String(), "challenge_type=http-01") {
		t.Errorf("the certificate was not validated by HTTP-01")
	}
}

// uniqueLabel returns an app host label of its own for each test: certmagic
// keeps in-flight orders in a package-level map by name, so two sources in
// one process must not order the same name at once.
func uniqueLabel() string {
	return fmt.Sprintf("acme-app%d", labelSeq.Add(1))
}

var labelSeq atomic.Int64

// syncBuffer is a bytes.Buffer safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestACME_UnknownNames is a flood of handshakes with made-up names under
// the domain: each fails before certmagic loads, orders or caches
// anything, so the CA (here unreachable) is never asked and the heap stays
// flat.
func TestACME_UnknownNames(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	src, err := NewACME(ACMEConfig{
		Dir: dir, CA: "https://127.0.0.1:1/dir", TLSAddr: ln.Addr().String(),
		Logger: slog.New(slog.DiscardHandler),
	}, AppHosts("hangar.test", func(context.Context, string) (bool, error) { return false, nil }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(src.Close)
	serveTLS(t, ln, src.GetCertificate, src.NextProtos())
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	const n = 3000
	var ok atomic.Int64
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			// Any certificate served counts, trusted or not.
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(),
				&tls.Config{ServerName: fmt.Sprintf("x%d.hangar.test", i), InsecureSkipVerify: true})
			if err == nil {
				conn.Close()
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	after := heap()
	if got := ok.Load(); got != 0 {
		t.Errorf("%d of %d unknown names got a certificate, want none", got, n)
	}
	if got := src.cache.AllMatchingCertificates("x1.hangar.test"); len(got) != 0 {
		t.Errorf("%d certificates cached for an unknown name, want none", len(got))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("storage holds %d entries after unknown names, want none (nothing ordered)", len(entries))
	}
	if grown := int64(after) - int64(before); grown > 8<<20 {
		t.Errorf("heap in use grew by %d KiB over %d unknown names, want it flat", grown>>10, n)
	}
	t.Logf("heap in use: %d KiB before, %d KiB after %d unknown names", before>>10, after>>10, n)
}
