package backoff

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestState_Next(t *testing.T) {
	t.Parallel()
	p := Policy{Base: time.Second, Max: 5 * time.Minute, Reset: 10 * time.Minute}
	reset := p.Reset
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

	t.Run("DoublesToTheLimit", func(t *testing.T) {
		t.Parallel()
		var b State
		var got []time.Duration
		now := t0
		for range 11 {
			d := b.Next(p, now, time.Time{})
			got = append(got, d)
			now = now.Add(d)
		}
		want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300}
		for i := range want {
			want[i] *= time.Second
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("delays (-want +got):\n%s", diff)
		}
	})

	t.Run("CrashLoopFromThree", func(t *testing.T) {
		t.Parallel()
		var b State
		b.Next(p, t0, time.Time{})
		b.Next(p, t0.Add(time.Second), time.Time{})
		if got := b.CrashLoop(t0.Add(2 * time.Second)); got != "" {
			t.Errorf("after 2 failures: CrashLoop() = %q, want none", got)
		}
		b.Next(p, t0.Add(3*time.Second), time.Time{})
		if got, want := b.CrashLoop(t0.Add(3*time.Second)), " (crash loop: 3 restarts in 3s)"; got != want {
			t.Errorf("CrashLoop() = %q, want %q", got, want)
		}
	})

	for _, tc := range []struct {
		name   string
		served time.Duration // how long the dead executor served; 0: never
		want   time.Duration
	}{
		{"ResetAfterServingLong", reset, time.Second},
		{"NoResetAfterServingShort", reset - time.Minute, 8 * time.Second},
		{"NoResetWhenNeverServed", 0, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var b State
			now := t0
			for range 3 {
				now = now.Add(b.Next(p, now, time.Time{}))
			}
			now = now.Add(time.Hour)
			var ready time.Time
			if tc.served > 0 {
				ready = now.Add(-tc.served)
			}
			if got := b.Next(p, now, ready); got != tc.want {
				t.Errorf("Next() = %s, want %s", got, tc.want)
			}
		})
	}
}

// TestPolicy_Delay: the database supervisor's policy, 5 s doubled up to
// 5 minutes.
func TestPolicy_Delay(t *testing.T) {
	t.Parallel()
	p := Policy{Base: 5 * time.Second, Max: 5 * time.Minute}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second, 160 * time.Second, 5 * time.Minute, 5 * time.Minute}
	for i, w := range want {
		if got := p.Delay(i + 1); got != w {
			t.Errorf("Delay(%d) = %v, want %v", i+1, got, w)
		}
	}
}
