package auth

import (
	"testing"
	"time"
)

// The limits of the sign-in policy (accounts.MaxFailures in
// accounts.FailureWindow).
const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
)

func TestLimiter(t *testing.T) {
	t.Parallel()
	l := NewLimiter(maxFailures, failureWindow)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for i := range maxFailures {
		if _, ok := l.Take("a", now.Add(time.Duration(i)*time.Minute)); !ok {
			t.Fatalf("take %d refused, want %d allowed", i+1, maxFailures)
		}
	}
	until, ok := l.Take("a", now.Add(5*time.Minute))
	if ok || !until.Equal(now.Add(failureWindow)) {
		t.Errorf("take past max = %t until %v, want refused until %v", ok, until, now.Add(failureWindow))
	}
	if _, ok := l.Take("b", now); !ok {
		t.Error("another key is refused")
	}
	// An event given back may be taken again.
	l.GiveBack("b")
	for range maxFailures {
		if _, ok := l.Take("b", now); !ok {
			t.Fatal("a given-back event still counts")
		}
	}
	// The window's end, and a reset, start again.
	if _, ok := l.Take("a", now.Add(failureWindow)); !ok {
		t.Error("refused when the window ended")
	}
	l.Reset("b")
	if _, ok := l.Take("b", now); !ok {
		t.Error("refused after a reset")
	}
	// Keys whose window ended are pruned.
	l.Take("c", now.Add(3*failureWindow))
	l.mu.Lock()
	n := len(l.counts)
	l.mu.Unlock()
	if n != 1 {
		t.Errorf("%d keys kept, want 1 (the others' windows ended)", n)
	}
}
