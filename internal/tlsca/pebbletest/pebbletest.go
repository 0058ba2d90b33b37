// Package pebbletest runs Let's Encrypt's Pebble, a real ACME server that
// validates challenges, for tests of ACME clients. Pebble is built from its
// module (with go install, through the module proxy) into the test's
// temporary directory; every name it validates resolves to 127.0.0.1
// through a DNS server of the package's own. Only tests import it.
package pebbletest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// module is the Pebble release the tests build.
const module = "github.com/letsencrypt/pebble/v2/cmd/pebble@v2.10.3"

// Pebble is an ACME server for a test, configured by New and run by Start.
type Pebble struct {
	// Dir is the ACME directory URL.
	Dir string
	// HTTPSRootsFile is a PEM file of the root that Pebble's own HTTPS is
	// signed with (a client's --acme-ca-roots), and HTTPSRoots the same
	// as a pool.
	HTTPSRootsFile string
	HTTPSRoots     *x509.CertPool
	// Roots holds Pebble's issuing root, which the certificates it issues
	// chain to, and RootsFile the same in PEM; set by Start.
	Roots     *x509.CertPool
	RootsFile string

	dir, bin, mgmt, listen, certPath, keyPath string
}

// New builds Pebble and picks its address and HTTPS certificate, so that
// an ACME client can be configured with Dir and HTTPSRootsFile before
// Pebble runs.
func New(t testing.TB) *Pebble {
	t.Helper()
	dir := t.TempDir()
	build := exec.CommandContext(t.Context(), "go", "install", module)
	build.Env = append(os.Environ(), "GOBIN="+dir, "GOFLAGS=-mod=mod")
	build.Dir = dir // outside any module, whose go.mod would apply
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build Pebble: %v\n%s", err, out)
	}
	p := &Pebble{dir: dir, bin: filepath.Join(dir, "pebble"), listen: freeAddr(t), mgmt: freeAddr(t)}
	p.Dir = "https://" + p.listen + "/dir"
	p.certPath, p.keyPath, p.HTTPSRootsFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "cert.pem")
	cert := selfSigned(t, p.certPath, p.keyPath)
	p.HTTPSRoots = x509.NewCertPool()
	p.HTTPSRoots.AddCert(cert)
	return p
}

// Start runs Pebble until the test ends. It validates TLS-ALPN-01 on
// 127.0.0.1:tlsPort and HTTP-01 on 127.0.0.1:httpPort, for real (no
// PEBBLE_VA_ALWAYS_VALID), and issues certificates valid for validity.
func (p *Pebble) Start(t testing.TB, tlsPort, httpPort int, validity time.Duration) {
	t.Helper()
	var cfg struct {
		Pebble map[string]any `json:"pebble"`
	}
	cfg.Pebble = map[string]any{
		"listenAddress": p.listen, "managementListenAddress": p.mgmt,
		"certificate": p.certPath, "privateKey": p.keyPath,
		"tlsPort": tlsPort, "httpPort": httpPort,
		"profiles": map[string]any{"default": map[string]any{"description": "test", "validityPeriod": int(validity / time.Second)}},
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(p.dir, "pebble.json")
	if err := os.WriteFile(cfgPath, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(p.bin, "-config", cfgPath, "-dnsserver", startDNS(t))
	// Without Pebble's random delays and rejected nonces, and without
	// reused authorizations, so that a renewal is validated again.
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	out, err := os.Create(filepath.Join(p.dir, "pebble.log"))
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
		out.Close()
		if t.Failed() {
			log, _ := os.ReadFile(out.Name())
			t.Logf("Pebble's log:\n%s", log)
		}
	})

	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: p.HTTPSRoots}}}
	var roots []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := client.Get("https://" + p.mgmt + "/roots/0")
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
	p.Roots = x509.NewCertPool()
	if !p.Roots.AppendCertsFromPEM(roots) {
		t.Fatalf("Pebble's root is not PEM:\n%s", roots)
	}
	p.RootsFile = filepath.Join(p.dir, "roots.pem")
	if err := os.WriteFile(p.RootsFile, roots, 0o644); err != nil {
		t.Fatal(err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key.
func selfSigned(t testing.TB, certPath, keyPath string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebbletest"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}

// startDNS serves DNS over TCP, as Pebble asks, on a free port: every name
// is 127.0.0.1, with no IPv6 address and no CAA record.
func startDNS(t testing.TB) string {
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
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// FreePort returns a port of 127.0.0.1 that was free a moment ago: for a
// challenge port where nothing listens, say.
func FreePort(t testing.TB) int {
	t.Helper()
	return int(netip.MustParseAddrPort(freeAddr(t)).Port())
}
