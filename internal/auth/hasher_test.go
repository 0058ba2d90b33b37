package auth

import (
	"errors"
	"runtime"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// countingVerify wraps h's verify, counting calls and the most running at
// once.
func countingVerify(h *Hasher) (calls, peak *atomic.Int64) {
	calls, peak = new(atomic.Int64), new(atomic.Int64)
	var running atomic.Int64
	verify := h.verify
	h.verify = func(encoded, pw string) (bool, error) {
		calls.Add(1)
		n := running.Add(1)
		defer running.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		return verify(encoded, pw)
	}
	return calls, peak
}

// heapPeak samples the heap's live and dead objects until stop is closed
// and returns the largest sample, without stopping the world.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return out
}

// TestHasher_Flood is 60 concurrent checks of unknown users, each an
// argon2 hash of 19 MiB: no more than the limit run at once, and the heap
// stays far below the 1.1 GiB the 60 would take together.
func TestHasher_Flood(t *testing.T) {
	t.Parallel()
	const limit, n = 3, 60
	h := NewHasher(HasherConfig{MaxConcurrent: limit, Wait: time.Minute})
	calls, peak := countingVerify(h)
	runtime.GC()
	stop := make(chan struct{})
	heap := heapPeak(stop)
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range n {
		wg.Go(func() {
			if ok, err := h.Verify(t.Context(), "", "a guessed password"); ok || err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	close(stop)
	heapMax := <-heap
	if f := failed.Load(); f != 0 {
		t.Errorf("%d checks of unknown users did not answer false, nil", f)
	}
	if got := calls.Load(); got != n {
		t.Errorf("%d hashes computed, want %d", got, n)
	}
	if got := peak.Load(); got > limit {
		t.Errorf("%d hashes ran at once, want at most %d", got, limit)
	}
	// limit × 19 MiB live, doubled by the garbage collector's pacing,
	// plus room for other tests in this process.
	if bound := uint64(limit*19<<20)*2 + 128<<20; heapMax > bound {
		t.Errorf("heap peaked at %d MiB, want at most %d MiB", heapMax>>20, bound>>20)
	}
	t.Logf("heap peak %d MiB over %d concurrent checks, %d at once", heapMax>>20, n, peak.Load())
}

func TestHasher_Busy(t *testing.T) {
	t.Parallel()
	h := NewHasher(HasherConfig{MaxConcurrent: 1, Wait: time.Millisecond})
	entered, release := make(chan struct{}), make(chan struct{})
	h.verify = func(string, string) (bool, error) {
		close(entered)
		<-release
		return false, nil
	}
	done := make(chan error)
	go func() {
		_, err := h.Verify(t.Context(), "", "pw")
		done <- err
	}()
	<-entered
	if _, err := h.Verify(t.Context(), "", "pw"); !errors.Is(err, ErrBusy) {
		t.Errorf("a check while the only turn is taken: %v, want ErrBusy", err)
	}
	if _, err := h.Hash(t.Context(), "a long enough password"); !errors.Is(err, ErrBusy) {
		t.Errorf("a hash while the only turn is taken: %v, want ErrBusy", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash(t.Context(), "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := VerifyPassword(hash, "a long enough password"); !ok || err != nil {
		t.Errorf("the hash made in a turn does not verify: %t, %v", ok, err)
	}
}
