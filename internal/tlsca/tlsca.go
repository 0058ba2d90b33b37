// Package tlsca provides the certificates of Hangar's HTTPS port, from one
// of three sources: a local certificate authority (CA, the default), which
// keeps a key pair on disk and issues short-lived leaves on demand so that
// clients trust the control plane and app hosts (<org>-<app>.<domain>) once
// they trust the CA certificate (for the official CLI,
// NODE_EXTRA_CA_CERTS=<CertPath>); an operator's certificate files
// (FileCert); or an ACME CA such as Let's Encrypt (ACME). Every source asks
// one HostPolicy before it serves a name, so only the API host and existing
// apps get a certificate.
//
// It is a leaf: besides the standard library it imports only certmagic (and
// its logger, zap). The composition roots (cmd/hangar, hangartest) wire it
// into a tls.Config.
package tlsca

import (
	"container/list"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// File names inside the CA directory.
const (
	certFile = "ca.pem"
	keyFile  = "ca-key.pem"
)

// Validity periods. A leaf is renewed once less than leafRenewBefore of its
// life remains, so a long-running server never hands out an expired leaf.
const (
	caValidity      = 10 * 365 * 24 * time.Hour
	leafValidity    = 90 * 24 * time.Hour
	leafRenewBefore = 30 * 24 * time.Hour
	// backdate absorbs clock skew between the server and its clients.
	backdate = time.Hour
)

// Config configures a CA. The zero value of every field means its default.
type Config struct {
	// Dir holds ca.pem and ca-key.pem; it is created (mode 0700) if missing.
	// Required.
	Dir string
	// DefaultHost is the name a leaf is issued for when the client sends no
	// SNI, which is what clients do when they dial an IP address. The leaf
	// then also carries the IP address the connection arrived on, so
	// https://127.0.0.1:8443 verifies. Default "localhost".
	DefaultHost string
	// MaxLeaves bounds the leaves kept in memory: past it, the least
	// recently used one is dropped (and issued again if asked for).
	// Default 1000.
	MaxLeaves int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// CA is a certificate authority whose key lives on disk. It is safe for
// concurrent use.
type CA struct {
	dir         string
	defaultHost string
	now         func() time.Time

	cert *x509.Certificate
	key  *ecdsa.PrivateKey

	maxLeaves int
	mu        sync.Mutex
	leaves    map[string]*list.Element // of *leaf, by cache key, see cached
	lru       list.List                // of *leaf, most recently used first

	issued atomic.Int64 // leaves signed, for tests
}

// leaf is one cached certificate; ready is closed once cert or err is set.
type leaf struct {
	key   string
	ready chan struct{}
	cert  *tls.Certificate
	err   error
}

// LoadOrCreate loads <dir>/ca.pem and <dir>/ca-key.pem, creating them on
// first use, with the default Config otherwise.
func LoadOrCreate(dir string) (*CA, error) {
	return Open(Config{Dir: dir})
}

// Open loads the CA in cfg.Dir, creating it on first use: an ECDSA P-256 key
// (written with mode 0600) and a self-signed certificate valid for 10 years
// with the common name "Hangar Local CA <random suffix>", so that CAs of
// different installations are told apart in trust stores. It refuses a
// directory that holds only one of the two files, or an expired CA, rather
// than silently replacing a CA that clients may already trust.
func Open(cfg Config) (*CA, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open CA: no directory given")
	}
	c := &CA{
		dir:         cfg.Dir,
		defaultHost: normalizeHost(cfg.DefaultHost),
		now:         cfg.Now,
		maxLeaves:   cfg.MaxLeaves,
		leaves:      make(map[string]*list.Element),
	}
	if c.maxLeaves <= 0 {
		c.maxLeaves = 1000
	}
	if c.defaultHost == "" {
		c.defaultHost = "localhost"
	}
	if net.ParseIP(c.defaultHost) == nil && !validDNSName(c.defaultHost) {
		return nil, fmt.Errorf("open CA: invalid default host %q", cfg.DefaultHost)
	}
	if c.now == nil {
		c.now = time.Now
	}
	if err := c.load(); errors.Is(err, fs.ErrNotExist) {
		if err := c.create(); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if now := c.now(); now.After(c.cert.NotAfter) {
		return nil, fmt.Errorf("load CA %s: certificate expired at %s; remove %s and %s to create a new one",
			c.CertPath(), c.cert.NotAfter.Format(time.RFC3339), certFile, keyFile)
	}
	return c, nil
}

// CertPath returns the path of the CA certificate (PEM), the file clients
// must trust.
func (c *CA) CertPath() string { return filepath.Join(c.dir, certFile) }

// Certificate returns the CA certificate.
func (c *CA) Certificate() *x509.Certificate { return c.cert }

// Pool returns a new certificate pool that holds only the CA certificate,
// for clients (tls.Config.RootCAs) of servers using this CA.
func (c *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(c.cert)
	return p
}

// GetCertificate returns a function for tls.Config.GetCertificate. It serves
// a leaf for the client's SNI name: a cached one, or, when policy allows
// the name, a new one, cached in memory (at most Config.MaxLeaves) and
// reissued, if policy still allows, before it expires. Concurrent
// handshakes for one name share a single issuance. A refused name costs
// neither a signature nor a cache entry. Without SNI it serves a leaf for
// the configured default host plus the local IP address of the
// connection; policy is not consulted then, because the server, not the
// client, chose those names.
func (c *CA) GetCertificate(policy HostPolicy) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		host := normalizeHost(hello.ServerName)
		if host == "" {
			names := []string{c.defaultHost}
			if ip := localIP(hello); ip != "" && ip != c.defaultHost {
				names = append(names, ip)
			}
			return c.cached(names, nil)
		}
		return c.cached([]string{host}, func() error { return allow(hello, policy, host) })
	}
}

// allow asks policy about host, within the handshake's context.
func allow(hello *tls.ClientHelloInfo, policy HostPolicy, host string) error {
	ctx := hello.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	if err := policy(ctx, host); err != nil {
		return fmt.Errorf("get certificate for %s: %w", host, err)
	}
	return nil
}

// Issue signs a new leaf certificate for host: a DNS name (SAN DNSName) or an
// IP address (SAN IPAddress), exactly, never a wildcard. A port, as in
// "localhost:8443", is dropped. It does not consult or fill the cache.
func (c *CA) Issue(host string) (*tls.Certificate, error) {
	h := normalizeHost(host)
	if hp, _, err := net.SplitHostPort(h); err == nil {
		h = hp
	}
	return c.issue([]string{strings.Trim(h, "[]")})
}

// cached returns a valid cached leaf for names, or issues one if allow
// (nil: always) returns nil. The first caller for a key issues while later
// callers wait on ready, so each name costs one signature however many
// handshakes race for it.
func (c *CA) cached(names []string, allow func() error) (*tls.Certificate, error) {
	key := strings.Join(names, ",")
	c.mu.Lock()
	l, ok := c.hit(key)
	c.mu.Unlock()
	if ok {
		<-l.ready
		return l.cert, l.err
	}
	// Asked outside the lock: the policy may query a database.
	if allow != nil {
		if err := allow(); err != nil {
			return nil, err
		}
	}
	c.mu.Lock()
	if l, ok := c.hit(key); ok { // issued meanwhile
		c.mu.Unlock()
		<-l.ready
		return l.cert, l.err
	}
	if e, ok := c.leaves[key]; ok { // near expiry
		c.lru.Remove(e)
	}
	l = &leaf{key: key, ready: make(chan struct{})}
	c.leaves[key] = c.lru.PushFront(l)
	for c.lru.Len() > c.maxLeaves {
		// Handshakes waiting on an evicted leaf still get it.
		delete(c.leaves, c.lru.Remove(c.lru.Back()).(*leaf).key)
	}
	c.mu.Unlock()

	l.cert, l.err = c.issue(names)
	if l.err != nil {
		c.mu.Lock()
		if e, ok := c.leaves[key]; ok && e.Value == l {
			c.lru.Remove(e)
			delete(c.leaves, key)
		}
		c.mu.Unlock()
	}
	close(l.ready)
	return l.cert, l.err
}

// hit returns key's leaf if it is being issued or is not near expiry,
// marking it used. c.mu must be held.
func (c *CA) hit(key string) (*leaf, bool) {
	e, ok := c.leaves[key]
	if !ok {
		return nil, false
	}
	l := e.Value.(*leaf)
	select {
	case <-l.ready:
		// A failed entry was removed, so l.cert is set.
		if !c.now().Before(l.cert.Leaf.NotAfter.Add(-leafRenewBefore)) {
			return nil, false
		}
	default: // being issued: wait for it
	}
	c.lru.MoveToFront(e)
	return l, true
}

// issue signs a leaf whose SANs are exactly names.
func (c *CA) issue(names []string) (*tls.Certificate, error) {
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: names[0]},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		AuthorityKeyId:        c.cert.SubjectKeyId,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if !validDNSName(n) {
			return nil, fmt.Errorf("issue certificate: invalid host name %q", n)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: generate key: %w", names[0], err)
	}
	now := c.now()
	tmpl.NotBefore = now.Add(-backdate)
	tmpl.NotAfter = now.Add(leafValidity)
	if tmpl.NotAfter.After(c.cert.NotAfter) {
		tmpl.NotAfter = c.cert.NotAfter
	}
	der, err := c.sign(tmpl, key.Public())
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: %w", names[0], err)
	}
	parsed, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("issue certificate for %s: parse: %w", names[0], err)
	}
	c.issued.Add(1)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: parsed}, nil
}

// sign fills the serial number and subject key ID of tmpl and signs it with
// the CA key.
func (c *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	ski, err := subjectKeyID(pub)
	if err != nil {
		return nil, err
	}
	tmpl.SubjectKeyId = ski
	return x509.CreateCertificate(rand.Reader, tmpl, c.cert, pub, c.key)
}

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

// normalizeHost lower-cases a host name and drops a trailing dot.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".")
}

// localIP returns the IP address the connection arrived on, or "".
func localIP(hello *tls.ClientHelloInfo) string {
	if hello.Conn == nil {
		return ""
	}
	addr, ok := hello.Conn.LocalAddr().(*net.TCPAddr)
	if !ok || addr.IP == nil || addr.IP.IsUnspecified() {
		return ""
	}
	if ip4 := addr.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return addr.IP.String()
}

// validDNSName reports whether n may be a DNS SAN: dot-separated labels of
// letters, digits, '-' (not leading) and '_' (outside the DNS rules but used
// by app hosts derived from names like "my_org", and accepted by Go and
// OpenSSL).
func validDNSName(n string) bool {
	if n == "" || len(n) > 253 {
		return false
	}
	for _, label := range strings.Split(n, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' {
			return false
		}
		for i := 0; i < len(label); i++ {
			ch := label[i]
			if !('a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_') {
				return false
			}
		}
	}
	return true
}
