package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
)

// greeting is a row of the greeter fixture's greetings table, as its
// GET /greetings and GET /greet/:name return it.
type greeting struct {
	ID         int    `json:"id"`
	Name       string `json:"name"`
	WorkflowID string `json:"workflowID,omitempty"`
}

// TestDatabases_RestoreAppData restores a deployed app's data to a point in
// time with the official CLI, as a user would: greet, note the time, greet
// and delete more, `db restore` to the noted time into a new instance, then
// `app change-database-instance` onto it. The app then sees exactly the rows
// (and the workflows) of the noted time, a workflow in flight then
// finishes on the restored instance, the app keeps working, and the source
// instance keeps its own later data.
func TestDatabases_RestoreAppData(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "pat")
	c := h.Client(t, refresh)
	hc := h.HTTPClient(t)
	ctx := context.Background()
	url := "https://pat-greeter." + h.Domain + "/"
	// The slow workflow of executorRoutes is in flight at the noted time.
	dir := fixture(t, "greeter", map[string]func(string) string{
		"app.mjs": func(s string) string { return strings.Replace(s, "\nDBOS.setConfig(", executorRoutes, 1) },
		"migrate.mjs": func(s string) string {
			return strings.Replace(s, `console.log("migrate: table greetings is ready");`,
				`await client.query("CREATE TABLE IF NOT EXISTS slow_steps (tag text NOT NULL, step int NOT NULL, executor text NOT NULL, at timestamptz DEFAULT now())");`, 1)
		},
	})
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	mustCLI := func(t *testing.T, args ...string) string {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	greet := func(t *testing.T, name string) greeting {
		t.Helper()
		status, body := get(t, hc, url+"greet/"+name)
		var g greeting
		if status != http.StatusOK || json.Unmarshal([]byte(body), &g) != nil || g.Name != name {
			t.Fatalf("GET greet/%s = %d %s", name, status, body)
		}
		return g
	}
	greetings := func(t *testing.T) []greeting {
		t.Helper()
		status, body := get(t, hc, url+"greetings")
		var gs []greeting
		if status != http.StatusOK || json.Unmarshal([]byte(body), &gs) != nil {
			t.Fatalf("GET greetings = %d %s", status, body)
		}
		return gs
	}
	remove := func(t *testing.T, id int) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodDelete, url+"greetings/"+strconv.Itoa(id), nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE greetings/%d = %d, want 204", id, resp.StatusCode)
		}
	}
	// admin connects to database db of instance inst as its admin.
	admin := func(t *testing.T, inst, db string) *pgx.Conn {
		t.Helper()
		d, err := c.DB(ctx, "pat", inst)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, "postgres://pat_admin:pitr-pass-1@127.0.0.1:"+strconv.Itoa(d.Port)+"/"+db+"?sslmode=disable")
		if err != nil {
			t.Fatalf("connect to %s on %s: %v", db, inst, err)
		}
		t.Cleanup(func() { conn.Close(context.Background()) })
		return conn
	}
	// rowsOf reads the greetings on instance inst directly.
	rowsOf := func(t *testing.T, inst string) []greeting {
		t.Helper()
		r, err := admin(t, inst, "greeter").Query(ctx, "SELECT id, name, '' FROM greetings ORDER BY id")
		if err != nil {
			t.Fatal(err)
		}
		gs, err := pgx.CollectRows(r, pgx.RowToStructByPos[greeting])
		if err != nil {
			t.Fatal(err)
		}
		return gs
	}
	rows := func(gs ...greeting) []greeting {
		out := make([]greeting, len(gs))
		for i, g := range gs {
			out[i] = greeting{ID: g.ID, Name: g.Name}
		}
		return out
	}

	mustCLI(t, "db", "provision", "patdb", "-U", "pat_admin", "-W", "pitr-pass-1")
	mustCLI(t, "app", "register", "-d", "patdb")
	mustCLI(t, "app", "deploy")

	before := []greeting{greet(t, "ann"), greet(t, "ben"), greet(t, "cid")}
	if diff := cmp.Diff(rows(before...), greetings(t)); diff != "" {
		t.Fatalf("greetings before the noted time (-want +got):\n%s", diff)
	}
	if status, body := get(t, hc, url+"slow/inflight"); status != http.StatusOK {
		t.Fatalf("GET slow/inflight = %d %s", status, body)
	}
	srcSys := admin(t, "patdb", "greeter_dbos_sys")
	waitFor(t, "the first step of the slow workflow", time.Minute, func() bool {
		var n int
		err := srcSys.QueryRow(ctx, "SELECT count(*) FROM dbos.operation_outputs WHERE workflow_uuid = 'slow-inflight'").Scan(&n)
		return err == nil && n == 1
	})
	notedAt := time.Now()
	noted := notedAt.UTC().Format(time.RFC3339Nano)
	after := []greeting{greet(t, "dee"), greet(t, "eve")}
	remove(t, before[0].ID)
	remove(t, before[1].ID)
	kept := rows(before[2], after[0], after[1])
	if diff := cmp.Diff(kept, greetings(t)); diff != "" {
		t.Fatalf("greetings after the deletes (-want +got):\n%s", diff)
	}

	out := mustCLI(t, "db", "restore", "patdb", "-t", noted, "-n", "patdb_pitr")
	if !strings.Contains(out, "Database successfully restored!") {
		t.Errorf("db restore output:\n%s", out)
	}
	mustCLI(t, "app", "change-database-instance", "--database", "patdb_pitr")
	a, err := c.App(ctx, "pat", "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if a.PostgresInstanceName != "patdb_pitr" || a.Status != "AVAILABLE" {
		t.Fatalf("after change-database-instance: instance %s, status %s; want patdb_pitr, AVAILABLE", a.PostgresInstanceName, a.Status)
	}

	t.Run("SeesTheNotedTime", func(t *testing.T) {
		if diff := cmp.Diff(rows(before...), greetings(t)); diff != "" {
			t.Errorf("greetings the app sees on the restored instance (-want +got):\n%s", diff)
		}
	})

	t.Run("WorkflowsOfTheNotedTime", func(t *testing.T) {
		// The system database is restored to the same time as the app's.
		var ids, want []string
		for _, g := range append(append([]greeting{}, before...), after...) {
			ids = append(ids, g.WorkflowID)
		}
		for _, g := range before {
			want = append(want, g.WorkflowID+" SUCCESS")
		}
		r, err := admin(t, "patdb_pitr", "greeter_dbos_sys").Query(ctx,
			"SELECT workflow_uuid || ' ' || status FROM dbos.workflow_status WHERE workflow_uuid = ANY($1) ORDER BY created_at", ids)
		if err != nil {
			t.Fatal(err)
		}
		got, err := pgx.CollectRows(r, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("greet workflows in the restored system database (-want +got):\n%s", diff)
		}
	})

	t.Run("InFlightWorkflowFinishes", func(t *testing.T) {
		// On the source, the slow workflow's second step ended after the
		// noted time: at that time it was PENDING, on an executor that the
		// move retired. Hangar recovers it on the restored instance, where
		// an executor of its version finishes it without running its first
		// step again.
		var ended time.Time
		src := admin(t, "patdb", "greeter")
		waitFor(t, "the slow workflow to end on the source", time.Minute, func() bool {
			err := src.QueryRow(ctx, "SELECT at FROM slow_steps WHERE tag = 'inflight' AND step = 2").Scan(&ended)
			return err == nil
		})
		if !ended.After(notedAt) {
			t.Fatalf("the slow workflow ended at %s, before the noted time %s: not in flight then", ended, noted)
		}
		sys := admin(t, "patdb_pitr", "greeter_dbos_sys")
		waitFor(t, "the in-flight workflow to succeed on the restored instance", 2*time.Minute, func() bool {
			var status string
			err := sys.QueryRow(ctx, "SELECT status FROM dbos.workflow_status WHERE workflow_uuid = 'slow-inflight'").Scan(&status)
			return err == nil && status == "SUCCESS"
		})
		r, err := admin(t, "patdb_pitr", "greeter").Query(ctx, "SELECT step FROM slow_steps WHERE tag = 'inflight' ORDER BY at")
		if err != nil {
			t.Fatal(err)
		}
		steps, err := pgx.CollectRows(r, pgx.RowTo[int])
		if diff := cmp.Diff([]int{1, 2}, steps); diff != "" || err != nil {
			t.Errorf("steps the slow workflow ran on the restored instance (%v) (-want +got):\n%s", err, diff)
		}
	})

	t.Run("KeepsWorking", func(t *testing.T) {
		g := greet(t, "fay")
		// Sequences are restored too; PostgreSQL may skip values after a
		// recovery (it logs them ahead), but never reuses one.
		if g.ID <= before[2].ID {
			t.Errorf("new greeting got id %d, want one after %d", g.ID, before[2].ID)
		}
		if diff := cmp.Diff(rows(append(before, g)...), greetings(t)); diff != "" {
			t.Errorf("greetings after a new greet (-want +got):\n%s", diff)
		}
	})

	t.Run("SourceUnchanged", func(t *testing.T) {
		if diff := cmp.Diff(kept, rowsOf(t, "patdb")); diff != "" {
			t.Errorf("greetings on the source instance (-want +got):\n%s", diff)
		}
	})
}
