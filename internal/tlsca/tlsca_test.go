package tlsca

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func newCA(tb testing.TB, cfg Config) *CA {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(tb.TempDir(), "ca")
	}
	c, err := Open(cfg)
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	return c
}

func verify(tb testing.TB, c *CA, cert *tls.Certificate, name string) error {
	tb.Helper()
	_, err := cert.Leaf.Verify(x509.VerifyOptions{
		DNSName:     name,
		Roots:       c.Pool(),
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		CurrentTime: c.now(),
	})
	return err
}

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "ca")
	c, err := LoadOrCreate(dir)
	if err != nil {
		t.Fatalf("LoadOrCreate: %v", err)
	}
	ca := c.Certificate()
	if !strings.HasPrefix(ca.Subject.CommonName, "Hangar Local CA ") || len(ca.Subject.CommonName) <= len("Hangar Local CA ") {
		t.Errorf("CN = %q, want \"Hangar Local CA <suffix>\"", ca.Subject.CommonName)
	}
	if !ca.IsCA || !ca.BasicConstraintsValid || ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA: IsCA=%v BasicConstraintsValid=%v KeyUsage=%b, want a CA with CertSign", ca.IsCA, ca.BasicConstraintsValid, ca.KeyUsage)
	}
	if len(ca.SubjectKeyId) == 0 || !bytes.Equal(ca.SubjectKeyId, ca.AuthorityKeyId) {
		t.Errorf("CA SubjectKeyId=%x AuthorityKeyId=%x, want equal and set", ca.SubjectKeyId, ca.AuthorityKeyId)
	}
	if got, want := ca.NotAfter.Sub(ca.NotBefore), caValidity+backdate; got != want {
		t.Errorf("CA validity = %v, want %v", got, want)
	}
	if got, want := c.CertPath(), filepath.Join(dir, "ca.pem"); got != want {
		t.Errorf("CertPath = %q, want %q", got, want)
	}
	fi, err := os.Stat(filepath.Join(dir, "ca-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != 0o600 {
		t.Errorf("key mode = %v, want 0600", got)
	}

	t.Run("Reload", func(t *testing.T) {
		again, err := LoadOrCreate(dir)
		if err != nil {
			t.Fatalf("LoadOrCreate again: %v", err)
		}
		if !again.Certificate().Equal(ca) {
			t.Errorf("reloaded CA differs: got %s, want %s", again.Certificate().Subject, ca.Subject)
		}
		// A leaf from the reloaded CA verifies against the first one's pool.
		leaf, err := again.Issue("acme-greeter.localhost")
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t, c, leaf, "acme-greeter.localhost"); err != nil {
			t.Errorf("leaf of reloaded CA: %v", err)
		}
	})
}

func TestLoadOrCreate_Errors(t *testing.T) {
	t.Parallel()
	t.Run("OnlyKey", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		newCA(t, Config{Dir: dir})
		if err := os.Remove(filepath.Join(dir, "ca.pem")); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreate(dir); err == nil {
			t.Errorf("LoadOrCreate with only the key: got nil error, want one")
		}
		if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); err != nil {
			t.Errorf("key was touched: %v", err)
		}
	})
	t.Run("Mismatch", func(t *testing.T) {
		t.Parallel()
		a, b := t.TempDir(), t.TempDir()
		newCA(t, Config{Dir: a})
		newCA(t, Config{Dir: b})
		key, err := os.ReadFile(filepath.Join(b, "ca-key.pem"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(a, "ca-key.pem"), key, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadOrCreate(a); err == nil || !strings.Contains(err.Error(), "does not match") {
			t.Errorf("got %v, want a key mismatch error", err)
		}
	})
	t.Run("Expired", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		newCA(t, Config{Dir: dir})
		later := func() time.Time { return time.Now().Add(11 * 365 * 24 * time.Hour) }
		if _, err := Open(Config{Dir: dir, Now: later}); err == nil || !strings.Contains(err.Error(), "expired") {
			t.Errorf("got %v, want an expiry error", err)
		}
	})
}

func TestCA_Issue(t *testing.T) {
	t.Parallel()
	c := newCA(t, Config{})
	tests := []struct {
		host   string
		verify string // name to verify the leaf for
		ip     bool
	}{
		{host: "acme-greeter.localhost", verify: "acme-greeter.localhost"},
		{host: "Acme-Greeter.LOCALHOST.", verify: "acme-greeter.localhost"},
		{host: "localhost:8443", verify: "localhost"},
		{host: "my_org-my_app.localhost", verify: "my_org-my_app.localhost"},
		{host: "127.0.0.1", verify: "127.0.0.1", ip: true},
		{host: "::1", verify: "::1", ip: true},
		{host: "[::1]:8443", verify: "::1", ip: true},
	}
	for _, tt := range tests {
		t.Run(tt.host, func(t *testing.T) {
			t.Parallel()
			leaf, err := c.Issue(tt.host)
			if err != nil {
				t.Fatalf("Issue: %v", err)
			}
			if err := verify(t, c, leaf, tt.verify); err != nil {
				t.Errorf("verify %s: %v", tt.verify, err)
			}
			l := leaf.Leaf
			if tt.ip {
				if len(l.IPAddresses) != 1 || len(l.DNSNames) != 0 {
					t.Errorf("SANs: IPs %v DNS %v, want exactly one IP", l.IPAddresses, l.DNSNames)
				}
			} else if len(l.DNSNames) != 1 || l.DNSNames[0] != tt.verify || len(l.IPAddresses) != 0 {
				t.Errorf("SANs: DNS %v IPs %v, want exactly [%s]", l.DNSNames, l.IPAddresses, tt.verify)
			}
			if got, want := l.NotAfter.Sub(l.NotBefore), leafValidity+backdate; got != want {
				t.Errorf("validity = %v, want %v", got, want)
			}
			if l.IsCA || len(l.ExtKeyUsage) != 1 || l.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth {
				t.Errorf("IsCA=%v ExtKeyUsage=%v, want a serverAuth leaf", l.IsCA, l.ExtKeyUsage)
			}
			if len(l.SubjectKeyId) == 0 || !bytes.Equal(l.AuthorityKeyId, c.Certificate().SubjectKeyId) {
				t.Errorf("SubjectKeyId=%x AuthorityKeyId=%x, want set and AKI = CA SKI %x", l.SubjectKeyId, l.AuthorityKeyId, c.Certificate().SubjectKeyId)
			}
		})
	}

	t.Run("NoWildcard", func(t *testing.T) {
		t.Parallel()
		leaf, err := c.Issue("acme-greeter.localhost")
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t, c, leaf, "acme-other.localhost"); err == nil {
			t.Errorf("leaf for acme-greeter.localhost verified for acme-other.localhost")
		}
	})
	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		for _, h := range []string{"", "*.localhost", "a..b", "-a.localhost", "a b.localhost"} {
			if _, err := c.Issue(h); err == nil {
				t.Errorf("Issue(%q): got nil error, want one", h)
			}
		}
	})
}

func TestCA_GetCertificate(t *testing.T) {
	t.Parallel()

	t.Run("Concurrent", func(t *testing.T) {
		t.Parallel()
		c := newCA(t, Config{})
		get := c.GetCertificate(anyApp("localhost:8443"))
		hosts := []string{"acme-greeter.localhost", "acme-other.localhost", "localhost"}
		var wg sync.WaitGroup
		var failed atomic.Int64
		certs := make([][]*tls.Certificate, len(hosts))
		for i, h := range hosts {
			certs[i] = make([]*tls.Certificate, 32)
			for j := range certs[i] {
				wg.Go(func() {
					cert, err := get(&tls.ClientHelloInfo{ServerName: h})
					if err != nil {
						failed.Add(1)
						return
					}
					certs[i][j] = cert
				})
			}
		}
		wg.Wait()
		if n := failed.Load(); n != 0 {
			t.Fatalf("%d GetCertificate calls failed", n)
		}
		if got, want := c.issued.Load(), int64(len(hosts)); got != want {
			t.Errorf("issued %d leaves, want %d (one per host)", got, want)
		}
		for i, h := range hosts {
			for _, cert := range certs[i] {
				if cert != certs[i][0] {
					t.Fatalf("host %s: calls got different certificates", h)
				}
			}
			if err := verify(t, c, certs[i][0], h); err != nil {
				t.Errorf("verify %s: %v", h, err)
			}
		}
	})

	t.Run("NotAllowed", func(t *testing.T) {
		t.Parallel()
		c := newCA(t, Config{})
		get := c.GetCertificate(anyApp("localhost"))
		for _, h := range []string{"example.com", "evillocalhost", "localhost.example.com"} {
			if _, err := get(&tls.ClientHelloInfo{ServerName: h}); err == nil {
				t.Errorf("GetCertificate(%q): got a certificate, want an error", h)
			}
		}
		if n := c.issued.Load(); n != 0 {
			t.Errorf("issued %d leaves, want 0", n)
		}
	})

	t.Run("DeletedApp", func(t *testing.T) {
		t.Parallel()
		var now atomic.Pointer[time.Time]
		start := time.Now()
		now.Store(&start)
		c := newCA(t, Config{Now: func() time.Time { return *now.Load() }})
		var deleted atomic.Bool
		get := c.GetCertificate(AppHosts("localhost", func(context.Context, string) (bool, error) { return !deleted.Load(), nil }))
		hello := &tls.ClientHelloInfo{ServerName: "acme-greeter.localhost"}
		first, err := get(hello)
		if err != nil {
			t.Fatal(err)
		}
		// Its leaf is served until it is due for renewal, so the router
		// can answer 404; then it is not renewed.
		deleted.Store(true)
		if got, err := get(hello); err != nil || got != first {
			t.Errorf("after the app was deleted: %v, want the cached leaf", err)
		}
		at := start.Add(61 * 24 * time.Hour)
		now.Store(&at)
		if _, err := get(hello); err == nil {
			t.Errorf("a deleted app's leaf was renewed")
		}
	})

	t.Run("Renew", func(t *testing.T) {
		t.Parallel()
		var now atomic.Pointer[time.Time]
		start := time.Now()
		now.Store(&start)
		c := newCA(t, Config{Now: func() time.Time { return *now.Load() }})
		get := c.GetCertificate(anyApp("localhost"))
		hello := &tls.ClientHelloInfo{ServerName: "acme-greeter.localhost"}
		first, err := get(hello)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range []time.Duration{24 * time.Hour, 59 * 24 * time.Hour} {
			at := start.Add(d)
			now.Store(&at)
			if got, err := get(hello); err != nil || got != first {
				t.Errorf("after %v: got a new certificate (err %v), want the cached one", d, err)
			}
		}
		at := start.Add(61 * 24 * time.Hour)
		now.Store(&at)
		renewed, err := get(hello)
		if err != nil {
			t.Fatal(err)
		}
		if renewed == first || !renewed.Leaf.NotAfter.After(first.Leaf.NotAfter) {
			t.Errorf("after 61 days: NotAfter %v, want a renewed leaf later than %v", renewed.Leaf.NotAfter, first.Leaf.NotAfter)
		}
		if err := verify(t, c, renewed, "acme-greeter.localhost"); err != nil {
			t.Errorf("verify renewed: %v", err)
		}
	})
}

// TestCA_Handshake runs real TLS handshakes through a listener, the way a
// client that trusts only the CA (like the official CLI with
// NODE_EXTRA_CA_CERTS) reaches the server.
func TestCA_Handshake(t *testing.T) {
	t.Parallel()
	c := newCA(t, Config{})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		GetCertificate: c.GetCertificate(anyApp("localhost:8443")),
		MinVersion:     tls.VersionTLS12,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
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

	tests := []struct {
		name       string
		serverName string // SNI and verified name; "" dials the IP without SNI
		verifyIP   string
		wantErr    bool
	}{
		{name: "AppHost", serverName: "acme-greeter.localhost"},
		{name: "Domain", serverName: "localhost"},
		{name: "NoSNI", verifyIP: "127.0.0.1"},
		{name: "NotAllowed", serverName: "example.com", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := &tls.Config{RootCAs: c.Pool(), ServerName: tt.serverName}
			if tt.serverName == "" {
				// crypto/tls sends no SNI for an IP address and verifies
				// it against the IP SANs.
				cfg.ServerName = tt.verifyIP
			}
			d := &net.Dialer{Timeout: 5 * time.Second}
			conn, err := tls.DialWithDialer(d, "tcp", addr, cfg)
			if tt.wantErr {
				if err == nil {
					conn.Close()
					t.Fatalf("handshake with SNI %q succeeded, want failure", tt.serverName)
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v", err)
			}
			defer conn.Close()
			leaf := conn.ConnectionState().PeerCertificates[0]
			if tt.serverName == "" {
				if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != tt.verifyIP || len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != "localhost" {
					t.Errorf("no-SNI leaf SANs: DNS %v IP %v, want [localhost] [%s]", leaf.DNSNames, leaf.IPAddresses, tt.verifyIP)
				}
			}
		})
	}
}

// anyApp is the policy of a server on domain where every app label exists.
func anyApp(domain string) HostPolicy {
	return AppHosts(domain, func(context.Context, string) (bool, error) { return true, nil })
}

func TestAppHosts(t *testing.T) {
	t.Parallel()
	apps := map[string]bool{"acme-greeter": true}
	exists := func(_ context.Context, label string) (bool, error) {
		if label == "broken" {
			return false, errors.New("database down")
		}
		return apps[label], nil
	}
	tests := []struct {
		domain, host string
		want         bool
	}{
		{"localhost:8443", "localhost", true},
		{"localhost:8443", "acme-greeter.localhost", true},
		{"localhost", "ACME-greeter.localhost.", true},
		{"localhost", "acme-other.localhost", false},
		{"localhost", "x.acme-greeter.localhost", false},
		{"localhost", "broken.localhost", false},
		{"localhost", "evillocalhost", false},
		{"localhost", "localhost.evil.com", false},
		{"hangar.example.com", "acme-greeter.hangar.example.com", true},
		{"hangar.example.com", "example.com", false},
		{"", "localhost", false},
	}
	for _, tt := range tests {
		err := AppHosts(tt.domain, exists)(t.Context(), tt.host)
		if got := err == nil; got != tt.want {
			t.Errorf("AppHosts(%q)(%q) = %v, want allowed %v", tt.domain, tt.host, err, tt.want)
		}
	}
}

// TestCA_UnknownNames is a flood of handshakes with made-up SNI names under
// the domain, as an attacker would send: each fails, and none costs a
// signature, a cache entry or lasting memory.
func TestCA_UnknownNames(t *testing.T) {
	t.Parallel()
	c := newCA(t, Config{})
	exists := func(_ context.Context, label string) (bool, error) { return label == "acme-greeter", nil }
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: c.GetCertificate(AppHosts("localhost", exists))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.(*tls.Conn).Handshake()
			}()
		}
	}()
	dial := func(name string) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{RootCAs: c.Pool(), ServerName: name})
		if err == nil {
			conn.Close()
		}
		return err
	}
	if err := dial("acme-greeter.localhost"); err != nil {
		t.Fatalf("handshake for an existing app: %v", err)
	}
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
			if dial(fmt.Sprintf("x%d-%x.localhost", i, i*7919)) == nil {
				ok.Add(1)
			}
		})
	}
	wg.Wait()
	after := heap()
	if got := ok.Load(); got != 0 {
		t.Errorf("%d of %d unknown names got a certificate, want none", got, n)
	}
	if got := c.issued.Load(); got != 1 {
		t.Errorf("issued %d leaves, want 1 (the existing app's)", got)
	}
	if got := c.cachedLeaves(); got != 1 {
		t.Errorf("%d leaves cached, want 1", got)
	}
	// Minting would cost about 9 KiB each (55 MB for 6,000 names, measured
	// before this policy); 8 MiB absorbs the runtime's own noise.
	if grown := int64(after) - int64(before); grown > 8<<20 {
		t.Errorf("heap in use grew by %d KiB over %d unknown names, want it flat", grown>>10, n)
	}
	t.Logf("heap in use: %d KiB before, %d KiB after %d unknown names", before>>10, after>>10, n)
}

func TestCA_CacheBounded(t *testing.T) {
	t.Parallel()
	c := newCA(t, Config{MaxLeaves: 3})
	get := c.GetCertificate(anyApp("localhost"))
	hello := func(h string) *tls.ClientHelloInfo { return &tls.ClientHelloInfo{ServerName: h + ".localhost"} }
	first, err := get(hello("a"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"b", "c", "a", "d"} { // "a" used again: "b" is the oldest
		if _, err := get(hello(h)); err != nil {
			t.Fatal(err)
		}
	}
	if got := c.cachedLeaves(); got != 3 {
		t.Errorf("%d leaves cached, want 3", got)
	}
	if again, _ := get(hello("a")); again != first {
		t.Errorf("a recently used leaf was evicted")
	}
	issued := c.issued.Load()
	if _, err := get(hello("b")); err != nil {
		t.Fatal(err)
	}
	if got := c.issued.Load(); got != issued+1 {
		t.Errorf("the least recently used leaf was kept: issued %d, want %d", got, issued+1)
	}
}

// cachedLeaves returns how many leaves are cached.
func (c *CA) cachedLeaves() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.leaves)
}
