package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// Approving and denying device codes is limited per client address, so
// that a signed-in client cannot try user codes (20^8 of them) in bulk:
// one could otherwise attach someone's device to its own account, or deny
// logins.
const (
	maxDecisions   = 10
	decisionWindow = time.Minute
)

// busyRetry is what a sign-in refused for want of a hashing turn is told
// to wait.
const busyRetry = 2 * time.Second

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
	// The failure is counted before the hash is checked, so that
	// concurrent guesses cannot all pass the limit before any counts.
	if until, ok := s.signins.take(key, now); !ok {
		return hangar.User{}, tooManyFailures(until, now)
	}
	l, err := s.store.LoginByName(ctx, name)
	if err != nil && hangar.KindOf(err) != hangar.KindNotFound {
		s.signins.giveBack(key)
		return hangar.User{}, err
	}
	// An unknown name, or one without a password, has l.PasswordHash ""
	// and costs one hash all the same.
	ok, err := s.hasher.Verify(ctx, l.PasswordHash, password)
	if err != nil {
		s.signins.giveBack(key)
		if errors.Is(err, auth.ErrBusy) {
			return hangar.User{}, busy(err, now)
		}
		return hangar.User{}, fmt.Errorf("verify password of %s: %w", name, err)
	}
	if !ok {
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
	hash, err := s.hasher.Hash(r.Context(), req.Password)
	if err != nil {
		err = busy(err, s.now())
		setRetryAfter(w, err, s.now())
		return err
	}
	if err := s.store.SetPasswordHash(r.Context(), u.Name, hash); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// busy turns auth.ErrBusy into a refusal with a time to retry.
func busy(err error, now time.Time) error {
	if errors.Is(err, auth.ErrBusy) {
		return retryError{err: auth.ErrBusy, until: now.Add(busyRetry)}
	}
	return err
}

// clientAddr is the network a request comes from, which limits count per
// client: its IPv4 address, or the /64 of its IPv6 address, since one
// host commonly holds a whole /64. Hangar terminates TLS itself, so the
// peer is the client.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Unmap().Is4() {
		return host
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// normalizeUserName accepts a name as typed: user names are lower case.
func normalizeUserName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

// windowLimiter counts events per key in fixed windows of window from a
// key's first event, and refuses a key's events past max until its window
// ends. It is safe for concurrent use.
type windowLimiter struct {
	max    int
	window time.Duration

	mu     sync.Mutex
	counts map[string]count
	pruned time.Time
}

type count struct {
	n     int
	since time.Time
}

// take counts an event of key, unless key had max in its current window:
// then it returns false and when the window ends. Keys whose window ended
// are dropped, at most once a minute, so the map holds only the last
// window's keys.
func (l *windowLimiter) take(key string, now time.Time) (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.counts == nil {
		l.counts = make(map[string]count)
	}
	if now.Sub(l.pruned) > time.Minute {
		for k, c := range l.counts {
			if !now.Before(c.since.Add(l.window)) {
				delete(l.counts, k)
			}
		}
		l.pruned = now
	}
	c := l.counts[key]
	if c.n == 0 || !now.Before(c.since.Add(l.window)) {
		c = count{since: now}
	}
	if c.n >= l.max {
		return c.since.Add(l.window), false
	}
	c.n++
	l.counts[key] = c
	return time.Time{}, true
}

// giveBack uncounts an event of key that take counted but that did not
// happen after all.
func (l *windowLimiter) giveBack(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c, ok := l.counts[key]; ok && c.n > 0 {
		c.n--
		l.counts[key] = c
	}
}

// reset forgets key's events, after a success.
func (l *windowLimiter) reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.counts, key)
}
