package fleet

import (
	"math"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWaited(t *testing.T) {
	t.Parallel()
	at := time.Unix(1000, 0)
	prev := waitReading{wait: time.Second, at: at}
	for _, tc := range []struct {
		name string
		prev waitReading
		wait time.Duration
		now  time.Time
		want float64
		ok   bool
	}{
		{"FirstReading", waitReading{}, time.Hour, at, 0, false},
		{"WaitedAThird", prev, time.Second + 100*time.Millisecond, at.Add(300 * time.Millisecond), 1.0 / 3, true},
		{"NeverWaited", prev, time.Second, at.Add(time.Second), 0, true},
		{"ClockStill", prev, 2 * time.Second, at, 0, false},
		// v1 sums live threads only: one that ended takes its wait along.
		{"ThreadEnded", prev, time.Millisecond, at.Add(time.Second), 0, true},
	} {
		got, ok := waited(tc.prev, tc.wait, tc.now)
		if ok != tc.ok || math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: waited = %v, %v; want %v, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
}

// TestAdmit: the executors of a busy app of two that waited for a CPU
// get the limit together, and lose it once they wait no more, go idle,
// or leave; an app's only executor is never limited.
func TestAdmit(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, 2, false)
	ids := h.serve(t, "v2")
	addrs := h.rt.get(testHost)
	if len(ids) != 2 || len(addrs) != 2 {
		t.Fatalf("serving: executors %v at %v, want 2", ids, addrs)
	}
	st := &admission{}
	step := func(name string, want map[string]int) {
		t.Helper()
		time.Sleep(10 * time.Millisecond) // readings apart in time
		st.tick(h.s)
		got := h.rt.limited()
		if got == nil {
			got = map[string]int{}
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: limits (-want +got):\n%s", name, diff)
		}
	}
	both := map[string]int{addrs[0]: starvedLimit, addrs[1]: starvedLimit}
	h.rt.setInFlight(addrs[0], 5)
	step("first reading", map[string]int{})
	h.drv.AddCPUWait(ids[0], time.Hour)
	step("starved", both)
	h.drv.AddCPUWait(ids[1], time.Hour)
	step("still starved", both)
	step("no longer waits", map[string]int{})
	h.drv.AddCPUWait(ids[0], time.Millisecond) // under a tenth of 10 ms
	step("waits a little", map[string]int{})
	h.drv.AddCPUWait(ids[0], time.Hour)
	step("starved again", both)
	h.rt.setInFlight(addrs[0], 0)
	h.drv.AddCPUWait(ids[0], time.Hour)
	step("idle", map[string]int{})

	// An executor that left keeps no limit: its address may come back.
	st.limited["10.0.0.99:3000"] = true
	h.rt.SetLimit("10.0.0.99:3000", starvedLimit)
	step("left", map[string]int{})

	one := newHarness(t, 1, 1, false)
	ids = one.serve(t, "v2")
	addr := one.rt.get(testHost)[0]
	one.rt.setInFlight(addr, 5)
	st = &admission{}
	for range 3 {
		one.drv.AddCPUWait(ids[0], time.Hour)
		time.Sleep(10 * time.Millisecond)
		st.tick(one.s)
	}
	if got := one.rt.limited(); len(got) != 0 {
		t.Errorf("an app's only executor: limits %v, want none", got)
	}
}
