package auth

import (
	"context"
	"runtime"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// ErrBusy refuses a password check that found no free turn in time.
var ErrBusy = hangar.Errorf(hangar.KindTooMany, "too many sign-ins at once: try again in a few seconds")

// HasherConfig configures a Hasher. The zero value of each field means its
// default.
type HasherConfig struct {
	// MaxConcurrent bounds the password hashes computed at once. Each
	// takes 19 MiB and a CPU for about 30 ms, so the bound caps the
	// memory a flood of sign-ins can take. Default 2 × the number of CPUs.
	MaxConcurrent int
	// Wait is how long a check waits for a turn before it is refused with
	// ErrBusy. Default 2 s.
	Wait time.Duration
}

// Hasher computes argon2 password hashes under a concurrency limit: checks
// past the limit queue for at most Wait, then are refused, so a flood of
// sign-ins costs a bounded amount of memory and CPU instead of 19 MiB per
// request. It is safe for concurrent use.
type Hasher struct {
	turns chan struct{}
	wait  time.Duration
	// verify is VerifyPassword; tests count calls through it.
	verify func(encoded, pw string) (bool, error)
}

// NewHasher returns a Hasher.
func NewHasher(cfg HasherConfig) *Hasher {
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 2 * runtime.NumCPU()
	}
	if cfg.Wait <= 0 {
		cfg.Wait = 2 * time.Second
	}
	return &Hasher{turns: make(chan struct{}, cfg.MaxConcurrent), wait: cfg.Wait, verify: VerifyPassword}
}

// Verify is VerifyPassword in a turn. Errors: ErrBusy (KindTooMany) when
// no turn came within Wait; ctx's error when it ended first; a malformed
// hash.
func (h *Hasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	release, err := h.turn(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	return h.verify(encoded, pw)
}

// Hash is HashPassword in a turn. Errors: KindInvalid (see
// ValidatePassword), ErrBusy, ctx's error.
func (h *Hasher) Hash(ctx context.Context, pw string) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	release, err := h.turn(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	return HashPassword(pw)
}

// turn waits for a free turn and returns its release.
func (h *Hasher) turn(ctx context.Context) (func(), error) {
	release := func() { <-h.turns }
	select {
	case h.turns <- struct{}{}:
		return release, nil
	default:
	}
	timer := time.NewTimer(h.wait)
	defer timer.Stop()
	select {
	case h.turns <- struct{}{}:
		return release, nil
	case <-timer.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
