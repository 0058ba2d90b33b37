package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/tlsca/pebbletest"
)

// handshake completes a TLS handshake with h's port for SNI name, trusting
// roots, and returns the certificate served.
func handshake(t *testing.T, h *Hangar, name string, roots *x509.CertPool) (*x509.Certificate, error) {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", "127.0.0.1:"+h.Port, &tls.Config{ServerName: name, RootCAs: roots})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0], nil
}

// TestCertificates_RegisteredHostsOnly: the API host and a registered
// app's host get a certificate, before the app's first deploy; a made-up
// host under the domain fails the handshake.
func TestCertificates_RegisteredHostsOnly(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	pemCA, err := os.ReadFile(h.CA)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pemCA)
	app := "cora-greeter.localhost"
	if _, err := handshake(t, h, app, roots); err == nil {
		t.Errorf("handshake for %s before it is registered succeeded, want a failure", app)
	}
	registerApp(t, h, "cora")
	for _, name := range []string{"localhost", app} {
		if _, err := handshake(t, h, name, roots); err != nil {
			t.Errorf("handshake for %s: %v", name, err)
		}
	}
	for _, name := range []string{"cora-other.localhost", "x.cora-greeter.localhost"} {
		if _, err := handshake(t, h, name, roots); err == nil {
			t.Errorf("handshake for %s succeeded, want a failure", name)
		}
	}
}

// TestCertificates_ACME runs the server with certificates from a real ACME
// server (Pebble), which validates TLS-ALPN-01 on the server's HTTPS port:
// the API host and a registered app's host get Pebble's certificates.
func TestCertificates_ACME(t *testing.T) {
	t.Parallel()
	p := pebbletest.New(t)
	h := startHangar(t, "--acme-ca", p.Dir, "--acme-ca-roots", p.HTTPSRootsFile)
	port, err := strconv.Atoi(h.Port)
	if err != nil {
		t.Fatal(err)
	}
	p.Start(t, port, pebbletest.FreePort(t), 90*24*time.Hour)
	h.CA = p.RootsFile // what the API's clients trust now

	if _, err := handshake(t, h, "localhost", p.Roots); err != nil {
		t.Fatalf("handshake for the API host: %v", err)
	}
	registerApp(t, h, "cora")
	if _, err := handshake(t, h, "cora-greeter.localhost", p.Roots); err != nil {
		t.Errorf("handshake for the app host: %v", err)
	}
	if _, err := handshake(t, h, "cora-other.localhost", p.Roots); err == nil {
		t.Errorf("handshake for an unknown app host succeeded, want a failure")
	}
}

// registerApp registers the app greeter of a new user org, on a new
// database instance, without deploying it.
func registerApp(t *testing.T, h *Hangar, org string) {
	t.Helper()
	c := h.Client(t, h.AddUser(t, org))
	ctx := context.Background()
	db := org + "db"
	if err := c.ProvisionDB(ctx, org, apiclient.ProvisionDBRequest{Name: db, AdminName: org + "_admin", AdminPassword: org + "-s3cret-pass"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, db+" available", 2*time.Minute, func() bool {
		d, err := c.DB(ctx, org, db)
		return err == nil && d.Status == "available"
	})
	if _, err := c.RegisterApp(ctx, org, apiclient.RegisterAppRequest{Name: "greeter", Database: db, Language: "node"}); err != nil {
		t.Fatal(err)
	}
}

// TestCertificates_OperatorFiles serves an operator's wildcard certificate
// and picks up replaced files without a restart.
func TestCertificates_OperatorFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certPath, keyPath := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	first := writeWildcard(t, certPath, keyPath, 1)
	h := startHangar(t, "--tls-cert", certPath, "--tls-key", keyPath)
	pool := func(c *x509.Certificate) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(c); return p }

	if got, err := handshake(t, h, "localhost", pool(first)); err != nil || got.SerialNumber.Int64() != 1 {
		t.Fatalf("handshake for the API host: %v, want the operator's certificate (serial 1)", err)
	}
	if _, err := handshake(t, h, "nobody-nothing.localhost", pool(first)); err == nil {
		t.Errorf("handshake for an unknown app host succeeded, want a failure")
	}
	second := writeWildcard(t, certPath, keyPath, 2)
	if got, err := handshake(t, h, "localhost", pool(second)); err != nil || got.SerialNumber.Int64() != 2 {
		t.Errorf("after the files were replaced: %v, want the new certificate (serial 2)", err)
	}
}

// writeWildcard writes a self-signed certificate for *.localhost and
// localhost with serial number serial, and its key, replacing each file by
// a rename as renewal tools do.
func writeWildcard(t *testing.T, certPath, keyPath string, serial int64) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "*.localhost"},
		DNSNames:  []string{"*.localhost", "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
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
	for path, block := range map[string]*pem.Block{certPath: {Type: "CERTIFICATE", Bytes: der}, keyPath: {Type: "PRIVATE KEY", Bytes: keyDER}} {
		if err := os.WriteFile(path+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".new", path); err != nil {
			t.Fatal(err)
		}
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert
}
