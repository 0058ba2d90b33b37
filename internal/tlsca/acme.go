package tlsca

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// LetsEncrypt is the ACME directory of Let's Encrypt's production CA.
const LetsEncrypt = certmagic.LetsEncryptProductionCA

// ACMEConfig configures an ACME certificate source. The zero value of each
// field means its default.
type ACMEConfig struct {
	// Dir holds the ACME account and the certificates obtained, so that a
	// restart does not order them again. Required.
	Dir string
	// CA is the ACME directory URL. Default LetsEncrypt.
	CA string
	// Email is the ACME account's contact, told of problems by CAs that
	// mail. Default none.
	Email string
	// RootCAs are trusted for the ACME server's own HTTPS, for a private
	// ACME CA. Default the system's roots.
	RootCAs *x509.CertPool
	// TLSAddr is the address of the HTTPS listener, whose handshakes go
	// through GetCertificate: TLS-ALPN-01 challenges are answered there.
	// Required.
	TLSAddr string
	// HTTPAddr is the address of a plain-HTTP listener serving
	// HTTPHandler, which answers HTTP-01 challenges. Default "": HTTP-01
	// is off.
	HTTPAddr string
	// DefaultHost gets the certificate served to clients that send no
	// SNI. Default none: such handshakes fail.
	DefaultHost string
	// MaxCertificates bounds the certificates kept in memory; past it, a
	// random one is dropped (and loaded again from Dir when asked for).
	// Default 1000.
	MaxCertificates int
	// Logger receives certmagic's logs. Default slog.Default().
	Logger *slog.Logger
}

// ACME gets certificates from an ACME CA, such as Let's Encrypt, on
// demand: a handshake for a name the policy allows and that has no
// certificate yet orders one, proving control by TLS-ALPN-01 on the same
// port (or HTTP-01 when an HTTP listener is configured), and later
// handshakes and a background loop renew it. It wraps certmagic, Caddy's
// certificate manager.
type ACME struct {
	cache  *certmagic.Cache
	cfg    *certmagic.Config
	issuer *certmagic.ACMEIssuer
}

// NextProtos are the ALPN protocols of an HTTPS server using ACME: HTTP/2,
// HTTP/1.1, and acme-tls/1, which TLS-ALPN-01 validation connects with.
var NextProtos = []string{"h2", "http/1.1", acmez.ACMETLS1Protocol}

// NewACME returns an ACME source serving the names policy allows. Close
// stops its background renewals.
func NewACME(cfg ACMEConfig, policy HostPolicy) (*ACME, error) {
	if cfg.Dir == "" || cfg.TLSAddr == "" {
		return nil, errors.New("acme: Dir and TLSAddr are required")
	}
	if cfg.CA == "" {
		cfg.CA = LetsEncrypt
	}
	if cfg.MaxCertificates <= 0 {
		cfg.MaxCertificates = 1000
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	tlsHost, tlsPort, err := splitPort(cfg.TLSAddr)
	if err != nil {
		return nil, fmt.Errorf("acme: TLS address: %w", err)
	}
	log := zap.New(slogCore{h: cfg.Logger.Handler()})
	a := &ACME{}
	a.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return a.cfg, nil },
		Capacity:         cfg.MaxCertificates,
		Logger:           log,
	})
	a.cfg = certmagic.New(a.cache, certmagic.Config{
		Storage:           &certmagic.FileStorage{Path: cfg.Dir},
		DefaultServerName: cfg.DefaultHost,
		OnDemand:          &certmagic.OnDemandConfig{DecisionFunc: policy},
		Logger:            log,
	})
	tmpl := certmagic.ACMEIssuer{
		CA: cfg.CA, Email: cfg.Email, Agreed: true, TrustedRoots: cfg.RootCAs,
		// certmagic starts its own challenge listener on these ports unless
		// they are taken; they are ours, so it finds them taken and our
		// listeners answer.
		ListenHost: tlsHost, AltTLSALPNPort: tlsPort,
		DisableHTTPChallenge: cfg.HTTPAddr == "",
		Logger:               log,
	}
	if cfg.HTTPAddr != "" {
		if _, tmpl.AltHTTPPort, err = splitPort(cfg.HTTPAddr); err != nil {
			return nil, fmt.Errorf("acme: HTTP address: %w", err)
		}
	}
	a.issuer = certmagic.NewACMEIssuer(a.cfg, tmpl)
	a.cfg.Issuers = []certmagic.Issuer{a.issuer}
	return a, nil
}

// GetCertificate is for tls.Config.GetCertificate; the tls.Config's
// NextProtos must include acme-tls/1 (see NextProtos).
func (a *ACME) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return a.cfg.GetCertificate(hello)
}

// HTTPHandler answers HTTP-01 challenges and passes other requests to
// next.
func (a *ACME) HTTPHandler(next http.Handler) http.Handler {
	return a.issuer.HTTPChallengeHandler(next)
}

// Close stops background renewals.
func (a *ACME) Close() { a.cache.Stop() }

// splitPort splits host:port with a numeric port.
func splitPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %w", p, err)
	}
	return host, port, nil
}

// slogCore is a zapcore.Core writing to an slog.Handler, so that
// certmagic logs where the rest of Hangar does.
type slogCore struct {
	h slog.Handler
}

func (c slogCore) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), slogLevel(l))
}

func (c slogCore) With(fields []zapcore.Field) zapcore.Core {
	return slogCore{h: c.h.WithAttrs(attrs(fields))}
}

func (c slogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c slogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, slogLevel(e.Level), e.Message, 0)
	r.AddAttrs(attrs(fields)...)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	return c.h.Handle(context.Background(), r)
}

func (slogCore) Sync() error { return nil }

func slogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// attrs converts zap fields through zap's map encoder.
func attrs(fields []zapcore.Field) []slog.Attr {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	return out
}
