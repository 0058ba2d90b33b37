package fleet

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

func TestSupervisor_ServesMinVMs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 3, 3, false)
	ids := h.serve(t, "v1")
	if len(ids) != 3 || slices.Contains(ids, "") {
		t.Fatalf("routed %q, want 3 executors", ids)
	}
	for _, id := range ids {
		if !strings.HasPrefix(id, executorPrefix) {
			t.Errorf("executor ID %q lacks prefix %q", id, executorPrefix)
		}
	}
	if !h.s.Serving(h.app.ID) {
		t.Error("serving() = false, want true")
	}

	t.Run("NextVersionReplacesThePool", func(t *testing.T) {
		v2 := h.serve(t, "v2")
		if len(v2) != 3 || slices.ContainsFunc(v2, func(id string) bool { return slices.Contains(ids, id) }) {
			t.Fatalf("routed %q after the switch, want 3 new executors", v2)
		}
		// Same rule as before: nothing of v1 runs once drained.
		eventually(t, "v1 is retired", func() bool { return len(h.drv.ByVersion()["v1"]) == 0 })
	})
}

func TestSupervisor_ServeFailureKeepsPreviousPool(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, 2, false)
	v1 := h.serve(t, "v1")
	h.drv.SetCrash(&runtime.Status{ExitCode: 3})
	err := h.s.Serve(t.Context(), h.app, h.db, "v2", "av2")
	if hangar.KindOf(err) != hangar.KindUnavailable || !strings.Contains(err.Error(), "exited with code 3") {
		t.Fatalf("serve() of a crashing version = %v, want KindUnavailable naming exit code 3", err)
	}
	if got := h.routed(t); !cmp.Equal(got, v1) {
		t.Errorf("routed %q, want v1's %q", got, v1)
	}
	if left := h.drv.ByVersion()["v2"]; len(left) > 0 {
		t.Errorf("v2 executors left running: %v", left)
	}
	// The first executor of a version starts alone (its SDK migrates the
	// system database): when it fails, no other starts.
	if n := len(h.drv.Started()); n != 3 {
		t.Errorf("%d executors started, want 3: v1's two, then v2's first only", n)
	}
}

func TestSupervisor_ReplacesDeadExecutor(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		status  runtime.Status
		kind    EventKind
		wantLog string
	}{
		{"Exit", runtime.Status{ExitCode: 1}, EventExited, "exited with code 1; 1 executors still serve; starting a replacement in 10ms"},
		{"Killed", runtime.Status{ExitCode: 137}, EventExited, "exited with code 137 (signal killed)"},
		{"OOM", runtime.Status{ExitCode: 137, OOMKilled: true}, EventOOM, "was killed: out of memory (limit 512 MiB); 1 executors still serve"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 2, 2, false)
			ids := h.serve(t, "v1")
			dead := ids[0]
			h.exit(t, dead, tc.status)
			eventually(t, "a replacement serves", func() bool {
				got := h.routed(t)
				return len(got) == 2 && !slices.Contains(got, dead) && !slices.Contains(got, "")
			})
			if got := h.routed(t); !slices.Contains(got, ids[1]) {
				t.Errorf("routed %q: the live executor %s was replaced too", got, ids[1])
			}
			if logs := h.logs.String(); !strings.Contains(logs, "[executor/"+dead+"@v1] hangar: executor "+dead+" "+tc.wantLog) {
				t.Errorf("app logs lack %q:\n%s", tc.wantLog, logs)
			}
			if got, want := h.inst.recoveries(), []string{"av1:" + dead}; !cmp.Equal(got, want) {
				t.Errorf("recoveries = %q, want %q", got, want)
			}
			evs := h.s.Events(h.app.ID)
			if len(evs) < 2 || evs[0].Kind != tc.kind || evs[0].Executor != dead {
				t.Fatalf("events = %+v, want %s of %s first", evs, tc.kind, dead)
			}
			if tc.kind == EventOOM && evs[0].MemoryLimitMiB != 512 {
				t.Errorf("OOM event limit = %d MiB, want 512", evs[0].MemoryLimitMiB)
			}
			if _, still := h.drv.ByVersion()["v1"]; len(h.drv.ByVersion()["v1"]) != 2 || !still {
				t.Errorf("running %v, want the dead executor released and 2 running", h.drv.ByVersion())
			}
			if st := h.st.status(h.app.ID); st != hangar.StatusAvailable {
				t.Errorf("app status %s, want AVAILABLE: an executor kept serving", st)
			}
		})
	}
}

func TestSupervisor_CrashLoop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	ids := h.serve(t, "v1")
	h.drv.SetCrash(&runtime.Status{ExitCode: 1})
	h.exit(t, ids[0], runtime.Status{ExitCode: 1})

	eventually(t, "the app reads UNAVAILABLE", func() bool { return h.st.status(h.app.ID) == hangar.StatusUnavailable })
	if got := h.rt.get(testHost); len(got) != 0 {
		t.Errorf("route %q while no executor serves, want none", got)
	}
	eventually(t, "the logs show the crash loop", func() bool {
		return strings.Contains(h.logs.String(), "trying again in 80ms (crash loop: 4 restarts in")
	})
	logs := h.logs.String()
	for _, want := range []string{
		"exited with code 1; no executor serves the app: starting a replacement in 10ms",
		"did not start: version v1 did not become healthy: the app exited with code 1 before it served HTTP; trying again in 20ms",
		"trying again in 40ms (crash loop: 3 restarts in",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("app logs lack %q:\n%s", want, logs)
		}
	}

	h.drv.SetCrash(nil)
	eventually(t, "a replacement serves", func() bool { return len(h.routed(t)) == 1 })
	eventually(t, "the app reads AVAILABLE", func() bool { return h.st.status(h.app.ID) == hangar.StatusAvailable })
	if n := len(h.drv.ByVersion()["v1"]); n != 1 {
		t.Errorf("%d executors run, want 1: failed starts must be released", n)
	}
}

func TestSupervisor_ReplacesUnhealthyExecutor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	h.s.cfg.HealthInterval = 20 * time.Millisecond
	ids := h.serve(t, "v1")
	h.hang(t, ids[0])
	eventually(t, "a replacement serves", func() bool {
		got := h.routed(t)
		return len(got) == 1 && got[0] != "" && got[0] != ids[0]
	})
	want := "executor " + ids[0] + " stopped answering HTTP (3 health checks failed in a row) and was stopped"
	if logs := h.logs.String(); !strings.Contains(logs, want) {
		t.Errorf("app logs lack %q:\n%s", want, logs)
	}
	if slices.Contains(h.drv.ByVersion()["v1"], ids[0]) {
		t.Error("the hung executor still runs")
	}
}

// TestSupervisor_Drainer: an executor of a replaced version dies while its
// version has unfinished workflows; no other executor of that version runs,
// so a drainer of that version starts, without route, and is retired once
// the workflows are done.
func TestSupervisor_Drainer(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	h.inst.set(func(f *fakeInstances) { f.active["av1"] = 2 })
	v1 := h.serve(t, "v1")
	v2 := h.serve(t, "v2")
	if got := h.drv.ByVersion()["v1"]; !cmp.Equal(got, v1) {
		t.Fatalf("v1 executors running %q, want %q kept while its workflows run", got, v1)
	}
	h.exit(t, v1[0], runtime.Status{ExitCode: 137})
	var drainer string
	eventually(t, "a drainer of v1 runs", func() bool {
		got := h.drv.ByVersion()["v1"]
		if len(got) == 1 && got[0] != v1[0] {
			drainer = got[0]
		}
		return drainer != ""
	})
	if got := h.routed(t); !cmp.Equal(got, v2) {
		t.Errorf("routed %q, want v2 only %q: a drainer takes no requests", got, v2)
	}
	if got, want := h.inst.recoveries(), []string{"av1:" + v1[0]}; !cmp.Equal(got, want) {
		t.Errorf("recoveries = %q, want %q", got, want)
	}
	eventually(t, "the logs show the drainer", func() bool {
		return strings.Contains(h.logs.String(), "executor "+drainer+" of version v1 started to finish the 2 unfinished workflows")
	})
	h.inst.set(func(f *fakeInstances) { f.active["av1"] = 0 })
	eventually(t, "the drainer is retired", func() bool { return len(h.drv.ByVersion()["v1"]) == 0 })
}

func TestSupervisor_Sweep(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	ids := h.serve(t, "v2")
	h.inst.set(func(f *fakeInstances) {
		f.pending = map[string][]string{"av2": {"ex-gone", ids[0]}, "av0": {"ex-old"}}
		f.active["av0"] = 1
	})
	h.s.mu.Lock()
	p := h.s.pools[h.app.ID]
	h.s.mu.Unlock()
	h.s.sweep(p)
	got := h.inst.recoveries()
	slices.Sort(got)
	if want := []string{"av0:ex-old", "av2:ex-gone"}; !cmp.Equal(got, want) {
		t.Errorf("recoveries = %q, want %q: only executors that are gone", got, want)
	}
	// No stored version runs as av0: nothing to start a drainer with.
	if n := len(h.drv.Started()); n != 1 {
		t.Errorf("%d executors started, want 1", n)
	}
}

// TestSupervisor_SweepQueued: workflows of an earlier version wait in the
// queues with no executor of theirs, as after a restore or a restart: the
// sweep starts a drainer of that version, retired once they are done.
func TestSupervisor_SweepQueued(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	h.serve(t, "v2")
	h.inst.set(func(f *fakeInstances) {
		f.queued = []string{"av1", "av2"}
		f.active["av1"] = 3
	})
	h.s.sweep(h.pool(t))
	eventually(t, "a drainer of v1 runs", func() bool { return len(h.drv.ByVersion()["v1"]) == 1 })
	if n := len(h.drv.Started()); n != 2 {
		t.Errorf("%d executors started, want 2: one of v2, one drainer of v1", n)
	}
	h.inst.set(func(f *fakeInstances) { f.queued, f.active["av1"] = nil, 0 })
	eventually(t, "the drainer is retired", func() bool { return len(h.drv.ByVersion()["v1"]) == 0 })
}

func TestSupervisor_StopApp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, 2, false)
	h.s.cfg.RestartBackoff = 50 * time.Millisecond
	ids := h.serve(t, "v1")
	h.exit(t, ids[0], runtime.Status{ExitCode: 1})
	eventually(t, "the dead executor is released", func() bool { return len(h.drv.ByVersion()["v1"]) == 1 })
	h.s.StopApp(t.Context(), h.app)
	if got := h.rt.get(testHost); len(got) != 0 {
		t.Errorf("route %q after stopApp, want none", got)
	}
	time.Sleep(100 * time.Millisecond) // past the replacement's back-off
	if got := h.drv.ByVersion(); len(got) != 0 {
		t.Errorf("running %v after stopApp, want nothing", got)
	}
	if h.s.Serving(h.app.ID) {
		t.Error("serving() = true after stopApp")
	}
}

func TestSupervisor_ShutdownStopsEverything(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, 2, true)
	h.inst.set(func(f *fakeInstances) { f.active["av1"] = 1 })
	h.serve(t, "v1")
	h.serve(t, "v2") // v1 retiring
	done := make(chan struct{})
	go func() {
		h.s.Close(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("stopExecutors did not return within 10s")
	}
	if got := h.drv.ByVersion(); len(got) != 0 {
		t.Errorf("running %v after Shutdown, want nothing", got)
	}
	if h.s.spawn(func() {}) {
		t.Error("spawn() after Shutdown started a goroutine")
	}
}

// TestFleet_OrgRenamed: a renamed org's app moves to its new hostname, and
// an executor started afterwards gets it, though the pool started before
// the rename: pools hold no org names.
func TestFleet_OrgRenamed(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	ids := h.serve(t, "v1")
	h.st.mu.Lock()
	a := h.st.apps[h.app.ID]
	a.Org = "neworg"
	h.st.apps[h.app.ID] = a
	h.st.mu.Unlock()
	if err := h.s.OrgRenamed(t.Context(), "org", "neworg"); err != nil {
		t.Fatal(err)
	}
	if got := h.rt.get(testHost); len(got) != 0 {
		t.Errorf("old host routes to %q, want nothing", got)
	}
	if got := h.rt.get("neworg-app.test"); len(got) != 1 {
		t.Fatalf("new host routes to %q, want the executor", got)
	}
	h.exit(t, ids[0], runtime.Status{ExitCode: 1})
	eventually(t, "a replacement serves at the new host", func() bool {
		got := h.rt.get("neworg-app.test")
		return len(got) == 1 && len(h.drv.ByVersion()["v1"]) == 1 && len(h.drv.Started()) == 2
	})
	env := h.drv.Started()[1].Env
	if !slices.Contains(env, "DBOS_APP_HOSTNAME=https://neworg-app.test/") {
		t.Errorf("replacement's environment %q lacks the new hostname", env)
	}
}
