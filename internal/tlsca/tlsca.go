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
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
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
