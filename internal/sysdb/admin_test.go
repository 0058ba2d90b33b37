package sysdb_test

import (
	"context"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/sysdb"
)

// gatedApp is a DBOS app whose workflow "gated" runs three steps, the
// second of which waits until its input is released; it counts the runs
// of each step by input.
type gatedApp struct {
	mu       sync.Mutex
	runs     map[string][]int // input → runs of steps one, two, three
	gates    map[string]chan struct{}
	returned chan string // the input, each time the workflow function returns
}

func newGatedApp() *gatedApp {
	return &gatedApp{runs: map[string][]int{}, gates: map[string]chan struct{}{}, returned: make(chan string, 100)}
}

func (g *gatedApp) gate(in string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gates[in] == nil {
		g.gates[in] = make(chan struct{})
	}
	return g.gates[in]
}

func (g *gatedApp) release(in string) { close(g.gate(in)) }

func (g *gatedApp) ran(in string, step int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.runs[in] == nil {
		g.runs[in] = make([]int, 3)
	}
	g.runs[in][step-1]++
}

func (g *gatedApp) stepRuns(in string) []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(append(g.runs[in], make([]int, 3)...)[:3])
}

func (g *gatedApp) workflow(ctx dbos.Context, in string) (string, error) {
	defer func() { g.returned <- in }()
	step := func(n int, name string) (string, error) {
		return dbos.RunAsStep(ctx, func(c context.Context) (string, error) {
			g.ran(in, n)
			if n == 2 {
				select {
				case <-g.gate(in):
				case <-c.Done():
					return "", c.Err()
				}
			}
			return name + "(" + in + ")", nil
		}, dbos.WithStepName(name))
	}
	var out string
	for n, name := range []string{"one", "two", "three"} {
		s, err := step(n+1, name)
		if err != nil {
			return "", err
		}
		out += s
	}
	return out, nil
}

// waitReturned waits until the workflow function of input in returned.
func (g *gatedApp) waitReturned(tb testing.TB, in string) {
	tb.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case got := <-g.returned:
			if got == in {
				return
			}
		case <-timeout:
			tb.Fatalf("the workflow of %s did not return", in)
		}
	}
}

// TestManager_WorkflowAdmin runs a real DBOS executor and manages its
// workflows from the system database as the platform does: it lists them
// (filters, queues, paging), reads one and its steps, cancels a running
// workflow (its next step does not run), resumes it (its recorded steps do
// not run again) and forks finished ones from the start and from a step.
func TestManager_WorkflowAdmin(t *testing.T) {
	t.Parallel()
	m, inst, _ := provision(t)
	db := sysdb.New(m)
	ctx := t.Context()
	if err := m.EnsureAppDatabases(ctx, inst, "adminapp", "adminapp_role", "pw"); err != nil {
		t.Fatal(err)
	}
	const sysDB = "adminapp_dbos_sys"

	t.Run("NoSchemaYet", func(t *testing.T) {
		ws, err := db.ListWorkflows(ctx, inst, sysDB, hangar.WorkflowFilter{})
		if err != nil || len(ws) != 0 {
			t.Errorf("ListWorkflows() before DBOS created its schema = %v, %v; want none", ws, err)
		}
		if err := db.CancelWorkflow(ctx, inst, sysDB, "wf-x"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("CancelWorkflow() before DBOS created its schema = %v, want %s", err, hangar.KindNotFound)
		}
	})

	g := newGatedApp()
	dctx, err := dbos.NewContext(context.Background(), dbos.Config{
		AppName: "adminapp", DatabaseURL: dbinstance.AdminURL(inst, sysDB), ApplicationVersion: "v1", ExecutorID: "ex-1",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	dbos.RegisterWorkflow(dctx, g.workflow, dbos.WithWorkflowName("gated"))
	queue, err := dbos.RegisterQueue(dctx, "gatedq", dbos.WithGlobalConcurrency(1), dbos.WithQueueBasePollingInterval(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := dbos.Launch(dctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dbos.Shutdown(dctx, 5*time.Second) })

	result := func(t *testing.T, id string) (string, error) {
		t.Helper()
		h, err := dbos.RetrieveWorkflow[string](dctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return h.GetResult(dbos.WithHandleTimeout(time.Minute))
	}
	status := func(t *testing.T, id string) hangar.Workflow {
		t.Helper()
		w, err := db.GetWorkflow(ctx, inst, sysDB, id)
		if err != nil {
			t.Fatalf("GetWorkflow(%s): %v", id, err)
		}
		return w
	}
	ids := func(ws []hangar.Workflow) []string {
		var out []string
		for _, w := range ws {
			out = append(out, w.ID)
		}
		return out
	}

	// done-1 and done-2 finish; q-1 runs on the queue into step two,
	// where it waits; q-2 waits behind it in the queue.
	for _, in := range []string{"done-1", "done-2"} {
		g.release(in)
		if _, err := dbos.RunWorkflow(dctx, g.workflow, in, dbos.WithWorkflowID(in)); err != nil {
			t.Fatal(err)
		}
		if _, err := result(t, in); err != nil {
			t.Fatal(err)
		}
	}
	for _, in := range []string{"q-1", "q-2"} {
		if _, err := dbos.RunWorkflow(dctx, g.workflow, in, dbos.WithWorkflowID(in), dbos.WithQueue(queue)); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "q-1 in step two", func() bool { return g.stepRuns("q-1")[1] == 1 })

	t.Run("List", func(t *testing.T) {
		two := 2
		for _, tc := range []struct {
			name string
			f    hangar.WorkflowFilter
			want []string
		}{
			{"All", hangar.WorkflowFilter{}, []string{"done-1", "done-2", "q-1", "q-2"}},
			{"SortDesc", hangar.WorkflowFilter{SortDesc: true}, []string{"q-2", "q-1", "done-2", "done-1"}},
			{"LimitOffset", hangar.WorkflowFilter{Limit: &two, Offset: 1}, []string{"done-2", "q-1"}},
			{"Status", hangar.WorkflowFilter{Statuses: []hangar.WorkflowStatus{hangar.WorkflowSuccess}}, []string{"done-1", "done-2"}},
			{"IDs", hangar.WorkflowFilter{IDs: []string{"q-2", "done-1", "nope"}}, []string{"done-1", "q-2"}},
			{"IDPrefix", hangar.WorkflowFilter{IDPrefix: "done-"}, []string{"done-1", "done-2"}},
			{"Name", hangar.WorkflowFilter{Name: "other"}, nil},
			{"Version", hangar.WorkflowFilter{ApplicationVersion: "v1", Limit: &two}, []string{"done-1", "done-2"}},
			{"OtherVersion", hangar.WorkflowFilter{ApplicationVersion: "v0"}, nil},
			{"EndTime", hangar.WorkflowFilter{EndTime: time.Now().Add(-time.Hour)}, nil},
			{"StartTime", hangar.WorkflowFilter{StartTime: time.Now().Add(-time.Hour), IDPrefix: "q-1"}, []string{"q-1"}},
			{"Queues", hangar.WorkflowFilter{QueuesOnly: true}, []string{"q-1", "q-2"}},
			{"QueuesEnqueued", hangar.WorkflowFilter{QueuesOnly: true, Statuses: []hangar.WorkflowStatus{hangar.WorkflowEnqueued}}, []string{"q-2"}},
			{"QueueName", hangar.WorkflowFilter{QueuesOnly: true, QueueName: "otherq"}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) {
				ws, err := db.ListWorkflows(ctx, inst, sysDB, tc.f)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tc.want, ids(ws)); diff != "" {
					t.Errorf("ListWorkflows(%+v) (-want +got):\n%s", tc.f, diff)
				}
			})
		}
	})

	t.Run("Get", func(t *testing.T) {
		w := status(t, "done-1")
		if w.Status != hangar.WorkflowSuccess || w.Name != "gated" || w.ApplicationVersion != "v1" || w.ExecutorID != "ex-1" ||
			w.Input == "" || w.Output == "" || w.Error != "" || w.CreatedAt.IsZero() || w.CompletedAt.IsZero() {
			t.Errorf("GetWorkflow(done-1) = %+v; want SUCCESS of gated, v1 on ex-1, with input, output and times", w)
		}
		if w := status(t, "q-2"); w.Status != hangar.WorkflowEnqueued || w.QueueName != "gatedq" {
			t.Errorf("q-2 is %s in queue %q, want ENQUEUED in gatedq", w.Status, w.QueueName)
		}
		if _, err := db.GetWorkflow(ctx, inst, sysDB, "nope"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("GetWorkflow(nope) = %v, want %s", err, hangar.KindNotFound)
		}
		ws, err := db.ListWorkflows(ctx, inst, sysDB, hangar.WorkflowFilter{IDs: []string{"done-1"}})
		if err != nil || len(ws) != 1 || ws[0].Input != "" || ws[0].Output != "" {
			t.Errorf("ListWorkflows() without LoadInput/LoadOutput = %+v, %v; want done-1 without input and output", ws, err)
		}
	})

	t.Run("Steps", func(t *testing.T) {
		steps, err := db.WorkflowSteps(ctx, inst, sysDB, "done-1")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, s := range steps {
			names = append(names, s.Name)
			if s.Output == "" || s.CompletedAt.IsZero() {
				t.Errorf("step %+v lacks its output or completion time", s)
			}
		}
		if diff := cmp.Diff([]string{"one", "two", "three"}, names); diff != "" {
			t.Errorf("steps of done-1 (-want +got):\n%s", diff)
		}
		if _, err := db.WorkflowSteps(ctx, inst, sysDB, "nope"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("WorkflowSteps(nope) = %v, want %s", err, hangar.KindNotFound)
		}
	})

	t.Run("CancelResume", func(t *testing.T) {
		if err := db.CancelWorkflow(ctx, inst, sysDB, "q-1"); err != nil {
			t.Fatal(err)
		}
		if w := status(t, "q-1"); w.Status != hangar.WorkflowCancelled || w.QueueName != "" {
			t.Fatalf("q-1 is %s in queue %q after the cancel, want CANCELLED out of its queue", w.Status, w.QueueName)
		}
		// Its step two ends; the workflow stops before step three.
		g.release("q-1")
		g.waitReturned(t, "q-1")
		if got := g.stepRuns("q-1"); got[0] != 1 || got[2] != 0 {
			t.Errorf("step runs of q-1 after the cancel = %v, want step one once and step three never", got)
		}
		if w := status(t, "q-1"); w.Status != hangar.WorkflowCancelled {
			t.Errorf("q-1 is %s after its function returned, want CANCELLED", w.Status)
		}
		steps, err := db.WorkflowSteps(ctx, inst, sysDB, "q-1")
		if err != nil {
			t.Fatal(err)
		}
		// Canceling an ended workflow changes nothing.
		if err := db.CancelWorkflow(ctx, inst, sysDB, "done-2"); err != nil {
			t.Fatal(err)
		}
		if w := status(t, "done-2"); w.Status != hangar.WorkflowSuccess {
			t.Errorf("done-2 is %s after a cancel, want SUCCESS", w.Status)
		}

		w, err := db.ResumeWorkflow(ctx, inst, sysDB, "q-1")
		if err != nil {
			t.Fatal(err)
		}
		if w.ID != "q-1" || w.Status != hangar.WorkflowEnqueued && w.Status != hangar.WorkflowPending || w.ApplicationVersion != "v1" {
			t.Errorf("ResumeWorkflow(q-1) = %+v; want q-1 of v1 ENQUEUED (or PENDING already)", w)
		}
		if got, err := result(t, "q-1"); err != nil || got != "one(q-1)two(q-1)three(q-1)" {
			t.Fatalf("q-1 resumed = %q, %v", got, err)
		}
		// The steps it had recorded did not run again.
		got := g.stepRuns("q-1")
		want := []int{1, 1, 1}
		if len(steps) < 2 { // step two's output was not recorded: it ran again
			want[1] = 2
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("step runs of q-1 (-want +got), with %d steps recorded at the cancel:\n%s", len(steps), diff)
		}
		g.release("q-2")
		if _, err := result(t, "q-2"); err != nil {
			t.Errorf("q-2: %v", err)
		}
		if _, err := db.ResumeWorkflow(ctx, inst, sysDB, "nope"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("ResumeWorkflow(nope) = %v, want %s", err, hangar.KindNotFound)
		}
	})

	t.Run("Fork", func(t *testing.T) {
		before := g.stepRuns("done-1")
		restarted, err := db.ForkWorkflow(ctx, inst, sysDB, "done-1", 0)
		if err != nil {
			t.Fatal(err)
		}
		if restarted.ID == "done-1" || restarted.ForkedFrom != "done-1" || restarted.Name != "gated" || restarted.ApplicationVersion != "v1" ||
			restarted.Input != status(t, "done-1").Input {
			t.Errorf("ForkWorkflow(done-1, 0) = %+v; want a new gated workflow of v1 forked from done-1 with its input", restarted)
		}
		if got, err := result(t, restarted.ID); err != nil || got != "one(done-1)two(done-1)three(done-1)" {
			t.Fatalf("the restart of done-1 = %q, %v", got, err)
		}
		if !status(t, "done-1").WasForkedFrom {
			t.Error("done-1 does not record that it was forked")
		}
		afterRestart := g.stepRuns("done-1")
		if diff := cmp.Diff([]int{before[0] + 1, before[1] + 1, before[2] + 1}, afterRestart); diff != "" {
			t.Errorf("step runs after a restart from step 0 (-want +got):\n%s", diff)
		}

		// From step two: step one's recorded output is copied, not run.
		steps, err := db.WorkflowSteps(ctx, inst, sysDB, "done-1")
		if err != nil || len(steps) != 3 {
			t.Fatalf("steps of done-1 = %v, %v", steps, err)
		}
		forked, err := db.ForkWorkflow(ctx, inst, sysDB, "done-1", steps[1].ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := result(t, forked.ID); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]int{afterRestart[0], afterRestart[1] + 1, afterRestart[2] + 1}, g.stepRuns("done-1")); diff != "" {
			t.Errorf("step runs after a fork from step two (-want +got):\n%s", diff)
		}
		forkSteps, err := db.WorkflowSteps(ctx, inst, sysDB, forked.ID)
		if err != nil || len(forkSteps) != 3 || forkSteps[0] != steps[0] {
			t.Errorf("steps of the fork = %+v, %v; want 3, the first copied: %+v", forkSteps, err, steps[0])
		}

		if _, err := db.ForkWorkflow(ctx, inst, sysDB, "nope", 0); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("ForkWorkflow(nope) = %v, want %s", err, hangar.KindNotFound)
		}
		if _, err := db.ForkWorkflow(ctx, inst, sysDB, "done-1", -1); hangar.KindOf(err) != hangar.KindInvalid {
			t.Errorf("ForkWorkflow(step -1) = %v, want %s", err, hangar.KindInvalid)
		}
	})
}
