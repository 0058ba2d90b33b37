package e2e

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// checkOOMShown checks, after executor dead of exec's greeter was killed
// for exceeding its 512 MiB and next replaced it, that the app's status
// (API and our CLI) names the OOM kill with its limit, and that the
// executors call (API and our CLI) lists next serving, with the cgroup's
// 512 MiB limit and its memory and CPU use.
func checkOOMShown(t *testing.T, h *Hangar, dir string, c *apiclient.Client, dead, next string) {
	t.Helper()
	ctx := context.Background()
	a, err := c.App(ctx, "exec", "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if a.AppHealth == nil || a.Executors != 1 {
		t.Errorf("app health = %+v, want 1 executor serving", a.AppHealth)
	} else if p := a.LastProblem; p == nil || p.Kind != "OOM" || p.Executor != dead || p.MemoryLimitMiB != 512 {
		t.Errorf("app status: last problem = %+v, want the OOM kill of %s at 512 MiB", p, dead)
	}
	out, code := h.ours(t, dir, "app", "status")
	if want := "OOM: executor " + dead + " was killed: out of memory (limit 512 MiB)"; code != 0 || !strings.Contains(out, want) {
		t.Errorf("app status: exit %d, want %q in\n%s", code, want, out)
	}

	var exs []apiclient.ExecutorStats
	if err := c.Do(ctx, http.MethodGet, "/hangar/v1/exec/applications/greeter/executors", nil, &exs); err != nil {
		t.Fatal(err)
	}
	var ex *apiclient.ExecutorStats
	for i := range exs {
		if exs[i].ID == next {
			ex = &exs[i]
		}
		if exs[i].ID == dead {
			t.Errorf("executors list the dead %s: %+v", dead, exs[i])
		}
	}
	switch {
	case ex == nil:
		t.Fatalf("executors %+v lack the replacement %s", exs, next)
	case ex.State != "SERVING" || ex.MemoryLimitMiB != 512 || ex.Usage == nil:
		t.Errorf("replacement = %+v, want SERVING with a 512 MiB limit and its usage", ex)
	case ex.Usage.MemoryLimitBytes != 512<<20 || ex.Usage.MemoryBytes == 0 || ex.Usage.CPUSeconds <= 0 || ex.Usage.OOMKills != 0:
		t.Errorf("replacement usage = %+v, want a 512 MiB cgroup limit, memory and CPU time used, no OOM kill", ex.Usage)
	default:
		t.Logf("replacement %s: %d MiB of %d MiB, %.2fs CPU, throttled %d times", next,
			ex.Usage.MemoryBytes>>20, ex.Usage.MemoryLimitBytes>>20, ex.Usage.CPUSeconds, ex.Usage.ThrottledPeriods)
	}
	out, code = h.ours(t, dir, "app", "executors")
	if code != 0 || !strings.Contains(out, next) || !strings.Contains(out, "SERVING") || !strings.Contains(out, "/ 512 MiB") {
		t.Errorf("app executors: exit %d, want %s SERVING with its 512 MiB limit in\n%s", code, next, out)
	}
}
