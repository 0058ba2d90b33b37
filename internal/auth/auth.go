// Package auth owns Hangar's credentials and the flows that hand them out:
// signed JWT access tokens (the token the official CLI stores in
// .dbos/credentials) and opaque refresh tokens; password hashing under a
// concurrency limit; the device login flow (RFC 8628: user codes, polls,
// decisions, the approval page's sessions and CSRF tokens) and the
// refresh-token exchange (Logins); and the per-key Limiter that refuses
// guessing. Access tokens are signed with the newest key of a key set kept
// in the metadata database; older keys keep verifying the tokens they
// signed until those expire, so rotating the key logs nobody out.
//
// It is a leaf: it imports only internal/hangar, and declares the small
// interfaces its store satisfies. accounts, the transport (api) and the
// composition roots import it.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Audience is the audience of access tokens, as DBOS Cloud's.
const Audience = "dbos-cloud-api"

// Refresh token lifetimes (API.md §4): one year, or one month unused.
const (
	RefreshMaxAge  = 365 * 24 * time.Hour
	RefreshMaxIdle = 30 * 24 * time.Hour
)

// Config configures an Issuer.
type Config struct {
	// Issuer is the iss claim. Default "hangar".
	Issuer string
	// AccessTTL is the lifetime of access tokens. Default 24h.
	AccessTTL time.Duration
	// ReloadInterval is how often Run reloads the key set, to pick up a
	// rotation made by another process (hangar keys rotate). Default 1 minute.
	ReloadInterval time.Duration
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives key reload failures. Default slog.Default().
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Issuer == "" {
		c.Issuer = "hangar"
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = 24 * time.Hour
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// keep is how long a retired key keeps verifying: every token it signed
// has expired by then, with slack for a server that signed with it until its
// next reload.
func (c *Config) keep() time.Duration { return c.AccessTTL + c.ReloadInterval + time.Hour }

// Issuer signs and verifies access tokens with HMAC keys. It is safe for
// concurrent use.
type Issuer struct {
	cfg   Config
	keys  atomic.Pointer[KeySet]
	store KeyStore // nil when the keys are not persisted
}

// New returns an Issuer with the single key key (at least 32 bytes), which
// signs tokens without a key ID. Servers use Open, whose keys rotate.
func New(key []byte, cfg Config) (*Issuer, error) {
	return NewWithKeys(KeySet{{Secret: key}}, cfg)
}

// NewWithKeys returns an Issuer that signs with ks[0] and verifies with
// every key of ks.
func NewWithKeys(ks KeySet, cfg Config) (*Issuer, error) {
	cfg.setDefaults()
	i := &Issuer{cfg: cfg}
	if err := i.setKeys(ks); err != nil {
		return nil, err
	}
	return i, nil
}

// Open returns an Issuer whose key set is kept in st, creating it on first
// use. A signing key of an earlier Hangar (the "jwt_key" setting) joins the
// new set as a retired key, so tokens it signed stay valid until they expire.
func Open(ctx context.Context, st KeyStore, cfg Config) (*Issuer, error) {
	cfg.setDefaults()
	ks, err := loadKeys(ctx, st, cfg.Now())
	if err != nil {
		return nil, err
	}
	i, err := NewWithKeys(ks, cfg)
	if err != nil {
		return nil, err
	}
	i.store = st
	return i, nil
}

func (i *Issuer) setKeys(ks KeySet) error {
	if len(ks) == 0 {
		return errors.New("auth: empty key set")
	}
	for _, k := range ks {
		if len(k.Secret) < 32 {
			return fmt.Errorf("auth: signing key %q shorter than 32 bytes", k.ID)
		}
	}
	i.keys.Store(&ks)
	return nil
}

// Keys returns the key set in use.
func (i *Issuer) Keys() KeySet { return *i.keys.Load() }

// Reload reads the key set from the store again.
func (i *Issuer) Reload(ctx context.Context) error {
	if i.store == nil {
		return nil
	}
	ks, err := loadKeys(ctx, i.store, i.cfg.Now())
	if err != nil {
		return err
	}
	return i.setKeys(ks)
}

// Rotate adds a new signing key to the stored key set and uses it at once.
func (i *Issuer) Rotate(ctx context.Context) (KeySet, error) {
	if i.store == nil {
		return nil, errors.New("auth: this issuer's keys are not stored")
	}
	ks, err := RotateKeys(ctx, i.store, i.cfg)
	if err != nil {
		return nil, err
	}
	return ks, i.setKeys(ks)
}

// Run reloads the key set every ReloadInterval until ctx is done, so that a
// rotation made by `hangar keys rotate` takes effect without a restart.
func (i *Issuer) Run(ctx context.Context) {
	if i.store == nil {
		return
	}
	t := time.NewTicker(i.cfg.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := i.Reload(ctx); err != nil && ctx.Err() == nil {
				i.cfg.Logger.WarnContext(ctx, "reload access-token signing keys", "component", "auth", "err", err)
			}
		}
	}
}

type claims struct {
	jwt.RegisteredClaims
	Name string `json:"name,omitempty"`
}

// Issue returns an access token for u, signed with the current key, and its
// expiry.
func (i *Issuer) Issue(u hangar.User) (string, time.Time, error) {
	now := i.cfg.Now()
	exp := now.Add(i.cfg.AccessTTL)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    i.cfg.Issuer,
			Subject:   u.ID,
			Audience:  jwt.ClaimStrings{Audience},
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Name: u.Name,
	})
	key := i.Keys()[0]
	if key.ID != "" {
		tok.Header["kid"] = key.ID
	}
	s, err := tok.SignedString(key.Secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// Verify checks an access token's signature (with the key its kid names),
// issuer, audience and expiry and returns its subject (an account ID).
// Errors are KindUnauthorized.
func (i *Issuer) Verify(token string) (string, error) {
	ks := i.Keys()
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		for _, k := range ks {
			if k.ID == kid {
				return k.Secret, nil
			}
		}
		return nil, errors.New("unknown signing key")
	},
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(i.cfg.Issuer), jwt.WithAudience(Audience),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(i.cfg.Now))
	if err != nil {
		if errors.Is(err, jwt.ErrTokenExpired) {
			return "", hangar.Errorf(hangar.KindUnauthorized, "access token expired: log in again")
		}
		return "", hangar.Errorf(hangar.KindUnauthorized, "invalid access token")
	}
	if c.Subject == "" {
		return "", hangar.Errorf(hangar.KindUnauthorized, "invalid access token")
	}
	return c.Subject, nil
}

// NewSecret returns n random bytes, base64url-encoded: signing keys, refresh
// tokens and generated passwords.
func NewSecret(n int) string {
	return base64.RawURLEncoding.EncodeToString(randomBytes(n))
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}

// NewRefreshToken returns a new opaque refresh token.
func NewRefreshToken() string { return "hgr_" + NewSecret(32) }

// Principal is the authenticated caller of a request.
type Principal struct {
	User hangar.User
}

type principalKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal in ctx, if any.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// CheckOrg returns a KindForbidden error unless p acts in org: a caller naming
// another org learns nothing about what exists there.
func (p Principal) CheckOrg(org string) error {
	if p.User.Org != org {
		return hangar.Errorf(hangar.KindForbidden, "you are not a member of organization %s", org)
	}
	return nil
}
