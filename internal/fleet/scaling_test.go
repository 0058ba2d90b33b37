package fleet

import (
	"math"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	cpu := func(cs ...float64) []sample {
		var ss []sample
		for _, c := range cs {
			ss = append(ss, sample{cpu: c})
		}
		return ss
	}
	queue := func(qs ...int) []sample {
		var ss []sample
		for _, q := range qs {
			ss = append(ss, sample{cpu: nan, enqueued: q})
		}
		return ss
	}
	for _, tc := range []struct {
		name     string
		samples  []sample
		n        int
		min, max int
		want     int
		why      string
	}{
		{"TooFewSamples", cpu(1, 1), 1, 1, 3, 0, ""},
		{"HighCPU", cpu(0.9, 0.95, 0.88), 1, 1, 3, +1, "CPU use averaged 91% of a vCPU over the last 3 samples"},
		{"HighCPUAtMax", cpu(0.9, 0.95, 0.88), 3, 1, 3, 0, ""},
		{"OnlyTheWindowCounts", cpu(0.1, 0.9, 0.95, 0.88), 1, 1, 3, +1, "CPU use averaged 91%"},
		{"SpikeIsNotEnough", cpu(0.3, 0.3, 1.0), 1, 1, 3, 0, ""},
		{"AverageAtThreshold", cpu(0.85, 0.85, 0.85), 1, 1, 3, 0, ""},
		{"UnknownCPUNeverScalesUpOnCPU", []sample{{cpu: 1}, {cpu: nan}, {cpu: 1}}, 1, 1, 3, 0, ""},
		{"QueueDeep", queue(0, 0, 21), 2, 1, 3, +1, "21 workflows wait in queues, more than 10 per executor"},
		{"QueueAtCapacity", queue(20, 20, 20), 2, 1, 3, 0, ""},
		{"QueueDeepAtMax", queue(50, 50, 50), 3, 1, 3, 0, ""},
		{"QueueDeepWithCPU", []sample{{cpu: 0.1, enqueued: 11}, {cpu: 0.1, enqueued: 11}, {cpu: 0.1, enqueued: 11}}, 1, 1, 2, +1, "11 workflows"},
		{"Idle", []sample{{cpu: 0.1}, {cpu: 0.39}, {cpu: 0}}, 2, 1, 3, -1, "CPU use stayed under 40% and queues were empty over the last 3 samples"},
		{"IdleAtMin", cpu(0, 0, 0), 1, 1, 3, 0, ""},
		{"BusyOnce", cpu(0.1, 0.5, 0.1), 2, 1, 3, 0, ""},
		{"QueueOnce", []sample{{cpu: 0.1}, {cpu: 0.1, enqueued: 1}, {cpu: 0.1}}, 2, 1, 3, 0, ""},
		{"QueueUnknown", []sample{{cpu: 0.1}, {cpu: 0.1, enqueued: -1}, {cpu: 0.1}}, 2, 1, 3, 0, ""},
		{"IdleWithoutCPU", queue(0, 0, 0), 2, 1, 3, -1, "queues were empty over the last 3 samples"},
		{"AboveMaxStaysUntilIdle", cpu(0.5, 0.5, 0.5), 4, 1, 3, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, why := decide(tc.samples, tc.n, tc.min, tc.max, 10)
			if got != tc.want || !strings.HasPrefix(why, tc.why) {
				t.Errorf("decide() = %d %q, want %d %q", got, why, tc.want, tc.why)
			}
		})
	}
}

func TestSupervisor_ScalesOnCPU(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 3, false)
	h.drv.SetCPU(1)
	h.serve(t, "v1")
	h.s.Start()
	eventually(t, "3 executors serve", func() bool { return len(h.routed(t)) == 3 })
	// The fake's CPU time and the supervisor's clock are read at slightly
	// different instants, so the average is near 100%, not exactly it.
	if logs := h.logs.String(); !strings.Contains(logs, "hangar: scaling up to 2 executors: CPU use averaged ") {
		t.Errorf("app logs lack the scale-up:\n%s", logs)
	}
	h.drv.SetCPU(0.05)
	eventually(t, "1 executor serves", func() bool { return len(h.routed(t)) == 1 })
	eventually(t, "retired executors stop", func() bool { return len(h.drv.ByVersion()["v1"]) == 1 })
	if logs := h.logs.String(); !strings.Contains(logs, "scaling down to 2 executors: CPU use stayed under 40%") {
		t.Errorf("app logs lack the scale-down:\n%s", logs)
	}
}

// TestSupervisor_FailedScaleUp: an executor added for load that does not
// start is not retried with back-off: the next decision tries again.
func TestSupervisor_FailedScaleUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 2, false)
	h.drv.SetCPU(1)
	ids := h.serve(t, "v1")
	h.drv.SetCrash(&runtime.Status{ExitCode: 1})
	// Samples taken microseconds apart average the fake's CPU time over
	// too short a span to be exact: sample until a scale-up is decided.
	eventually(t, "a scale-up is decided", func() bool {
		h.s.autoscale(h.pool(t))
		return strings.Contains(h.logs.String(), "scaling up to 2 executors")
	})
	eventually(t, "the scale-up fails", func() bool {
		return strings.Contains(h.logs.String(), "did not start: version v1 did not become healthy: the app exited with code 1 before it served HTTP\n")
	})
	p := h.pool(t)
	eventually(t, "nothing is starting", func() bool {
		h.s.mu.Lock()
		defer h.s.mu.Unlock()
		return p.starting == 0
	})
	if got := h.routed(t); len(got) != 1 || got[0] != ids[0] {
		t.Errorf("routed %q, want %q alone", got, ids[0])
	}
}

// TestSupervisor_ScalesOnQueueWithoutStats: a driver that accounts no CPU
// leaves the queue depth to decide.
func TestSupervisor_ScalesOnQueueWithoutStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 3, false)
	h.drv.SetStatsErr(hangar.Errorf(hangar.KindUnavailable, "no accounting"))
	h.drv.SetCPU(1) // unseen
	h.inst.set(func(f *fakeInstances) { f.enqueued = 15 })
	h.serve(t, "v1")
	h.s.Start()
	eventually(t, "2 executors serve", func() bool { return len(h.routed(t)) == 2 })
	if logs := h.logs.String(); !strings.Contains(logs, "scaling up to 2 executors: 15 workflows wait in queues, more than 10 per executor") {
		t.Errorf("app logs lack the scale-up:\n%s", logs)
	}
	// 15 ≤ 2 × 10: no third executor.
	for range 10 {
		h.s.autoscale(h.pool(t))
	}
	if n := len(h.routed(t)); n != 2 {
		t.Errorf("%d executors serve a queue of 15, want 2", n)
	}
	h.inst.set(func(f *fakeInstances) { f.enqueued = 0 })
	eventually(t, "1 executor serves", func() bool { return len(h.routed(t)) == 1 })
}

func (h *harness) pool(t testing.TB) *pool {
	t.Helper()
	h.s.mu.Lock()
	defer h.s.mu.Unlock()
	return h.s.pools[h.app.ID]
}
