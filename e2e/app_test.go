package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestAppManagement covers the Application Management page through the
// official CLI: versions, redeploys of earlier versions and the schema rule,
// update, busy apps, failed deploys that keep the previous version serving,
// zero-downtime redeploys under load, change of database instance, delete.
func TestAppManagement(t *testing.T) {
	t.Parallel()
	h := startHangar(t, "--health-timeout", "20s")
	refresh := h.AddUser(t, "bob")
	hc := h.HTTPClient(t)
	c := h.Client(t, refresh)
	ctx := context.Background()
	url := "https://bob-greeter." + h.Domain + "/"

	dir := fixture(t, "greeter", nil)
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
	edit := func(t *testing.T, file, old, new string) {
		t.Helper()
		editFile(t, dir, file, old, new)
	}
	body := func(t *testing.T) string {
		t.Helper()
		_, b := get(t, hc, url)
		return b
	}
	versions := func(t *testing.T) []apiclient.AppVersion {
		t.Helper()
		out := mustCLI(t, "app", "versions", "--json")
		var vs []apiclient.AppVersion
		if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &vs); err != nil {
			t.Fatalf("app versions --json: %v\n%s", err, out)
		}
		return vs
	}

	mustCLI(t, "db", "provision", "bobdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	mustCLI(t, "app", "deploy")
	v1 := versions(t)[0].Version

	t.Run("VersionsNewestFirst", func(t *testing.T) {
		edit(t, "app.mjs", `"greeter v1"`, `"greeter v2"`)
		edit(t, "migrate.mjs", `console.log("migrate: table greetings is ready");`,
			`await client.query("ALTER TABLE greetings ADD COLUMN IF NOT EXISTS note text"); console.log("migrate: added note");`)
		mustCLI(t, "app", "deploy")
		vs := versions(t)
		if len(vs) != 2 || vs[1].Version != v1 || vs[0].CreationTime < vs[1].CreationTime {
			t.Fatalf("versions = %+v, want 2, newest first, v1 last", vs)
		}
		if got := body(t); got != "greeter v2" {
			t.Errorf("serving %q, want greeter v2", got)
		}
	})
	v2 := versions(t)[0].Version

	t.Run("PreviousVersionSchemaRule", func(t *testing.T) {
		out, code := cli(t, "app", "deploy", "--previous-version", v1)
		if code == 0 {
			t.Fatalf("redeploying v1 after a schema change succeeded:\n%s", out)
		}
		if !regexp.MustCompile(`schema [0-9a-f]{16}.*schema [0-9a-f]{16}`).MatchString(out) || !strings.Contains(out, v1) {
			t.Errorf("error does not name the version and both fingerprints:\n%s", out)
		}
		if got := body(t); got != "greeter v2" {
			t.Errorf("after the refused redeploy, serving %q, want greeter v2", got)
		}
		out, code = cli(t, "app", "deploy", "--previous-version", "01NOSUCHVERSION")
		if code == 0 || !strings.Contains(out, "version 01NOSUCHVERSION not found") {
			t.Errorf("unknown version: exit %d\n%s", code, out)
		}
	})

	t.Run("PreviousVersionSameSchema", func(t *testing.T) {
		edit(t, "app.mjs", `"greeter v2"`, `"greeter v3"`)
		mustCLI(t, "app", "deploy")
		if got := body(t); got != "greeter v3" {
			t.Fatalf("serving %q, want greeter v3", got)
		}
		before := len(versions(t))
		mustCLI(t, "app", "deploy", "--previous-version", v2)
		if got := body(t); got != "greeter v2" {
			t.Errorf("after redeploying v2, serving %q", got)
		}
		_, b := get(t, hc, url+"greet/dora")
		var g struct{ Version string }
		json.Unmarshal([]byte(b), &g)
		if g.Version != v2 {
			t.Errorf("executors of the redeploy run DBOS__APPVERSION %q, want the restored version %s", g.Version, v2)
		}
		vs := versions(t)
		if len(vs) != before+1 || vs[0].Version == v2 {
			t.Errorf("the redeploy is not a new version record: %+v", vs)
		}
	})

	t.Run("Update", func(t *testing.T) {
		mustCLI(t, "app", "update", "--executors-memory-mib", "1024", "--min-executors", "1")
		a, err := c.App(ctx, "bob", "greeter")
		if err != nil {
			t.Fatal(err)
		}
		if a.ExecutorsMemoryMib != 1024 {
			t.Errorf("memory = %d, want 1024", a.ExecutorsMemoryMib)
		}
		out, code := cli(t, "app", "update", "--executors-memory-mib", "100")
		if code == 0 || !strings.Contains(out, "512 to 5120") {
			t.Errorf("update to 100 MiB: exit %d, want the allowed range\n%s", code, out)
		}
		if got := body(t); got != "greeter v2" {
			t.Errorf("update redeployed: serving %q", got)
		}
	})

	t.Run("BusyApp", func(t *testing.T) {
		edit(t, "dbos-config.yaml", "runtimeConfig:\n", "runtimeConfig:\n  setup:\n    - sleep 4\n")
		done := make(chan string, 1)
		go func() {
			out, _ := cli(t, "app", "deploy")
			done <- out
		}()
		deadline := time.Now().Add(60 * time.Second)
		for {
			a, err := c.App(ctx, "bob", "greeter")
			if err != nil {
				t.Fatal(err)
			}
			if a.Status == "DEPLOYING" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the deploy never started")
			}
			time.Sleep(100 * time.Millisecond)
		}
		err := c.Do(ctx, http.MethodPatch, "/v1alpha1/bob/applications/greeter", map[string]any{"executors_memory_mib": "2048"}, nil)
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict || !strings.Contains(apiErr.Message, "busy") {
			t.Errorf("update during a deploy = %v, want 409 busy", err)
		}
		if out := <-done; !strings.Contains(out, "Successfully deployed") {
			t.Errorf("the deploy did not finish:\n%s", out)
		}
		edit(t, "dbos-config.yaml", "  setup:\n    - sleep 4\n", "")
	})

	t.Run("FailedDeploysKeepServing", func(t *testing.T) {
		serving := body(t)
		edit(t, "dbos-config.yaml", "- node migrate.mjs", `- node -e "console.log('migration-boom'); process.exit(4)"`)
		out, code := cli(t, "app", "deploy")
		if code == 0 || !strings.Contains(out, "migration-boom") {
			t.Errorf("failing migration: exit %d\n%s", code, out)
		}
		if got := body(t); got != serving {
			t.Errorf("after a failed migration serving %q, want %q", got, serving)
		}
		edit(t, "dbos-config.yaml", `- node -e "console.log('migration-boom'); process.exit(4)"`, "- node migrate.mjs")
		edit(t, "dbos-config.yaml", "- node app.mjs", "- sleep 600")
		out, code = cli(t, "app", "deploy")
		if code == 0 || !strings.Contains(out, "did not become healthy") {
			t.Errorf("never-healthy version: exit %d\n%s", code, out)
		}
		if got := body(t); got != serving {
			t.Errorf("after a never-healthy version serving %q, want %q", got, serving)
		}
		a, _ := c.App(ctx, "bob", "greeter")
		if a.Status != "AVAILABLE" {
			t.Errorf("status after failed deploys = %s, want AVAILABLE", a.Status)
		}
		edit(t, "dbos-config.yaml", "- sleep 600", "- node app.mjs")
	})

	t.Run("ZeroDowntimeUnderLoad", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				deadline := time.Now().Add(10 * time.Minute)
				for n := 0; n < 100000 && time.Now().Before(deadline); n++ {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := hc.Get(url)
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							ok.Add(1)
							continue
						}
						err = errors.New(resp.Status)
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			}()
		}
		edit(t, "app.mjs", `"greeter v3"`, `"greeter v4"`)
		mustCLI(t, "app", "deploy")
		mustCLI(t, "app", "deploy", "--previous-version", v2)
		edit(t, "app.mjs", `"greeter v4"`, `"greeter v5"`)
		mustCLI(t, "app", "deploy")
		close(stop)
		wg.Wait()
		t.Logf("requests during 3 redeploys: %d ok, %d failed", ok.Load(), failed.Load())
		if failed.Load() != 0 || ok.Load() == 0 {
			t.Errorf("%d requests failed during redeploys (first: %v), %d ok", failed.Load(), firstErr.Load(), ok.Load())
		}
		if got := body(t); got != "greeter v5" {
			t.Errorf("serving %q, want greeter v5", got)
		}
	})

	t.Run("Logs", func(t *testing.T) {
		out := mustCLI(t, "app", "logs")
		for _, want := range []string{
			"==> step configuration started", "==> step migration done", "migrate: table greetings is ready",
			"greeter listening on 0.0.0.0:3000",
			"dependencies unchanged (cache", // redeploys with the same lockfile skip npm ci
		} {
			if !strings.Contains(out, want) {
				t.Errorf("app logs lacks %q", want)
			}
		}
		if out := mustCLI(t, "app", "logs", "--last", "3600", "--pagesize", "7"); !strings.Contains(out, "greeter listening") {
			t.Errorf("paged app logs lack the executor's output:\n%s", lastLines(out, 20))
		}
	})

	t.Run("ChangeDatabaseInstance", func(t *testing.T) {
		mustCLI(t, "db", "provision", "bobdb2", "-U", "dbos_admin", "-W", "s3cret-pass")
		mustCLI(t, "app", "change-database-instance", "--database", "bobdb2")
		a, err := c.App(ctx, "bob", "greeter")
		if err != nil {
			t.Fatal(err)
		}
		if a.PostgresInstanceName != "bobdb2" || a.Status != "AVAILABLE" {
			t.Errorf("after change-database-instance: %+v", a)
		}
		if status, b := get(t, hc, url+"greet/erin"); status != http.StatusOK || !strings.Contains(b, `"id":1,`) {
			t.Errorf("greet on the new instance = %d %s, want the first row of a fresh database", status, b)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		info := dbInfo(t, c, "bobdb2")
		admin := "postgres://dbos_admin:s3cret-pass@127.0.0.1:" + info + "/greeter?sslmode=disable"
		mustCLI(t, "app", "delete")
		waitGone(t, c, "greeter")
		if status, _ := get(t, hc, url); status != http.StatusNotFound {
			t.Errorf("deleted app still answers %d", status)
		}
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Fatalf("app database gone after delete without --dropdb: %v", err)
		}
		defer conn.Close(ctx)
		// The same name can be registered again, and --dropdb drops the
		// databases even while a client is connected.
		mustCLI(t, "app", "deploy", "-d", "bobdb2")
		mustCLI(t, "app", "delete", "--dropdb")
		waitGone(t, c, "greeter")
		var n int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&n); err == nil {
			t.Errorf("connection to a dropped database still works")
		}
		if _, err := pgx.Connect(ctx, admin); err == nil {
			t.Errorf("app database still exists after --dropdb")
		}
	})
}

// dbInfo returns the port of a database instance.
func dbInfo(t *testing.T, c *apiclient.Client, name string) string {
	t.Helper()
	var d apiclient.UserDBInstance
	if err := c.Do(context.Background(), http.MethodGet, "/v1alpha1/bob/databases/userdb/info/"+name, nil, &d); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(d.Port)
}

// waitGone waits until the app is no longer listed.
func waitGone(t *testing.T, c *apiclient.Client, name string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		apps, err := c.Apps(context.Background(), "bob")
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, a := range apps {
			found = found || a.Name == name
		}
		if !found {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("app %s still listed 60s after delete", name)
}

// editFile replaces the first old with new in dir/file.
func editFile(t *testing.T, dir, file, old, new string) {
	t.Helper()
	p := filepath.Join(dir, file)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s does not contain %q", file, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
}
