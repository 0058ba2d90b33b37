package auth

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// The device login flow (RFC 8628): `dbos-cloud login` asks for a device
// code (Start), shows the user code and the approval page's URL, and polls
// (Redeem) while the user signs in on the page (a session: NewSession,
// Session) and approves or denies the code (Decide).
const (
	// deviceCodeTTL is how long a device code lives.
	deviceCodeTTL = 15 * time.Minute
	// deviceInterval is the polling interval devices are told.
	deviceInterval = 5 * time.Second
	// SessionTTL is how long a sign-in on the approval page lasts.
	SessionTTL = 15 * time.Minute
)

// Approving and denying device codes is limited per client address, so
// that a signed-in client cannot try user codes (20^8 of them) in bulk:
// one could otherwise attach someone's device to its own account, or deny
// logins.
const (
	MaxDecisions   = 10
	DecisionWindow = time.Minute
)

// LoginStore is what the login flows keep in the metadata database;
// *store.DB satisfies it.
type LoginStore interface {
	// CreateDeviceCode stores a device authorization. KindConflict when
	// its user code is taken.
	CreateDeviceCode(ctx context.Context, dc hangar.DeviceCode) error
	// RedeemDeviceCode answers one poll of a device, storing refreshToken
	// for the approving user once approved.
	RedeemDeviceCode(ctx context.Context, deviceCode string, now time.Time, refreshID, refreshToken string) (hangar.DeviceState, hangar.User, error)
	// DecideDeviceCode approves or denies a pending code. KindNotFound.
	DecideDeviceCode(ctx context.Context, userCode, userID string, approve bool, now time.Time) error
	// UseRefreshToken returns the user of a live refresh token.
	// KindUnauthorized.
	UseRefreshToken(ctx context.Context, token string, now time.Time, maxAge, maxIdle time.Duration) (hangar.User, error)
	// AccountByID returns an account, registered or not.
	// KindUnauthorized when it is gone or disabled.
	AccountByID(ctx context.Context, id string) (hangar.User, error)
}

// LoginsConfig configures Logins.
type LoginsConfig struct {
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Logins runs the login flows that end in tokens: the device
// authorization, the refresh-token exchange and the approval page's
// sessions. It is safe for concurrent use.
type Logins struct {
	now       func() time.Time
	store     LoginStore
	tokens    *Issuer
	decisions *Limiter
}

// NewLogins returns the login flows over st, issuing access tokens with
// tokens.
func NewLogins(cfg LoginsConfig, st LoginStore, tokens *Issuer) *Logins {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Logins{now: cfg.Now, store: st, tokens: tokens, decisions: NewLimiter(MaxDecisions, DecisionWindow)}
}

// Start starts a device login: a new device code, whose user code is
// normalized (FormatUserCode shows it).
func (l *Logins) Start(ctx context.Context) (hangar.DeviceCode, error) {
	now := l.now()
	dc := hangar.DeviceCode{
		DeviceCode: "hgd_" + NewSecret(32), Interval: deviceInterval,
		CreatedAt: now, ExpiresAt: now.Add(deviceCodeTTL),
	}
	var err error
	for range 5 { // a clash of user codes is rare; draw again
		dc.UserCode = newUserCode()
		if err = l.store.CreateDeviceCode(ctx, dc); hangar.KindOf(err) != hangar.KindConflict {
			break
		}
	}
	return dc, err
}

// Grant is what an approved device gets, once.
type Grant struct {
	AccessToken, RefreshToken string
	// ExpiresIn is the access token's remaining life.
	ExpiresIn time.Duration
}

// Redeem answers one poll of a device: the state of its code and, once
// approved, the Grant.
func (l *Logins) Redeem(ctx context.Context, deviceCode string) (hangar.DeviceState, Grant, error) {
	refresh := NewRefreshToken()
	state, u, err := l.store.RedeemDeviceCode(ctx, deviceCode, l.now(), uuid.NewString(), refresh)
	if err != nil || state != hangar.DeviceApproved {
		return state, Grant{}, err
	}
	tok, exp, err := l.tokens.Issue(u)
	if err != nil {
		return state, Grant{}, err
	}
	return state, Grant{AccessToken: tok, RefreshToken: refresh, ExpiresIn: exp.Sub(l.now())}, nil
}

// Decide approves or denies the code userCode (as typed) for u, signed in
// on the approval page from the address client. Errors: KindInvalid (not a
// code), KindTooMany (a RetryError: too many decisions from client),
// KindNotFound (unknown, expired or used).
func (l *Logins) Decide(ctx context.Context, u hangar.User, userCode, client string, approve bool) error {
	code := NormalizeUserCode(userCode)
	if len(code) != UserCodeLen {
		// A sentence as the page shows it.
		return hangar.Errorf(hangar.KindInvalid, "Enter the 8-letter code dbos-cloud login shows, like BCDF-GHJK")
	}
	now := l.now()
	if until, ok := l.decisions.Take(client, now); !ok {
		after := until.Sub(now)
		return RetryError{Err: hangar.Errorf(hangar.KindTooMany, "too many codes tried from your address: try again in %d seconds", int((after+time.Second-1)/time.Second)), After: after}
	}
	return l.store.DecideDeviceCode(ctx, code, u.ID, approve, now)
}

// SignInWithRefreshToken returns the user of a refresh token, as the
// approval page's sign-in form takes one. KindUnauthorized.
func (l *Logins) SignInWithRefreshToken(ctx context.Context, token string) (hangar.User, error) {
	u, err := l.store.UseRefreshToken(ctx, token, l.now(), RefreshMaxAge, RefreshMaxIdle)
	if hangar.KindOf(err) == hangar.KindUnauthorized {
		return u, hangar.Errorf(hangar.KindUnauthorized, "that refresh token is invalid, expired or revoked")
	}
	return u, err
}

// Exchange exchanges a refresh token for an access token and its expiry
// (the Auth0-shaped refresh grant). KindUnauthorized.
func (l *Logins) Exchange(ctx context.Context, refreshToken string) (string, time.Time, error) {
	u, err := l.store.UseRefreshToken(ctx, refreshToken, l.now(), RefreshMaxAge, RefreshMaxIdle)
	if err != nil {
		return "", time.Time{}, err
	}
	return l.tokens.Issue(u)
}

// NewSession returns the token of a sign-in of u on the approval page,
// which the page keeps for SessionTTL.
func (l *Logins) NewSession(u hangar.User) (string, error) {
	tok, _, err := l.tokens.Issue(u)
	return tok, err
}

// Session returns the account signed in with a session token, if that
// account still exists and is enabled. KindUnauthorized for a token that
// is not valid or an account that is gone; other kinds when the account
// could not be looked up.
func (l *Logins) Session(ctx context.Context, token string) (hangar.User, error) {
	id, err := l.tokens.Verify(token)
	if err != nil {
		return hangar.User{}, err
	}
	u, err := l.store.AccountByID(ctx, id)
	if err != nil {
		return hangar.User{}, fmt.Errorf("look up device page account: %w", err)
	}
	return u, nil
}
