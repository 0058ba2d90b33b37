package tlsca

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// FileCert serves an operator's certificate (PEM, leaf first, then its
// chain) and key from two files, typically a wildcard *.<domain> plus
// <domain>, and picks up new files when either changes: the handshake after
// a renewal (by certbot, or an operator copying files) serves the new
// pair, without a restart. It is safe for concurrent use.
type FileCert struct {
	certPath, keyPath string
	log               *slog.Logger

	cur atomic.Pointer[loaded]
	mu  sync.Mutex // serializes reloads
}

// loaded is a pair as read from the files, with the files' identities then.
type loaded struct {
	cert          *tls.Certificate
	certFI, keyFI os.FileInfo
}

// OpenFile loads the pair certPath and keyPath. Errors name the file at
// fault, so that a wrong pair stops the server at start.
func OpenFile(certPath, keyPath string, log *slog.Logger) (*FileCert, error) {
	f := &FileCert{certPath: certPath, keyPath: keyPath, log: log}
	l, err := f.load()
	if err != nil {
		return nil, err
	}
	f.cur.Store(l)
	return f, nil
}

// GetCertificate returns a function for tls.Config.GetCertificate: the
// pair, for names policy allows and when the client sends no SNI. A name
// the certificate does not cover fails in the client's verification.
func (f *FileCert) GetCertificate(policy HostPolicy) func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
		if host := normalizeHost(hello.ServerName); host != "" {
			if err := allow(hello, policy, host); err != nil {
				return nil, err
			}
		}
		return f.current().cert, nil
	}
}

// current returns the pair, reloaded first if a file changed since it was
// read. Two stats per handshake are far cheaper than the handshake; a pair
// that fails to load (a half-copied file, a key that does not match) is
// logged and the previous one served until the files change again.
func (f *FileCert) current() *loaded {
	l := f.cur.Load()
	if !f.changed(l) {
		return l
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l = f.cur.Load(); !f.changed(l) {
		return l
	}
	next, err := f.load()
	if err != nil {
		f.log.Warn("reload TLS certificate: keeping the previous one", "err", err)
		// Remember the files as they are, so the next handshakes do not
		// parse them again; their next change is tried.
		next = &loaded{cert: l.cert}
		next.certFI, _ = os.Stat(f.certPath)
		next.keyFI, _ = os.Stat(f.keyPath)
	} else {
		f.log.Info("reloaded TLS certificate", "cert", f.certPath, "not_after", next.cert.Leaf.NotAfter)
	}
	f.cur.Store(next)
	return next
}

// changed reports whether either file differs from when l was read.
func (f *FileCert) changed(l *loaded) bool {
	return fileChanged(f.certPath, l.certFI) || fileChanged(f.keyPath, l.keyFI)
}

func fileChanged(path string, was os.FileInfo) bool {
	fi, err := os.Stat(path)
	if err != nil || was == nil {
		return err == nil // gone: keep serving what was read
	}
	return !os.SameFile(fi, was) || !fi.ModTime().Equal(was.ModTime()) || fi.Size() != was.Size()
}

// load reads and checks the pair.
func (f *FileCert) load() (*loaded, error) {
	certFI, err1 := os.Stat(f.certPath)
	keyFI, err2 := os.Stat(f.keyPath)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("load TLS certificate: %w", errors.Join(err1, err2))
	}
	cert, err := tls.LoadX509KeyPair(f.certPath, f.keyPath)
	if err != nil {
		return nil, fmt.Errorf("load TLS certificate %s with key %s: %w", f.certPath, f.keyPath, err)
	}
	return &loaded{cert: &cert, certFI: certFI, keyFI: keyFI}, nil
}
