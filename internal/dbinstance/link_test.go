package dbinstance_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

// ownServer starts a PostgreSQL server standing for a user's own, with
// roles for the link checks, and returns it as a linked instance of the
// superuser.
func ownServer(tb testing.TB) hangar.DBInstance {
	tb.Helper()
	pgtest.RequireBinaries(tb)
	port, err := pgcluster.FreePort()
	if err != nil {
		tb.Fatal(err)
	}
	c, err := pgcluster.New(pgcluster.Config{
		DataDir: filepath.Join(pgtest.TempDir(tb), "own"), Port: port, Superuser: "dbosadmin", Password: "super-pass",
		Settings: map[string]string{"fsync": "off"},
	})
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Stop(context.Background()) })
	inst := hangar.DBInstance{ID: "own", Name: "own", Host: "localhost", Port: port, AdminUser: "dbosadmin", AdminPassword: "super-pass", IsLinked: true}
	adminExec(tb, inst, "postgres",
		"CREATE ROLE creator LOGIN CREATEDB CREATEROLE PASSWORD 'creator-pass'",
		"CREATE ROLE dbonly LOGIN CREATEDB PASSWORD 'dbonly-pass'",
	)
	return inst
}

func TestManager_CheckLink(t *testing.T) {
	t.Parallel()
	own := ownServer(t)
	m := dbinstance.New(dbinstance.Config{Dir: t.TempDir()})
	as := func(user, pw string) hangar.DBInstance {
		i := own
		i.AdminUser, i.AdminPassword = user, pw
		return i
	}
	tests := []struct {
		name string
		inst hangar.DBInstance
		want string // substring of the error; "" for success
	}{
		{"Superuser", own, ""},
		{"CreateDBAndRole", as("creator", "creator-pass"), ""},
		{"CreateDBOnly", as("dbonly", "dbonly-pass"), "ALTER ROLE dbonly CREATEDB CREATEROLE"},
		{"WrongPassword", as("dbosadmin", "wrong-pass"), "cannot log in to localhost:"},
		{"NoSuchRole", as("nobody", "wrong-pass"), "cannot log in to localhost:"},
		{"Unreachable", func() hangar.DBInstance { i := own; i.Port = 1; return i }(), "cannot reach a PostgreSQL server at localhost:1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := m.CheckLink(t.Context(), tt.inst)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("CheckLink() = %v, want nil", err)
			case tt.want != "" && (hangar.KindOf(err) != hangar.KindInvalid || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("CheckLink() = %v (kind %s), want kind %s containing %q", err, hangar.KindOf(err), hangar.KindInvalid, tt.want)
			}
		})
	}
}

// TestManager_LinkedAppDatabases runs the app databases on a linked server
// whose admin is no superuser, only CREATEDB and CREATEROLE.
func TestManager_LinkedAppDatabases(t *testing.T) {
	t.Parallel()
	own := ownServer(t)
	own.AdminUser, own.AdminPassword = "creator", "creator-pass"
	m := dbinstance.New(dbinstance.Config{Dir: t.TempDir()})
	ctx := t.Context()
	for range 2 { // idempotent
		if err := m.EnsureAppDatabases(ctx, own, "app_a", "role_a", "pw-a"); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.EnsureAppDatabases(ctx, own, "app_b", "role_b", "pw-b"); err != nil {
		t.Fatal(err)
	}
	if conn, err := connectAs(ctx, own, "role_a", "pw-a", "app_a_dbos_sys"); err != nil {
		t.Errorf("role_a to its system database: %v", err)
	} else {
		conn.Close(ctx)
	}
	if conn, err := connectAs(ctx, own, "role_a", "pw-a", "app_b"); err == nil {
		conn.Close(ctx)
		t.Error("role_a connected to app_b")
	}
	if err := m.DropAppDatabases(ctx, own, "app_a", "role_a"); err != nil {
		t.Fatal(err)
	}
	if err := m.SetAdminPassword(ctx, own, "creator-new"); err != nil {
		t.Fatal(err)
	}
	own.AdminPassword = "creator-new"
	if err := m.CheckLink(ctx, own); err != nil {
		t.Errorf("CheckLink() with the new password: %v", err)
	}
}
