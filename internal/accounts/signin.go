package accounts

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Password guessing is refused per user name and client address: after
// MaxFailures wrong passwords within FailureWindow, that name from that
// address is refused (429) until the window ends. Keyed on the pair, a
// guesser elsewhere cannot lock a user out.
const (
	MaxFailures   = 5
	FailureWindow = 15 * time.Minute
)

// errWrongPassword is the one answer to a wrong name or password, so that
// it does not tell which names exist.
var errWrongPassword = hangar.Errorf(hangar.KindUnauthorized, "wrong user name or password")

// LoginStore is what password sign-ins read and write; *store.DB
// satisfies it.
type LoginStore interface {
	// LoginByName returns a user with its password hash. KindNotFound.
	LoginByName(ctx context.Context, name string) (hangar.Login, error)
	// SetPasswordHash sets (or, with "", removes) a user's password hash.
	// KindNotFound.
	SetPasswordHash(ctx context.Context, name, hash string) error
}

// Hasher computes password hashes under a concurrency limit; *auth.Hasher
// satisfies it. Both methods return auth.ErrBusy when no turn came.
type Hasher interface {
	Verify(ctx context.Context, encoded, pw string) (bool, error)
	Hash(ctx context.Context, pw string) (string, error)
}

// SignInConfig configures SignIn.
type SignInConfig struct {
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// SignIn is the password sign-in policy: one answer to any wrong name or
// password, a limit on wrong passwords per name and client, a hash checked
// even for unknown names, and users setting their own password. It is
// safe for concurrent use.
type SignIn struct {
	now      func() time.Time
	store    LoginStore
	hasher   Hasher
	failures *auth.Limiter
}

// NewSignIn returns the sign-in policy over st, hashing with h.
func NewSignIn(cfg SignInConfig, st LoginStore, h Hasher) *SignIn {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &SignIn{now: cfg.Now, store: st, hasher: h, failures: auth.NewLimiter(MaxFailures, FailureWindow)}
}

// CheckPassword signs in the user name with password from the client
// address client: it returns the user, or a KindUnauthorized "wrong user
// name or password", KindTooMany (an auth.RetryError) once that name from
// that client failed too often or when no hashing turn came, or
// KindUnauthorized for a disabled user (told only to one who knows its
// password).
func (s *SignIn) CheckPassword(ctx context.Context, name, password, client string) (hangar.User, error) {
	now := s.now()
	// Names that cannot exist share one key per client, so that made-up
	// (and long) names do not grow the limiter.
	keyName := name
	if hangar.ValidateUserName(name) != nil {
		keyName = ""
	}
	key := keyName + "\x00" + client
	// The failure is counted before the hash is checked, so that
	// concurrent guesses cannot all pass the limit before any counts.
	if until, ok := s.failures.Take(key, now); !ok {
		return hangar.User{}, tooManyFailures(until, now)
	}
	l, err := s.store.LoginByName(ctx, name)
	if err != nil && hangar.KindOf(err) != hangar.KindNotFound {
		s.failures.GiveBack(key)
		return hangar.User{}, err
	}
	// An unknown name, or one without a password, has l.PasswordHash ""
	// and costs one hash all the same.
	ok, err := s.hasher.Verify(ctx, l.PasswordHash, password)
	if err != nil {
		s.failures.GiveBack(key)
		if errors.Is(err, auth.ErrBusy) {
			return hangar.User{}, auth.ErrBusyRetry
		}
		return hangar.User{}, fmt.Errorf("verify password of %s: %w", name, err)
	}
	if !ok {
		return hangar.User{}, errWrongPassword
	}
	s.failures.Reset(key)
	if l.Disabled {
		return hangar.User{}, hangar.Errorf(hangar.KindUnauthorized, "user %s is disabled: ask your Hangar operator", name)
	}
	return l.User, nil
}

// tooManyFailures says when a blocked sign-in may try again.
func tooManyFailures(until, now time.Time) error {
	mins := int((until.Sub(now) + time.Minute - 1) / time.Minute)
	unit := "minutes"
	if mins == 1 {
		unit = "minute"
	}
	return auth.RetryError{
		Err:   hangar.Errorf(hangar.KindTooMany, "too many wrong passwords: try again in %d %s (at %s UTC)", mins, unit, until.UTC().Format(time.TimeOnly)),
		After: until.Sub(now),
	}
}

// SetPassword sets u's own password from the client address client;
// replacing one takes the current one. Errors: KindInvalid (the new
// password, or no current one given), KindForbidden (the current one is
// wrong), KindTooMany (an auth.RetryError), as CheckPassword.
func (s *SignIn) SetPassword(ctx context.Context, u hangar.User, current, password, client string) error {
	if err := auth.ValidatePassword(password); err != nil {
		return err
	}
	l, err := s.store.LoginByName(ctx, u.Name)
	if err != nil {
		return err
	}
	if l.PasswordHash != "" {
		if current == "" {
			return hangar.Errorf(hangar.KindInvalid, "you have a password already: give the current one to change it")
		}
		_, err := s.CheckPassword(ctx, u.Name, current, client)
		if errors.Is(err, errWrongPassword) {
			// Not 401: the caller's login is valid.
			return hangar.Errorf(hangar.KindForbidden, "the current password is wrong")
		}
		if err != nil {
			return err
		}
	}
	hash, err := s.hasher.Hash(ctx, password)
	if errors.Is(err, auth.ErrBusy) {
		return auth.ErrBusyRetry
	}
	if err != nil {
		return err
	}
	return s.store.SetPasswordHash(ctx, u.Name, hash)
}
