// Package auth issues and verifies Hangar's credentials: signed JWT access
// tokens (the token the official CLI stores in .dbos/credentials) and opaque
// refresh tokens. It is a leaf: it imports only internal/hangar.
package auth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
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
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Issuer signs and verifies access tokens with an HMAC key.
type Issuer struct {
	key []byte
	cfg Config
}

// New returns an Issuer signing with key (at least 32 bytes).
func New(key []byte, cfg Config) (*Issuer, error) {
	if len(key) < 32 {
		return nil, errors.New("auth: signing key shorter than 32 bytes")
	}
	if cfg.Issuer == "" {
		cfg.Issuer = "hangar"
	}
	if cfg.AccessTTL == 0 {
		cfg.AccessTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Issuer{key: key, cfg: cfg}, nil
}

type claims struct {
	jwt.RegisteredClaims
	Name string `json:"name,omitempty"`
}

// Issue returns a signed access token for u and its expiry.
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
	s, err := tok.SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign access token: %w", err)
	}
	return s, exp, nil
}

// Verify checks an access token's signature, issuer, audience and expiry and
// returns its subject (a user ID). Errors are KindUnauthorized.
func (i *Issuer) Verify(token string) (string, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return i.key, nil },
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
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
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
