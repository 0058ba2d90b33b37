package tlsca

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// pebbleModule is the ACME test server the tests build from the module
// proxy: Let's Encrypt's Pebble, which validates challenges for real.
const pebbleModule = "github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3"

// pebble is a running Pebble.
type pebble struct {
	dir   string // ACME directory URL
	roots *x509.CertPool
}

// startPebble builds and starts Pebble, validating TLS-ALPN-01 on tlsPort
// and resolving every name to 127.0.0.1 through a DNS server of the test's
// own, and issuing certificates valid for validity. Its own HTTPS is
// signed by ca.
func startPebble(t *testing.T, ca *CA, tlsPort int, validity time.Duration) *pebble {
	t.Helper()
	dir := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "install", pebbleModule)
	build.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	build.Dir = dir // outside this module, so its go.mod does not apply
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build Pebble: %v\n%s", err, out)
	}

	leaf, err := ca.Issue("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leaf.Certificate[0]}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	listen, mgmt := freeAddr(t), freeAddr(t)
	var cfg struct {
		Pebble map[string]any `json:"pebble"`
	}
	cfg.Pebble = map[string]any{
		"listenAddress": listen, "managementListenAddress": mgmt,
		"certificate": certPath, "privateKey": keyPath,
		"tlsPort": tlsPort, "httpPort": freePort(t),
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity / time.Second)}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "pebble.json")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(filepath.Join(dir, "pebble"), "-config", cfgPath, "-dnsserver", startDNS(t))
	// Real validation (no PEBBLE_VA_ALWAYS_VALID), without Pebble's
	// random delays and rejected nonces, and no reused authorizations, so
	// that a renewal is validated again.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out, err := os.Create(filepath.Join(dir, "pebble.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("Pebble's log:\n%s", log)
		}
	})

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	var roots []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get("https://" + mgmt + "/roots/0")
		if err == nil {
			roots, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && err == nil {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("Pebble did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p := &pebble{dir: "https://" + listen + "/dir", roots: x509.NewCertPool()}
	if !p.roots.AppendCertsFromPEM(roots) {
		t.Fatalf("Pebble's root is not PEM:\n%s", roots)
	}
	return p
}

// startDNS serves DNS over TCP, as Pebble asks, on a free port: every name
// is 127.0.0.1, with no IPv6 address and no CAA record.
func startDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		for _, q := range req.Question {
			if q.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return ln.Addr().String()
}

// freeAddr returns a 127.0.0.1 address whose port was free a moment ago,
// for servers that take an address rather than a listener.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func freePort(t *testing.T) int {
	_, port, err := splitPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
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
	ca := newCA(t, Config{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := splitPort(ln.Addr().String())
	p := startPebble(t, ca, port, 30*time.Minute)

	const domain = "hangar.test"
	var renewals atomic.Int64 // allowed renewals; -1: not counted yet
	renewals.Store(-1)
	exists := func(_ context.Context, label string) (bool, error) {
		if label != "acme-greeter" {
			return false, nil
		}
		return renewals.Load() < 0 || renewals.Add(-1) >= 0, nil
	}
	var logs syncBuffer
	src, err := NewACME(ACMEConfig{
		Dir: t.TempDir(), CA: p.dir, RootCAs: ca.Pool(), Email: "ops@hangar.test",
		TLSAddr: ln.Addr().String(), DefaultHost: domain,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}, AppHosts(domain, exists))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		src.Close()
		if t.Failed() {
			t.Logf("certmagic's log:\n%s", logs.String())
		}
	})
	tln := tls.NewListener(ln, &tls.Config{GetCertificate: src.GetCertificate, NextProtos: NextProtos})
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
	addr := ln.Addr().String()
	host := "acme-greeter." + domain

	first, err := served(t, addr, host, p.roots)
	if err != nil {
		t.Fatalf("handshake for an app host: %v", err)
	}
	if got := first.DNSNames; len(got) != 1 || got[0] != host {
		t.Errorf("certificate names %v, want [%s]", got, host)
	}
	if _, err := served(t, addr, "acme-unknown."+domain, p.roots); err == nil {
		t.Errorf("handshake for an unknown app host succeeded, want a failure")
	}
	renewals.Store(1)

	// Renewed in the background of a handshake; later ones get the new
	// certificate.
	for deadline := time.Now().Add(60 * time.Second); ; {
		got, err := served(t, addr, host, p.roots)
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
