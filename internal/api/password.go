package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Password guessing is refused per user name and client address: after
// maxFailures wrong passwords within failureWindow, that name from that
// address is refused (429) until the window ends. Keyed on the pair, a
// guesser elsewhere cannot lock a user out.
const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
)

// errWrongPassword is the one answer to a wrong name or password, so that
// it does not tell which names exist.
var errWrongPassword = hangar.Errorf(hangar.KindUnauthorized, "wrong user name or password")

// checkPassword signs in the user name with password from the client
// address client: it returns the user, or errWrongPassword,
// KindTooMany once that name from that client failed too often, or
// KindUnauthorized for a disabled user (told only to one who knows its
// password).
func (s *Server) checkPassword(ctx context.Context, name, password, client string) (hangar.User, error) {
	now := s.now()
	key := name + "\x00" + client
	if until, ok := s.signins.blocked(key, now); ok {
		return hangar.User{}, tooManyFailures(until, now)
	}
	l, err := s.store.LoginByName(ctx, name)
	if err != nil && hangar.KindOf(err) != hangar.KindNotFound {
		return hangar.User{}, err
	}
	// An unknown name, or one without a password, has l.PasswordHash ""
	// and costs one hash all the same.
	ok, err := auth.VerifyPassword(l.PasswordHash, password)
	if err != nil {
		return hangar.User{}, fmt.Errorf("verify password of %s: %w", name, err)
	}
	if !ok {
		s.signins.fail(key, now)
		return hangar.User{}, errWrongPassword
	}
	s.signins.reset(key)
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
	return retryError{
		err:   hangar.Errorf(hangar.KindTooMany, "too many wrong passwords: try again in %d %s (at %s UTC)", mins, unit, until.UTC().Format(time.TimeOnly)),
		until: until,
	}
}

// retryError is a refusal that may be tried again from until.
type retryError struct {
	err   *hangar.Error
	until time.Time
}

func (e retryError) Error() string { return e.err.Error() }
func (e retryError) Unwrap() error { return e.err }

// setRetryAfter sets the Retry-After header (RFC 9110 §10.2.3) of an
// answer to err when err says when to try again.
func setRetryAfter(w http.ResponseWriter, err error, now time.Time) {
	var re retryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(int((re.until.Sub(now)+time.Second-1)/time.Second)))
	}
}

// setPassword is PUT /hangar/v1/user/password: users set their own
// password; replacing one takes the current one.
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.SetPasswordRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if err := auth.ValidatePassword(req.Password); err != nil {
		return err
	}
	u := principal(r).User
	l, err := s.store.LoginByName(r.Context(), u.Name)
	if err != nil {
		return err
	}
	if l.PasswordHash != "" {
		if req.CurrentPassword == "" {
			return hangar.Errorf(hangar.KindInvalid, "you have a password already: give the current one to change it")
		}
		_, err := s.checkPassword(r.Context(), u.Name, req.CurrentPassword, clientAddr(r))
		setRetryAfter(w, err, s.now())
		if errors.Is(err, errWrongPassword) {
			// Not 401: the caller's login is valid.
			return hangar.Errorf(hangar.KindForbidden, "the current password is wrong")
		}
		if err != nil {
			return err
		}
	}
	hash, err := auth.HashPassword(req.Password)
	if err != nil {
		return err
	}
	if err := s.store.SetPasswordHash(r.Context(), u.Name, hash); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clientAddr is the IP address a request comes from. Hangar terminates TLS
// itself, so the peer is the client.
func clientAddr(r *http.Request) string {
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// normalizeUserName accepts a name as typed: user names are lower case.
func normalizeUserName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// failureLimiter counts failures per key in fixed windows of failureWindow
// from a key's first failure. The zero value is ready to use; it is safe
// for concurrent use.
type failureLimiter struct {
	mu       sync.Mutex
	failures map[string]failures
	pruned   time.Time
}

type failures struct {
	n     int
	since time.Time
}

// blocked reports whether key has failed maxFailures times in its current
// window, and when that window ends.
func (l *failureLimiter) blocked(key string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.failures[key]
	until := f.since.Add(failureWindow)
	return until, f.n >= maxFailures && now.Before(until)
}

// fail counts a failure of key. Keys whose window ended are dropped, at
// most once a minute, so the map holds only the last window's keys.
func (l *failureLimiter) fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failures == nil {
		l.failures = make(map[string]failures)
	}
	if now.Sub(l.pruned) > time.Minute {
		for k, f := range l.failures {
			if !now.Before(f.since.Add(failureWindow)) {
				delete(l.failures, k)
			}
		}
		l.pruned = now
	}
	f := l.failures[key]
	if f.n == 0 || !now.Before(f.since.Add(failureWindow)) {
		f = failures{since: now}
	}
	f.n++
	l.failures[key] = f
}

// reset forgets key's failures, after a success.
func (l *failureLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failures, key)
}
