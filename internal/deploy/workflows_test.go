package deploy

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// TestService_Workflows: workflow management reaches the system database
// of the named app only, forks from the step asked, and a resumed or
// restarted workflow of a version nothing runs gets a drainer of that
// version at once.
func TestService_Workflows(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := t.Context()
	h.app.DBInstance = "db"
	h.st.apps[h.app.ID] = h.app
	h.st.dbs = []hangar.DBInstance{{ID: "i1", Org: "org", Name: "db", Status: hangar.DBAvailable, Port: 5432}}
	h.inst.set(func(f *fakeInstances) {
		f.workflows = map[string]hangar.Workflow{
			"old": {ID: "old", Name: "greet", Status: hangar.WorkflowCancelled, ApplicationVersion: "av1"},
			"cur": {ID: "cur", Name: "greet", Status: hangar.WorkflowSuccess, ApplicationVersion: "av2"},
		}
	})
	h.fl.serving[h.app.ID] = "av2"

	t.Run("OtherOrg", func(t *testing.T) {
		if _, err := h.s.Workflows(ctx, "other", "app", hangar.WorkflowFilter{}); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("Workflows(other org) = %v, want %s", err, hangar.KindNotFound)
		}
		if err := h.s.CancelWorkflow(ctx, "other", "app", "cur"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("CancelWorkflow(other org) = %v, want %s", err, hangar.KindNotFound)
		}
		if got := h.inst.workflowCalls(); len(got) != 0 {
			t.Errorf("system database calls for another org's request: %q", got)
		}
	})

	t.Run("List", func(t *testing.T) {
		ws, err := h.s.Workflows(ctx, "org", "app", hangar.WorkflowFilter{Name: "greet"})
		if err != nil || len(ws) != 2 {
			t.Fatalf("Workflows() = %v, %v; want 2", ws, err)
		}
		if _, err := h.s.Workflow(ctx, "org", "app", "nope"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("Workflow(nope) = %v, want %s", err, hangar.KindNotFound)
		}
	})

	t.Run("RestartServingVersion", func(t *testing.T) {
		id, err := h.s.RestartWorkflow(ctx, "org", "app", "cur")
		if err != nil || id != "cur-fork" {
			t.Fatalf("RestartWorkflow(cur) = %q, %v; want cur-fork", id, err)
		}
		if got := h.fl.ensuredVersions(); len(got) != 0 {
			t.Errorf("versions started for workflows: %q, want none: v2 serves and runs its restarted workflow", got)
		}
	})

	t.Run("ForkFromStep", func(t *testing.T) {
		if _, err := h.s.ForkWorkflow(ctx, "other", "app", "cur", 2); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("ForkWorkflow(other org) = %v, want %s", err, hangar.KindNotFound)
		}
		if id, err := h.s.ForkWorkflow(ctx, "org", "app", "cur", 2); err != nil || id != "cur-fork" {
			t.Errorf("ForkWorkflow(cur, 2) = %q, %v; want cur-fork", id, err)
		}
	})

	t.Run("ResumeOldVersion", func(t *testing.T) {
		if err := h.s.ResumeWorkflow(ctx, "org", "app", "old"); err != nil {
			t.Fatal(err)
		}
		if got, want := h.fl.ensuredVersions(), []string{"app1/av1"}; !cmp.Equal(got, want) {
			t.Errorf("versions started for workflows: %q, want %q: a drainer of v1", got, want)
		}
	})

	t.Run("Calls", func(t *testing.T) {
		want := []string{"list app_dbos_sys greet", "get app_dbos_sys nope", "fork@0 app_dbos_sys cur", "fork@2 app_dbos_sys cur", "resume app_dbos_sys old"}
		if diff := cmp.Diff(want, h.inst.workflowCalls()); diff != "" {
			t.Errorf("system database calls (-want +got):\n%s", diff)
		}
	})

	t.Run("InstanceUnavailable", func(t *testing.T) {
		h.st.mu.Lock()
		h.st.dbs[0].Status = hangar.DBUnavailable
		h.st.mu.Unlock()
		if err := h.s.ResumeWorkflow(ctx, "org", "app", "old"); hangar.KindOf(err) != hangar.KindUnavailable {
			t.Errorf("ResumeWorkflow() with the instance down = %v, want %s", err, hangar.KindUnavailable)
		}
	})
}
