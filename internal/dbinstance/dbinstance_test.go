package dbinstance_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// provision returns a Manager, a provisioned instance, destroyed when the
// test ends, and the Manager's directory.
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

// connectAs connects to db as role with password.
func connectAs(ctx context.Context, inst hangar.DBInstance, role, password, db string) (*pgx.Conn, error) {
	inst.AdminUser, inst.AdminPassword = role, password
	return pgx.Connect(ctx, dbinstance.AdminURL(inst, db))
}

func TestManager_Lifecycle(t *testing.T) {
	t.Parallel()
	m, inst, dir := provision(t)
	ctx := t.Context()

	t.Run("ProvisionIsIdempotent", func(t *testing.T) {
		unrecorded := inst
		unrecorded.Port = 0
		port, err := m.Provision(ctx, unrecorded)
		if err != nil || port != inst.Port {
			t.Errorf("Provision() = %d, %v; want %d, nil", port, err, inst.Port)
		}
	})

	t.Run("RestartKeepsData", func(t *testing.T) {
		conn, err := connectAs(ctx, inst, inst.AdminUser, inst.AdminPassword, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		_, err = conn.Exec(ctx, "CREATE TABLE kept (x int)")
		conn.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.StopAll(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := connectAs(ctx, inst, inst.AdminUser, inst.AdminPassword, "postgres"); err == nil {
			t.Fatal("instance accepts connections after StopAll")
		}
		if err := m.Start(ctx, inst); err == nil {
			t.Error("Start() after StopAll succeeded, want an error")
		}
		// A new Manager, as after a server restart.
		m2 := dbinstance.New(dbinstance.Config{Dir: t.TempDir()})
		if err := m2.Start(ctx, inst); err == nil {
			t.Error("Start() of an instance that was never provisioned in this dir succeeded, want an error")
		}
		m3 := dbinstance.New(dbinstance.Config{Dir: dir, Settings: map[string]string{"fsync": "off"}})
		if err := m3.Start(ctx, inst); err != nil {
			t.Fatal(err)
		}
		conn, err = connectAs(ctx, inst, inst.AdminUser, inst.AdminPassword, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "SELECT * FROM kept"); err != nil {
			t.Errorf("after restart: %v", err)
		}
	})
}

func TestManager_Destroy(t *testing.T) {
	t.Parallel()
	pgtest.RequireBinaries(t)
	dir := pgtest.TempDir(t)
	m := dbinstance.New(dbinstance.Config{Dir: dir, Settings: map[string]string{"fsync": "off"}})
	inst := hangar.DBInstance{ID: "gone", AdminUser: "admin", AdminPassword: "pw"}
	port, err := m.Provision(t.Context(), inst)
	if err != nil {
		t.Fatal(err)
	}
	inst.Port = port
	for range 2 { // the second time, there is nothing left to destroy
		if err := m.Destroy(t.Context(), inst); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("instance dir: stat error %v, want not exist", err)
	}
	if _, err := connectAs(t.Context(), inst, "admin", "pw", "postgres"); err == nil {
		t.Error("destroyed instance accepts connections")
	}
}

func TestManager_AppDatabases(t *testing.T) {
	t.Parallel()
	m, inst, _ := provision(t)
	ctx := t.Context()
	for _, app := range []struct{ db, role, pw string }{
		{"app_a", "role_a", "first"},
		{"app_a", "role_a", `a'pw\`}, // again: idempotent, changes the password
		{"app_b", "role_b", "pw_b"},
	} {
		if err := m.EnsureAppDatabases(ctx, inst, app.db, app.role, app.pw); err != nil {
			t.Fatalf("EnsureAppDatabases(%s): %v", app.db, err)
		}
	}
	const pwA = `a'pw\`

	t.Run("OwnDatabases", func(t *testing.T) {
		for _, db := range []string{"app_a", "app_a_dbos_sys"} {
			conn, err := connectAs(ctx, inst, "role_a", pwA, db)
			if err != nil {
				t.Fatalf("role_a connect to %s: %v", db, err)
			}
			_, err = conn.Exec(ctx, "CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
			conn.Close(ctx)
			if err != nil {
				t.Errorf("role_a create table in %s: %v", db, err)
			}
		}
	})

	t.Run("OldPassword", func(t *testing.T) {
		if conn, err := connectAs(ctx, inst, "role_a", "first", "app_a"); err == nil {
			conn.Close(ctx)
			t.Error("role_a connected with its replaced password")
		}
	})

	t.Run("OtherDatabases", func(t *testing.T) {
		for _, db := range []string{"app_b", "app_b_dbos_sys", "template1"} {
			conn, err := connectAs(ctx, inst, "role_a", pwA, db)
			if err == nil {
				conn.Close(ctx)
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("role_a connect to %s: error %v, want SQLSTATE 42501 (insufficient_privilege)", db, err)
			}
		}
	})

	t.Run("NoPrivileges", func(t *testing.T) {
		conn, err := connectAs(ctx, inst, "role_a", pwA, "app_a")
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var super, createDB, createRole bool
		if err := conn.QueryRow(ctx, "SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = current_user").Scan(&super, &createDB, &createRole); err != nil {
			t.Fatal(err)
		}
		if super || createDB || createRole {
			t.Errorf("role_a: superuser %t, createdb %t, createrole %t; want none", super, createDB, createRole)
		}
	})

	t.Run("DropWhileConnected", func(t *testing.T) {
		client, err := connectAs(ctx, inst, "role_a", pwA, "app_a")
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close(context.Background())
		for range 2 { // the second time, there is nothing left to drop
			if err := m.DropAppDatabases(ctx, inst, "app_a", "role_a"); err != nil {
				t.Fatal(err)
			}
		}
		admin, err := connectAs(ctx, inst, inst.AdminUser, inst.AdminPassword, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		var dbs, roles int
		err = admin.QueryRow(ctx, `SELECT (SELECT count(*) FROM pg_database WHERE datname LIKE 'app_a%'),
			(SELECT count(*) FROM pg_roles WHERE rolname = 'role_a')`).Scan(&dbs, &roles)
		if err != nil || dbs != 0 || roles != 0 {
			t.Errorf("after drop: %d databases, %d roles (%v); want none", dbs, roles, err)
		}
		if conn, err := connectAs(ctx, inst, "role_b", "pw_b", "app_b"); err != nil {
			t.Errorf("role_b after dropping app_a: %v", err)
		} else {
			conn.Close(ctx)
		}
	})

	t.Run("OtherRolesDatabase", func(t *testing.T) {
		err := m.EnsureAppDatabases(ctx, inst, "app_b", "role_c", "pw")
		if got := hangar.KindOf(err); got != hangar.KindConflict {
			t.Errorf("EnsureAppDatabases(app_b, role_c) = %v, kind %s; want %s", err, got, hangar.KindConflict)
		}
		err = m.DropAppDatabases(ctx, inst, "app_b", "role_c")
		if got := hangar.KindOf(err); got != hangar.KindConflict {
			t.Errorf("DropAppDatabases(app_b, role_c) = %v, kind %s; want %s", err, got, hangar.KindConflict)
		}
	})
}
