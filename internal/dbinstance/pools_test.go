package dbinstance_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/sysdb"
)

// TestManager_SysDBPool: reads of a system database share a few pooled
// connections; a new password, a dropped database, an idle pool and a
// destroyed instance leave none open, and a stale password never reads
// through a pooled connection.
func TestManager_SysDBPool(t *testing.T) {
	t.Parallel()
	m, inst, _ := provision(t)
	ctx := t.Context()
	if err := m.EnsureAppDatabases(ctx, inst, "poolapp", "poolapp_role", "pw"); err != nil {
		t.Fatal(err)
	}
	const sysDB = "poolapp_dbos_sys"
	var clock atomic.Int64 // seconds after the epoch
	clock.Store(time.Now().Unix())
	dbinstance.SetPoolClock(m, func() time.Time { return time.Unix(clock.Load(), 0) })

	admin, err := pgx.Connect(ctx, dbinstance.AdminURL(inst, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close(context.Background()) })
	// sessions returns how many sessions are connected to db.
	sessions := func(t *testing.T, db string) int {
		t.Helper()
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", db).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	noSessions := func(t *testing.T, db string) {
		t.Helper()
		poll(t, "no session on "+db, func() bool { return sessions(t, db) == 0 })
	}
	read := func(t *testing.T, inst hangar.DBInstance, db string) error {
		t.Helper()
		_, err := sysdb.New(m).ListWorkflows(ctx, inst, db, hangar.WorkflowFilter{})
		return err
	}

	t.Run("Shared", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 20)
		for range 20 {
			wg.Go(func() { errs <- read(t, inst, sysDB) })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := sessions(t, sysDB); n < 1 || n > 2 {
			t.Errorf("%d sessions on %s after 20 reads at once, want 1 or 2 kept for the next reads", n, sysDB)
		}
	})

	t.Run("NewPassword", func(t *testing.T) {
		if err := m.SetAdminPassword(ctx, inst, "new pw"); err != nil {
			t.Fatal(err)
		}
		noSessions(t, sysDB)
		if err := read(t, inst, sysDB); err == nil {
			t.Error("a read with the old password succeeded")
		}
		inst.AdminPassword = "new pw"
		if err := read(t, inst, sysDB); err != nil {
			t.Fatalf("a read with the new password: %v", err)
		}
	})

	t.Run("DroppedDatabase", func(t *testing.T) {
		if err := m.DropAppDatabases(ctx, inst, "poolapp", "poolapp_role"); err != nil {
			t.Fatal(err)
		}
		if n := dbinstance.OpenPools(m); n != 0 {
			t.Errorf("%d pools open after the database was dropped, want 0", n)
		}
	})

	t.Run("Idle", func(t *testing.T) {
		if err := read(t, inst, "template1"); err != nil {
			t.Fatal(err)
		}
		clock.Add(31)
		if err := read(t, inst, "postgres"); err != nil {
			t.Fatal(err)
		}
		noSessions(t, "template1")
		if n := dbinstance.OpenPools(m); n != 1 {
			t.Errorf("%d pools open, want 1: the one of template1 was idle", n)
		}
	})

	t.Run("Destroyed", func(t *testing.T) {
		if err := m.Destroy(ctx, inst); err != nil {
			t.Fatal(err)
		}
		if n := dbinstance.OpenPools(m); n != 0 {
			t.Errorf("%d pools open after the instance was destroyed, want 0", n)
		}
	})
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
