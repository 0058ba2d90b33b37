package tlsca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for *.localhost and
// localhost with serial number serial, and its key, to the files
// cert.pem and key.pem of dir, each replaced by a rename as a renewal tool
// does. It returns the certificate.
func writePair(tb testing.TB, dir string, serial int64) *x509.Certificate {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "*.localhost"},
		DNSNames:     []string{"*.localhost", "localhost"},
		NotBefore:    time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:        true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	replace(tb, filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	replace(tb, filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatal(err)
	}
	return cert
}

func replace(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path+".new", data, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.Rename(path+".new", path); err != nil {
		tb.Fatal(err)
	}
}

// serve runs a TLS server with getCert on a free port and returns its
// address; it completes handshakes and closes the connections.
func serve(tb testing.TB, getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) string {
	tb.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: getCert})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
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
	return ln.Addr().String()
}

// served returns the leaf a handshake with SNI name gets from addr,
// trusting roots.
func served(tb testing.TB, addr, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	tb.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

func TestFileCert_ServedAndReloaded(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first := writePair(t, dir, 1)
	f, err := OpenFile(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	exists := func(_ context.Context, label string) (bool, error) { return label == "acme-greeter", nil }
	addr := serve(t, f.GetCertificate(AppHosts("localhost:8443", exists)))
	pool := func(c *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(c); return p }

	for _, name := range []string{"acme-greeter.localhost", "localhost"} {
		got, err := served(t, addr, name, pool(first))
		if err != nil || got.SerialNumber.Int64() != 1 {
			t.Fatalf("handshake for %s: %v, want the operator's certificate (serial 1)", name, err)
		}
	}
	if _, err := served(t, addr, "acme-unknown.localhost", pool(first)); err == nil {
		t.Errorf("handshake for an unknown app host succeeded, want a failure")
	}

	second := writePair(t, dir, 2)
	if got, err := served(t, addr, "acme-greeter.localhost", pool(second)); err != nil || got.SerialNumber.Int64() != 2 {
		t.Fatalf("after the files were replaced: %v, want the new certificate (serial 2)", err)
	}

	// A key that does not match (the certificate copied, not yet its
	// key) keeps the previous pair serving until the key follows.
	data, err := os.ReadFile(filepath.Join(dir, "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	third := writePair(t, t.TempDir(), 3)
	replace(t, filepath.Join(dir, "cert.pem"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: third.Raw}))
	if got, err := served(t, addr, "acme-greeter.localhost", pool(second)); err != nil || got.SerialNumber.Int64() != 2 {
		t.Errorf("with a mismatched pair: %v, want the previous certificate (serial 2)", err)
	}
	replace(t, filepath.Join(dir, "cert.pem"), data)
	if got, err := served(t, addr, "acme-greeter.localhost", pool(second)); err != nil || got.SerialNumber.Int64() != 2 {
		t.Errorf("after the pair was restored: %v, want serial 2", err)
	}
}

func TestOpenFile_Errors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writePair(t, dir, 1)
	other := t.TempDir()
	writePair(t, other, 2)
	for name, paths := range map[string][2]string{
		"Missing":  {filepath.Join(dir, "nope.pem"), filepath.Join(dir, "key.pem")},
		"Mismatch": {filepath.Join(dir, "cert.pem"), filepath.Join(other, "key.pem")},
	} {
		if _, err := OpenFile(paths[0], paths[1], slog.New(slog.DiscardHandler)); err == nil {
			t.Errorf("%s: OpenFile succeeded, want an error", name)
		}
	}
}
