package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/pgcluster"
)

// TestDatabases covers the database instance commands of the official CLI:
// provision, status, list, url, reset-password, a real point-in-time
// restore, supervision of a managed instance that dies, destroy (refused
// while an app uses the instance), and link and unlink of a PostgreSQL
// server of the user's own.
func TestDatabases(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "dana")
	c := h.Client(t, refresh)
	ctx := context.Background()
	dir := t.TempDir()
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	cli := func(t *testing.T, args ...string) (string, int) {
		t.Helper()
		return h.official(t, dir, args...)
	}
	mustCLI := func(t *testing.T, args ...string) string {
		t.Helper()
		out, code := cli(t, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	refused := func(t *testing.T, want string, args ...string) {
		t.Helper()
		out, code := cli(t, args...)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("dbos-cloud %s: exit %d, want a failure saying %q\n%s", strings.Join(args, " "), code, want, out)
		}
	}
	status := func(t *testing.T, name string) apiclient.UserDBInstance {
		t.Helper()
		out := mustCLI(t, "db", "status", name, "--json")
		var d apiclient.UserDBInstance
		if i := strings.Index(out, "{"); i < 0 || json.Unmarshal([]byte(out[i:]), &d) != nil {
			t.Fatalf("db status --json: not JSON:\n%s", out)
		}
		return d
	}
	list := func(t *testing.T) []string {
		t.Helper()
		out := mustCLI(t, "db", "list", "--json")
		var ds []apiclient.UserDBInstance
		if i := strings.Index(out, "["); i < 0 || json.Unmarshal([]byte(out[i:]), &ds) != nil {
			t.Fatalf("db list --json: not JSON:\n%s", out)
		}
		var names []string
		for _, d := range ds {
			names = append(names, d.PostgresInstanceName+":"+d.Status)
		}
		return names
	}
	// admin connects to database db of a managed instance as its admin.
	admin := func(t *testing.T, d apiclient.UserDBInstance, password, db string) (*pgx.Conn, error) {
		t.Helper()
		cfg, err := pgx.ParseConfig("postgres://127.0.0.1/?sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		cfg.Port, cfg.User, cfg.Password, cfg.Database = uint16(d.Port), d.DatabaseUsername, password, db
		cfg.ConnectTimeout = 10 * time.Second
		return pgx.ConnectConfig(ctx, cfg)
	}
	mustAdmin := func(t *testing.T, d apiclient.UserDBInstance, password, db string) *pgx.Conn {
		t.Helper()
		conn, err := admin(t, d, password, db)
		if err != nil {
			t.Fatalf("connect to %s on %s as %s: %v", db, d.PostgresInstanceName, d.DatabaseUsername, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	exec := func(t *testing.T, conn *pgx.Conn, sqls ...string) {
		t.Helper()
		for _, sql := range sqls {
			if _, err := conn.Exec(ctx, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
	}
	rows := func(t *testing.T, conn *pgx.Conn) []int {
		t.Helper()
		r, err := conn.Query(ctx, "SELECT x FROM t ORDER BY x")
		if err != nil {
			t.Fatal(err)
		}
		xs, err := pgx.CollectRows(r, pgx.RowTo[int])
		if err != nil {
			t.Fatal(err)
		}
		return xs
	}
	registerApp := func(t *testing.T, name, db string) {
		t.Helper()
		if _, err := c.RegisterApp(ctx, "dana", apiclient.RegisterAppRequest{Name: name, Database: db, Language: "node"}); err != nil {
			t.Fatalf("register app %s on %s: %v", name, db, err)
		}
	}
	deleteApp := func(t *testing.T, name string, dropDB bool) {
		t.Helper()
		if err := c.DeleteApp(ctx, "dana", name, apiclient.DeleteAppRequest{DropDB: dropDB}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "app "+name+" deleted", time.Minute, func() bool {
			apps, err := c.Apps(ctx, "dana")
			return err == nil && !slices.ContainsFunc(apps, func(a apiclient.Application) bool { return a.Name == name })
		})
	}

	t.Run("Validation", func(t *testing.T) {
		refused(t, "invalid database instance name", "db", "provision", "Bad-Name", "-U", "dana_admin", "-W", "a-password")
		for _, tt := range []struct{ admin, want string }{
			{"postgres", "reserved"},
			{"x", "3 to 16 characters"},
			{"1admin", "starting with a letter"},
		} {
			err := c.ProvisionDB(ctx, "dana", apiclient.ProvisionDBRequest{Name: "valid_name", AdminName: tt.admin, AdminPassword: "a-password"})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("provision with admin %q: %v, want an error saying %q", tt.admin, err, tt.want)
			}
		}
		for _, pw := range []string{"short", "has space1", "quote'pass", "at@sign-pass"} {
			err := c.ProvisionDB(ctx, "dana", apiclient.ProvisionDBRequest{Name: "valid_name", AdminName: "dana_admin", AdminPassword: pw})
			if err == nil || !strings.Contains(err.Error(), "invalid database password") {
				t.Errorf("provision with password %q: %v, want the password rule", pw, err)
			}
		}
		if got := list(t); len(got) != 0 {
			t.Errorf("db list after refused provisions = %v, want none", got)
		}
	})

	out := mustCLI(t, "db", "provision", "danadb", "-U", "dana_admin", "-W", "first-pass")
	if !strings.Contains(out, "Database successfully provisioned!") {
		t.Errorf("db provision output:\n%s", out)
	}
	db := status(t, "danadb")
	want := apiclient.UserDBInstance{
		PostgresInstanceName: "danadb", Status: "available", HostName: "localhost", Port: db.Port,
		DatabaseUsername: "dana_admin", DBOSAdminName: "dana_admin",
	}
	if diff := cmp.Diff(want, db); diff != "" || db.Port == 0 {
		t.Fatalf("db status --json (-want +got):\n%s", diff)
	}
	refused(t, "already exists", "db", "provision", "danadb", "-U", "dana_admin", "-W", "first-pass")

	t.Run("List", func(t *testing.T) {
		if diff := cmp.Diff([]string{"danadb:available"}, list(t)); diff != "" {
			t.Errorf("db list --json (-want +got):\n%s", diff)
		}
	})

	t.Run("URL", func(t *testing.T) {
		out := mustCLI(t, "db", "url", "danadb")
		want := "postgresql://dana_admin:***@localhost:" + strconv.Itoa(db.Port) + "/postgres"
		if !strings.Contains(out, want) {
			t.Errorf("db url printed:\n%s\nwant %s", out, want)
		}
	})

	t.Run("ResetPassword", func(t *testing.T) {
		mustAdmin(t, db, "first-pass", "postgres")
		refused(t, "Passwords must be between 8 and 128", "db", "reset-password", "danadb", "-W", "short")
		out := mustCLI(t, "db", "reset-password", "danadb", "-W", "second-pass")
		if !strings.Contains(out, "Successfully reset user password") {
			t.Errorf("db reset-password output:\n%s", out)
		}
		mustAdmin(t, db, "second-pass", "postgres")
		if conn, err := admin(t, db, "first-pass", "postgres"); err == nil {
			conn.Close(ctx)
			t.Error("the old password still works")
		}
		if err := c.ResetDBPassword(ctx, "dana", "danadb", "bad pass word"); err == nil || !strings.Contains(err.Error(), "invalid database password") {
			t.Errorf("reset to an invalid password: %v, want the password rule", err)
		}
	})

	t.Run("PointInTimeRestore", func(t *testing.T) {
		conn := mustAdmin(t, db, "second-pass", "postgres")
		exec(t, conn, "CREATE DATABASE ledger")
		lc := mustAdmin(t, db, "second-pass", "ledger")
		exec(t, lc, "CREATE TABLE t (x int)", "INSERT INTO t VALUES (1), (2), (3)")
		noted := time.Now().UTC().Format(time.RFC3339Nano)
		exec(t, lc, "INSERT INTO t VALUES (4), (5)", "DELETE FROM t WHERE x = 1", "UPDATE t SET x = 20 WHERE x = 2")

		refused(t, "it can be restored to any time from", "db", "restore", "danadb", "-t", "2001-01-01T00:00:00Z", "-n", "too_early")
		refused(t, "it can be restored to any time from", "db", "restore", "danadb", "-t", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "-n", "too_late")
		refused(t, "invalid restore time", "db", "restore", "danadb", "-t", "yesterday", "-n", "bad_time")
		refused(t, "already exists", "db", "restore", "danadb", "-t", noted, "-n", "danadb")
		refused(t, "database nosuchdb not found", "db", "restore", "nosuchdb", "-t", noted, "-n", "other")

		out := mustCLI(t, "db", "restore", "danadb", "-t", noted, "-n", "danadb_pitr")
		if !strings.Contains(out, "Database successfully restored!") {
			t.Errorf("db restore output:\n%s", out)
		}
		pitr := status(t, "danadb_pitr")
		if pitr.Status != "available" || pitr.Port == 0 || pitr.Port == db.Port || pitr.DatabaseUsername != "dana_admin" {
			t.Fatalf("restored instance = %+v, want available on a port of its own with admin dana_admin", pitr)
		}
		if diff := cmp.Diff([]int{1, 2, 3}, rows(t, mustAdmin(t, pitr, "second-pass", "ledger"))); diff != "" {
			t.Errorf("rows of the restored instance (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]int{3, 4, 5, 20}, rows(t, lc)); diff != "" {
			t.Errorf("rows of the source instance (-want +got):\n%s", diff)
		}
		exec(t, mustAdmin(t, pitr, "second-pass", "ledger"), "INSERT INTO t VALUES (6)") // a writable instance of its own

		t.Run("DestroyWhileUsed", func(t *testing.T) {
			registerApp(t, "ledger-app", "danadb_pitr")
			refused(t, "used by application ledger-app", "db", "destroy", "danadb_pitr")
			deleteApp(t, "ledger-app", true)
			out := mustCLI(t, "db", "destroy", "danadb_pitr")
			if !strings.Contains(out, "Database deleted: danadb_pitr") {
				t.Errorf("db destroy output:\n%s", out)
			}
			if diff := cmp.Diff([]string{"danadb:available"}, list(t)); diff != "" {
				t.Errorf("db list after destroy (-want +got):\n%s", diff)
			}
			if conn, err := admin(t, pitr, "second-pass", "postgres"); err == nil {
				conn.Close(ctx)
				t.Error("the destroyed instance still accepts connections")
			}
			refused(t, "database danadb_pitr not found", "db", "status", "danadb_pitr")
		})
	})

	t.Run("Supervision", func(t *testing.T) {
		var pgdata string
		if err := mustAdmin(t, db, "second-pass", "postgres").QueryRow(ctx, "SHOW data_directory").Scan(&pgdata); err != nil {
			t.Fatal(err)
		}
		pid := postmasterPID(t, pgdata)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the killed instance to serve again", 90*time.Second, func() bool {
			conn, err := admin(t, db, "second-pass", "postgres")
			if err != nil {
				return false
			}
			conn.Close(ctx)
			return postmasterPID(t, pgdata) != pid
		})
		waitFor(t, "status available", 30*time.Second, func() bool { return status(t, "danadb").Status == "available" })
		if !strings.Contains(h.out.String(), "database instance was down: restarted it") {
			t.Error("the restart is not logged")
		}
	})

	t.Run("Link", func(t *testing.T) {
		own := ownServer(t, "dbosadmin", "own-pass-1")
		port := strconv.Itoa(own.Port())
		refused(t, "cannot log in to localhost:"+port+" as dbosadmin", "db", "link", "owndb", "-H", "localhost", "-p", port, "-W", "wrong-pass")
		refused(t, "cannot reach a PostgreSQL server at localhost:1", "db", "link", "owndb", "-H", "localhost", "-p", "1", "-W", "own-pass-1")
		refused(t, "a server Hangar runs itself", "db", "link", "owndb", "-H", "localhost", "-p", strconv.Itoa(db.Port), "-W", "second-pass")
		out := mustCLI(t, "db", "link", "owndb", "-H", "localhost", "-p", port, "-W", "own-pass-1")
		if !strings.Contains(out, "Database successfully linked!") {
			t.Errorf("db link output:\n%s", out)
		}
		linked := status(t, "owndb")
		want := apiclient.UserDBInstance{
			PostgresInstanceName: "owndb", Status: "available", HostName: "localhost", Port: own.Port(),
			DatabaseUsername: "dbosadmin", DBOSAdminName: "dbosadmin", IsLinked: true,
		}
		if diff := cmp.Diff(want, linked); diff != "" {
			t.Errorf("db status --json of the linked server (-want +got):\n%s", diff)
		}
		refused(t, "You cannot reset the password of a linked database", "db", "reset-password", "owndb", "-W", "new-pass-1")
		if err := c.ResetDBPassword(ctx, "dana", "owndb", "new-pass-1"); err == nil || !strings.Contains(err.Error(), "linked server") {
			t.Errorf("API reset-password of a linked server: %v, want a refusal", err)
		}
		refused(t, "unlink it", "db", "destroy", "owndb")
		refused(t, "is not a linked server", "db", "unlink", "danadb")

		// An app registered on it gets its databases there.
		registerApp(t, "own-app", "owndb")
		oc, err := pgx.Connect(ctx, own.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer oc.Close(ctx)
		var dbs []string
		r, err := oc.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE 'own_app%' ORDER BY 1")
		if err == nil {
			dbs, err = pgx.CollectRows(r, pgx.RowTo[string])
		}
		if diff := cmp.Diff([]string{"own_app", "own_app_dbos_sys"}, dbs); diff != "" || err != nil {
			t.Errorf("databases on the linked server (%v) (-want +got):\n%s", err, diff)
		}
		refused(t, "used by application own-app", "db", "unlink", "owndb")
		deleteApp(t, "own-app", false)
		out = mustCLI(t, "db", "unlink", "owndb")
		if !strings.Contains(out, "Database unlinked: owndb") {
			t.Errorf("db unlink output:\n%s", out)
		}
		refused(t, "database owndb not found", "db", "status", "owndb")
		var n int
		if err := oc.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'own_app'").Scan(&n); err != nil || n != 1 {
			t.Errorf("the app database on the unlinked server: %d, %v; want it left alone", n, err)
		}
	})
}

// ownServer starts a PostgreSQL server of the user's own, outside Hangar's
// data dir, whose superuser is user with password, stopped when the test
// ends.
func ownServer(t *testing.T, user, password string) *pgcluster.Cluster {
	t.Helper()
	dir, err := os.MkdirTemp("", "hangar-e2e-own-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c, err := pgcluster.New(pgcluster.Config{
		DataDir: filepath.Join(dir, "pg"), Port: port, Superuser: user, Password: password,
		Settings: map[string]string{"fsync": "off"},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
		os.RemoveAll(dir)
	})
	if err := c.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return c
}

// postmasterPID returns the host PID of the postmaster of the cluster in
// pgdata, 0 when none runs. A sandboxed postmaster is PID 1 of its own PID
// namespace: its host PID is the process whose NSpid ends in 1 and whose
// command line names pgdata.
func postmasterPID(t *testing.T, pgdata string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pgdata, "postmaster.pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil || pid != 1 {
		return pid
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		status, _ := os.ReadFile(filepath.Join(p, "status"))
		if !strings.Contains(string(cmdline), "\x00-D\x00"+pgdata+"\x00") {
			continue
		}
		for _, line := range strings.Split(string(status), "\n") {
			if f := strings.Fields(line); len(f) > 2 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
				n, _ := strconv.Atoi(filepath.Base(p))
				return n
			}
		}
	}
	return 0
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		<-tick.C
	}
}
