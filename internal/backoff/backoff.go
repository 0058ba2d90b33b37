// Package backoff is the one restart back-off of Hangar: the delay before
// starting again what failed (an executor, a drainer, a database
// instance), doubling with each failure in a row up to a limit. It imports
// nothing internal; any package may import it.
package backoff

import (
	"fmt"
	"time"
)

// Policy is how a back-off grows: Base after the first failure, doubling
// with each further one up to Max; a start that then ran for Reset (0:
// never) makes the next failure a first one again.
type Policy struct {
	Base, Max, Reset time.Duration
}

// Delay returns the wait after the n-th failure in a row (n ≥ 1).
func (p Policy) Delay(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// State is the back-off of one thing that fails: its failures in a row.
// The zero State has none. It is not safe for concurrent use: its owner's
// lock guards it.
type State struct {
	Failures int       // failures since the last reset
	First    time.Time // when the first of them happened
	Retry    time.Time // when the start after the last failure is due
}

// Next records a failure at now of a start that ran since readyAt (zero:
// it never did) and returns how long to wait before the next start.
func (s *State) Next(p Policy, now, readyAt time.Time) time.Duration {
	if p.Reset > 0 && !readyAt.IsZero() && now.Sub(readyAt) >= p.Reset {
		s.Failures = 0
	}
	if s.Failures == 0 {
		s.First = now
	}
	s.Failures++
	d := p.Delay(s.Failures)
	s.Retry = now.Add(d)
	return d
}

// CrashLoop describes the failures from three on, for logs:
// " (crash loop: 3 restarts in 1m2s)".
func (s *State) CrashLoop(now time.Time) string {
	if s.Failures < 3 {
		return ""
	}
	return fmt.Sprintf(" (crash loop: %d restarts in %s)", s.Failures, now.Sub(s.First).Round(time.Second))
}
