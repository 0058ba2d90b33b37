package tlsca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
)

// The CA's key and certificate on disk: loaded, or created once.

// The CA's key and certificate on disk: loaded, or created once.

// load reads the CA from disk. It returns an error wrapping fs.ErrNotExist
// only when neither file exists.
func (c *CA) load() error {
	certPEM, certErr := os.ReadFile(filepath.Join(c.dir, certFile))
	keyPEM, keyErr := os.ReadFile(filepath.Join(c.dir, keyFile))
	switch {
	case errors.Is(certErr, fs.ErrNotExist) && errors.Is(keyErr, fs.ErrNotExist):
		return fs.ErrNotExist
	case certErr != nil:
		return fmt.Errorf("load CA: %w", certErr)
	case keyErr != nil:
		return fmt.Errorf("load CA: %w", keyErr)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return fmt.Errorf("load CA: %s holds no PEM certificate", c.CertPath())
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("load CA: parse %s: %w", c.CertPath(), err)
	}
	keyPath := filepath.Join(c.dir, keyFile)
	block, _ = pem.Decode(keyPEM)
	if block == nil {
		return fmt.Errorf("load CA: %s holds no PEM key", keyPath)
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("load CA: parse %s: %w", keyPath, err)
	}
	key, ok := parsed.(*ecdsa.PrivateKey)
	if !ok {
		return fmt.Errorf("load CA: %s is a %T, want an ECDSA key", keyPath, parsed)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return fmt.Errorf("load CA: %s does not match %s", keyPath, c.CertPath())
	}
	if !cert.IsCA || cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("load CA: %s is not a CA certificate", c.CertPath())
	}
	c.cert, c.key = cert, key
	return nil
}

// create makes a new CA and writes it to disk, key first: a crash in
// between leaves only the key, which load reports instead of overwriting.
func (c *CA) create() error {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("create CA: generate key: %w", err)
	}
	suffix := make([]byte, 4)
	if _, err := rand.Read(suffix); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	now := c.now()
	tmpl := &x509.Certificate{
		Subject: pkix.Name{
			CommonName:   "Hangar Local CA " + hex.EncodeToString(suffix),
			Organization: []string{"Hangar"},
		},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	// Self-signed: the template is its own parent, so sign cannot be used
	// before c.cert exists.
	ski, err := subjectKeyID(key.Public())
	if err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	tmpl.SubjectKeyId = ski
	tmpl.AuthorityKeyId = ski
	tmpl.SerialNumber, err = rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return fmt.Errorf("create CA: serial number: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return fmt.Errorf("create CA: sign: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("create CA: parse: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("create CA: marshal key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	if err := writeNew(filepath.Join(c.dir, keyFile), keyPEM, 0o600); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := writeNew(c.CertPath(), certPEM, 0o644); err != nil {
		return fmt.Errorf("create CA: %w", err)
	}
	c.cert, c.key = cert, key
	return nil
}

// writeNew writes data to a temporary file and links it into place, so the
// file appears complete or not at all and an existing file is never replaced
// (two processes creating the same CA: one fails instead of both writing).
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Link(tmp, path)
}

// subjectKeyID computes the key identifier of RFC 5280 §4.2.1.2 method 1:
// the SHA-1 of the subjectPublicKey bits, which for ECDSA are the
// uncompressed point. Node (OpenSSL) matches it with AuthorityKeyId to find a
// certificate's issuer.
func subjectKeyID(pub crypto.PublicKey) ([]byte, error) {
	ec, ok := pub.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("subject key ID: unsupported key %T", pub)
	}
	point, err := ec.Bytes()
	if err != nil {
		return nil, fmt.Errorf("subject key ID: %w", err)
	}
	sum := sha1.Sum(point)
	return sum[:], nil
}
