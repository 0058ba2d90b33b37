package sysdb_test

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/hangar-oss/hangar/internal/sysdb"
)

// launchDBOS launches a DBOS Go context on sysURL as executor id of app
// version, with wf registered as "wf", and shuts it down when the test ends.
func launchDBOS(tb testing.TB, sysURL, id, version string, wf dbos.Workflow[string, string]) dbos.Context {
	tb.Helper()
	ctx, err := dbos.NewContext(context.Background(), dbos.Config{
		AppName: "wfapp", DatabaseURL: sysURL, ApplicationVersion: version, ExecutorID: id,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	dbos.RegisterWorkflow(ctx, wf, dbos.WithWorkflowName("wf"))
	if err := dbos.Launch(ctx); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dbos.Shutdown(ctx, 5*time.Second) })
	return ctx
}

// poll waits until cond holds, failing the test after a minute.
func poll(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestManager_RecoverWorkflows runs a real DBOS executor that dies in the
// middle of a workflow, recovers its work as the platform does, and checks
// that a live executor of the same version finishes it without running the
// completed step again.
func TestManager_RecoverWorkflows(t *testing.T) {
	t.Parallel()
	m, inst, _ := provision(t)
	db := sysdb.New(m)
	ctx := t.Context()
	if err := m.EnsureAppDatabases(ctx, inst, "wfapp", "wfapp_role", "pw"); err != nil {
		t.Fatal(err)
	}
	const sysDB = "wfapp_dbos_sys"
	sysURL := dbinstance.AdminURL(inst, sysDB)

	t.Run("NoSchemaYet", func(t *testing.T) {
		n, err := db.RecoverWorkflows(ctx, inst, sysDB, []string{"ex-a"}, "v1")
		if err != nil || n != 0 {
			t.Errorf("RecoverWorkflows() before DBOS created its schema = %d, %v; want 0, nil", n, err)
		}
		owners, err := db.PendingExecutors(ctx, inst, sysDB, "ex-")
		if err != nil || len(owners) != 0 {
			t.Errorf("PendingExecutors() = %v, %v; want none", owners, err)
		}
		if got, err := db.QueuedVersions(ctx, inst, sysDB); err != nil || len(got) != 0 {
			t.Errorf("QueuedVersions() = %q, %v; want none", got, err)
		}
	})

	var step1, step2 atomic.Int32
	release := make(chan struct{})
	wf := func(ctx dbos.Context, in string) (string, error) {
		a, err := dbos.RunAsStep(ctx, func(context.Context) (string, error) {
			step1.Add(1)
			return "s1(" + in + ")", nil
		}, dbos.WithStepName("one"))
		if err != nil {
			return "", err
		}
		return dbos.RunAsStep(ctx, func(c context.Context) (string, error) {
			step2.Add(1)
			select {
			case <-release:
				return "s2(" + a + ")", nil
			case <-c.Done():
				return "", c.Err()
			}
		}, dbos.WithStepName("two"))
	}

	// Executor ex-dead of version v1 runs three workflows into step two and
	// stops without finishing them, as a killed executor would.
	dead := launchDBOS(t, sysURL, "ex-dead", "v1", wf)
	for _, id := range []string{"wf-1", "wf-2", "wf-3"} {
		if _, err := dbos.RunWorkflow(dead, wf, id, dbos.WithWorkflowID(id)); err != nil {
			t.Fatal(err)
		}
	}
	poll(t, "three workflows in step two", func() bool { return step2.Load() == 3 })
	dbos.Shutdown(dead, time.Second)

	admin, err := pgx.Connect(ctx, sysURL)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(context.Background())
	// wf-2 belongs to another version, wf-3 to an executor still alive.
	if _, err := admin.Exec(ctx, `UPDATE dbos.workflow_status SET application_version = 'v0' WHERE workflow_uuid = 'wf-2';
		UPDATE dbos.workflow_status SET executor_id = 'ex-alive' WHERE workflow_uuid = 'wf-3'`); err != nil {
		t.Fatal(err)
	}
	status := func(id string) (st, executor, queue string) {
		t.Helper()
		var q *string
		if err := admin.QueryRow(ctx, "SELECT status, executor_id, queue_name FROM dbos.workflow_status WHERE workflow_uuid = $1", id).Scan(&st, &executor, &q); err != nil {
			t.Fatal(err)
		}
		if q != nil {
			queue = *q
		}
		return st, executor, queue
	}
	for _, id := range []string{"wf-1", "wf-2", "wf-3"} {
		if st, _, _ := status(id); st != "PENDING" {
			t.Fatalf("%s is %s after its executor stopped, want PENDING", id, st)
		}
	}

	t.Run("PendingExecutors", func(t *testing.T) {
		owners, err := db.PendingExecutors(ctx, inst, sysDB, "ex-")
		if err != nil {
			t.Fatal(err)
		}
		want := map[string][]string{"v0": {"ex-dead"}, "v1": {"ex-alive", "ex-dead"}}
		if diff := cmp.Diff(want, owners); diff != "" {
			t.Errorf("PendingExecutors() (-want +got):\n%s", diff)
		}
		if owners, _ := db.PendingExecutors(ctx, inst, sysDB, "other-"); len(owners) != 0 {
			t.Errorf("PendingExecutors(other-) = %v, want none", owners)
		}
	})

	t.Run("Recover", func(t *testing.T) {
		n, err := db.RecoverWorkflows(ctx, inst, sysDB, []string{"ex-dead", "ex-unknown"}, "v1")
		if err != nil || n != 1 {
			t.Fatalf("RecoverWorkflows() = %d, %v; want 1, nil", n, err)
		}
		if st, ex, q := status("wf-1"); st != "ENQUEUED" || ex != "ex-dead" || q != "_dbos_internal_queue" {
			t.Errorf("wf-1 is %s on %s in queue %q; want ENQUEUED on ex-dead in _dbos_internal_queue", st, ex, q)
		}
		for _, id := range []string{"wf-2", "wf-3"} {
			if st, _, _ := status(id); st != "PENDING" {
				t.Errorf("%s is %s, want PENDING: it is not ex-dead's work of v1", id, st)
			}
		}
		if n, err := db.RecoverWorkflows(ctx, inst, sysDB, []string{"ex-dead"}, "v1"); err != nil || n != 0 {
			t.Errorf("RecoverWorkflows() again = %d, %v; want 0, nil", n, err)
		}
		if n, err := db.EnqueuedWorkflows(ctx, inst, sysDB, "v1"); err != nil || n != 1 {
			t.Errorf("EnqueuedWorkflows(v1) = %d, %v; want 1, nil", n, err)
		}
		if n, err := db.EnqueuedWorkflows(ctx, inst, sysDB, "v0"); err != nil || n != 0 {
			t.Errorf("EnqueuedWorkflows(v0) = %d, %v; want 0, nil", n, err)
		}
		if got, err := db.QueuedVersions(ctx, inst, sysDB); err != nil || !cmp.Equal(got, []string{"v1"}) {
			t.Errorf("QueuedVersions() = %q, %v; want [v1]", got, err)
		}
	})

	t.Run("LiveExecutorFinishes", func(t *testing.T) {
		close(release)
		live := launchDBOS(t, sysURL, "ex-live", "v1", wf)
		h, err := dbos.RetrieveWorkflow[string](live, "wf-1")
		if err != nil {
			t.Fatal(err)
		}
		got, err := h.GetResult(dbos.WithHandleTimeout(time.Minute))
		if err != nil || got != "s2(s1(wf-1))" {
			t.Fatalf("wf-1 result = %q, %v; want s2(s1(wf-1))", got, err)
		}
		if st, ex, _ := status("wf-1"); st != "SUCCESS" || ex != "ex-live" {
			t.Errorf("wf-1 is %s on %s, want SUCCESS on ex-live", st, ex)
		}
		// Step one ran once per workflow, before the executor died; step
		// two, in flight then, ran again for wf-1 only.
		if got := step1.Load(); got != 3 {
			t.Errorf("step one ran %d times, want 3", got)
		}
		if got := step2.Load(); got != 4 {
			t.Errorf("step two ran %d times, want 4", got)
		}
		if n, err := db.ActiveWorkflows(ctx, inst, sysDB, "v1"); err != nil || n != 1 {
			t.Errorf("ActiveWorkflows(v1) = %d, %v; want 1 (wf-3)", n, err)
		}
	})

	t.Run("BadName", func(t *testing.T) {
		_, err := db.RecoverWorkflows(ctx, inst, "bad name;", []string{"ex-a"}, "v1")
		if got := hangar.KindOf(err); got != hangar.KindInvalid {
			t.Errorf("RecoverWorkflows(bad name) = %v, kind %s; want %s", err, got, hangar.KindInvalid)
		}
	})
}

// provision provisions a managed instance, destroyed when the test ends.
func provision(tb testing.TB) (*dbinstance.Manager, hangar.DBInstance, string) {
	tb.Helper()
	pgtest.RequireBinaries(tb)
	dir := pgtest.TempDir(tb)
	m := dbinstance.New(dbinstance.Config{Dir: dir, Settings: map[string]string{"fsync": "off"}})
	inst := hangar.DBInstance{ID: "inst1", Name: "db1", AdminUser: "hangar_admin", AdminPassword: "admin pw'\\"}
	port, err := m.Provision(tb.Context(), inst)
	if err != nil {
		tb.Fatal(err)
	}
	inst.Port = port
	tb.Cleanup(func() {
		if err := m.Destroy(context.Background(), inst); err != nil {
			tb.Error(err)
		}
	})
	return m, inst, dir
}
