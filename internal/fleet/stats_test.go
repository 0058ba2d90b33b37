package fleet

import (
	"math"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// states returns each executor's ID and state, as "id STATE".
func states(exs []ExecutorStatus) []string {
	out := make([]string, len(exs))
	for i, ex := range exs {
		out[i] = ex.ID + " " + string(ex.State)
	}
	return out
}

func TestService_Executors(t *testing.T) {
	t.Parallel()

	t.Run("ServingRetiringDraining", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1, 1, false)
		h.inst.set(func(f *fakeInstances) { f.active["av1"] = 1 })
		v1 := h.serve(t, "v1")
		exs := h.s.Executors(t.Context(), h.app.ID)
		if diff := cmp.Diff([]string{v1[0] + " SERVING"}, states(exs)); diff != "" {
			t.Fatalf("executors (-want +got):\n%s", diff)
		}
		ex := exs[0]
		if ex.Version != "v1" || ex.AppVersion != "av1" || ex.MemoryLimitMiB != 512 || ex.StartedAt.IsZero() {
			t.Errorf("executor = %+v, want v1/av1, 512 MiB, a start time", ex)
		}
		if ex.Stats == nil || ex.Stats.MemoryLimitBytes != 512<<20 {
			t.Errorf("stats = %+v, want the driver's, with a 512 MiB limit", ex.Stats)
		}
		if !math.IsNaN(ex.CPUUse) {
			t.Errorf("CPU use = %v before any scaling sample, want NaN", ex.CPUUse)
		}

		// v2 replaces v1, whose workflow keeps it retiring; when it dies,
		// a drainer of v1 finishes the workflow.
		v2 := h.serve(t, "v2")
		if diff := cmp.Diff([]string{v1[0] + " RETIRING", v2[0] + " SERVING"}, states(h.s.Executors(t.Context(), h.app.ID))); diff != "" {
			t.Errorf("executors after v2 serves (-want +got):\n%s", diff)
		}
		h.exit(t, v1[0], runtime.Status{ExitCode: 137})
		var got []string
		eventually(t, "a drainer of v1 is listed", func() bool {
			got = states(h.s.Executors(t.Context(), h.app.ID))
			return len(got) == 2 && strings.HasSuffix(got[1], " DRAINING")
		})
		if got[0] != v2[0]+" SERVING" {
			t.Errorf("executors = %q, want v2's %s serving first", got, v2[0])
		}
		h.inst.set(func(f *fakeInstances) { f.active["av1"] = 0 })
		eventually(t, "only v2 is listed", func() bool { return len(h.s.Executors(t.Context(), h.app.ID)) == 1 })
	})

	t.Run("CPUUseFromScaling", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1, 1, true)
		h.drv.SetCPU(0.5)
		h.serve(t, "v1")
		var ex ExecutorStatus
		eventually(t, "the CPU use is sampled", func() bool {
			ex = h.s.Executors(t.Context(), h.app.ID)[0]
			return !math.IsNaN(ex.CPUUse)
		})
		if ex.CPUUse <= 0 || ex.Stats == nil || ex.Stats.CPU <= 0 {
			t.Errorf("CPU use %v, stats %+v; want both above 0 for an executor burning half a vCPU", ex.CPUUse, ex.Stats)
		}
	})

	t.Run("StatsUnavailable", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1, 1, false)
		h.drv.SetStatsErr(hangar.Errorf(hangar.KindUnavailable, "no accounting"))
		h.serve(t, "v1")
		exs := h.s.Executors(t.Context(), h.app.ID)
		if len(exs) != 1 || exs[0].Stats != nil || exs[0].State != ExecutorServing {
			t.Errorf("executors = %+v, want one serving without stats", exs)
		}
	})
}

func TestService_Health(t *testing.T) {
	t.Parallel()

	t.Run("OOMIsTheLastProblem", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1, 1, false)
		ids := h.serve(t, "v1")
		if got := h.s.Health(h.app.ID); got.Executors != 1 || got.CrashLoop != "" || got.LastProblem != nil {
			t.Fatalf("health = %+v, want 1 executor and no problem", got)
		}
		h.exit(t, ids[0], runtime.Status{ExitCode: 137, OOMKilled: true})
		eventually(t, "a replacement serves", func() bool {
			r := h.routed(t)
			return len(r) == 1 && r[0] != ids[0] && r[0] != ""
		})
		got := h.s.Health(h.app.ID)
		if p := got.LastProblem; p == nil || p.Kind != EventOOM || p.Executor != ids[0] || p.MemoryLimitMiB != 512 ||
			!strings.Contains(p.Message, "out of memory (limit 512 MiB)") {
			t.Errorf("last problem = %+v, want the OOM kill of %s at 512 MiB", p, ids[0])
		}
		if got.CrashLoop != "" {
			t.Errorf("crash loop %q after one failure", got.CrashLoop)
		}
	})

	t.Run("CrashLoop", func(t *testing.T) {
		t.Parallel()
		h := newHarness(t, 1, 1, false)
		ids := h.serve(t, "v1")
		h.drv.SetCrash(&runtime.Status{ExitCode: 1})
		h.exit(t, ids[0], runtime.Status{ExitCode: 1})
		var got Health
		eventually(t, "the crash loop shows", func() bool {
			got = h.s.Health(h.app.ID)
			return got.CrashLoop != ""
		})
		if !regexp.MustCompile(`^\d+ restarts in \d+s; (next start in \d+s|an executor is starting)$`).MatchString(got.CrashLoop) || got.Executors != 0 {
			t.Errorf("health = %+v, want a crash loop with its restarts and next start, no executor", got)
		}
		if p := got.LastProblem; p == nil || (p.Kind != EventStartFailed && p.Kind != EventExited) {
			t.Errorf("last problem = %+v, want the failed start", p)
		}
		h.drv.SetCrash(nil)
		eventually(t, "the crash loop ends", func() bool {
			got = h.s.Health(h.app.ID)
			return got.CrashLoop == "" && got.Executors == 1
		})
	})
}
