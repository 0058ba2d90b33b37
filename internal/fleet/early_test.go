package fleet

import (
	"slices"
	"testing"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// startedIDs returns the IDs of the executors the fake started, in order.
func (h *harness) startedIDs() []string {
	var ids []string
	for _, s := range h.drv.Started() {
		ids = append(ids, s.ID)
	}
	return ids
}

// waitEarly waits until the app's early executor's start returned and
// returns its ID ("" when it failed).
func (h *harness) waitEarly(t *testing.T) string {
	t.Helper()
	h.s.early.mu.Lock()
	e := h.s.early.m[h.app.ID]
	h.s.early.mu.Unlock()
	if e == nil {
		t.Fatal("no early executor recorded")
	}
	<-e.done
	if e.ex == nil {
		return ""
	}
	return e.ex.id
}

func TestEarly_ServeUsesIt(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 2, 2, false)
	h.s.StartEarly(t.Context(), h.app, h.db, "v1", "av1")
	early := h.waitEarly(t)
	if early == "" {
		t.Fatal("the early start failed")
	}
	ids := h.serve(t, "v1")
	if !slices.Contains(ids, early) || len(ids) != 2 {
		t.Errorf("routed %q, want 2 executors, one of them the early %s", ids, early)
	}
	if got := h.startedIDs(); len(got) != 2 {
		t.Errorf("started %q, want the early executor and one more", got)
	}
	if _, e := h.s.early.take(h.app.ID); e != nil {
		t.Error("the early executor is still recorded after Serve took it")
	}
}

func TestEarly_OtherVersionIsStopped(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	h.s.StartEarly(t.Context(), h.app, h.db, "v2", "av2")
	early := h.waitEarly(t)
	ids := h.serve(t, "v1")
	if len(ids) != 1 || ids[0] == early {
		t.Errorf("routed %q, want one new executor of v1, not the early %s of v2", ids, early)
	}
	if left := h.drv.ByVersion()["v2"]; len(left) > 0 {
		t.Errorf("v2's early executor still runs: %v", left)
	}
}

func TestEarly_ExitedBeforeServeIsReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	h.s.StartEarly(t.Context(), h.app, h.db, "v1", "av1")
	early := h.waitEarly(t)
	h.exit(t, early, runtime.Status{ExitCode: 1})
	ids := h.serve(t, "v1")
	if len(ids) != 1 || ids[0] == "" || ids[0] == early {
		t.Errorf("routed %q, want one fresh executor in place of the exited %s", ids, early)
	}
}

func TestEarly_DroppedOrStopped(t *testing.T) {
	t.Parallel()
	for name, stop := range map[string]func(h *harness){
		"DropEarly": func(h *harness) { h.s.DropEarly(t.Context(), h.app.ID) },
		// An app deleted meanwhile: StopApp stops every executor of it.
		"StopApp": func(h *harness) { h.s.StopApp(t.Context(), h.app) },
		// Starting another drops the previous one.
		"StartEarlyAgain": func(h *harness) {
			h.s.StartEarly(t.Context(), h.app, h.db, "v2", "av2")
			h.waitEarly(t)
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, 1, 1, false)
			h.s.StartEarly(t.Context(), h.app, h.db, "v1", "av1")
			if h.waitEarly(t) == "" {
				t.Fatal("the early start failed")
			}
			stop(h)
			if left := h.drv.ByVersion()["v1"]; len(left) > 0 {
				t.Errorf("the early executor still runs: %v", left)
			}
			if ex, _ := h.s.early.take(h.app.ID); ex != nil && ex.version == "v1" {
				t.Error("the stopped early executor is still recorded")
			}
		})
	}
}
