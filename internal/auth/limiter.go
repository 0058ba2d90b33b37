package auth

import (
	"errors"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Limiter counts events per key in fixed windows of Window from a key's
// first event, and refuses a key's events past Max until its window ends:
// wrong passwords per user name and client (accounts.SignIn), device-code
// decisions per client (Logins). It is safe for concurrent use.
type Limiter struct {
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

// NewLimiter returns a Limiter of max events per window.
func NewLimiter(max int, window time.Duration) *Limiter {
	return &Limiter{max: max, window: window}
}

// Take counts an event of key, unless key had max in its current window:
// then it returns false and when the window ends. Keys whose window ended
// are dropped, at most once a minute, so the map holds only the last
// window's keys.
func (l *Limiter) Take(key string, now time.Time) (time.Time, bool) {
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

// GiveBack uncounts an event of key that Take counted but that did not
// happen after all.
func (l *Limiter) GiveBack(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch c, ok := l.counts[key]; {
	case !ok:
	case c.n <= 1:
		delete(l.counts, key)
	default:
		c.n--
		l.counts[key] = c
	}
}

// Reset forgets key's events, after a success.
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.counts, key)
}

// RetryError is a refusal (KindTooMany) that may be tried again After
// from when it was made: the API sends it as Retry-After.
type RetryError struct {
	Err   *hangar.Error
	After time.Duration
}

func (e RetryError) Error() string { return e.Err.Error() }
func (e RetryError) Unwrap() error { return e.Err }

// RetryAfter returns how long after err a refused call may be tried
// again, if err says.
func RetryAfter(err error) (time.Duration, bool) {
	var re RetryError
	if errors.As(err, &re) {
		return re.After, true
	}
	return 0, false
}

// busyRetry is what a call refused for want of a hashing turn is told to
// wait.
const busyRetry = 2 * time.Second

// ErrBusyRetry is ErrBusy with a time to retry.
var ErrBusyRetry error = RetryError{Err: ErrBusy, After: busyRetry}
