package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestBenchConsole is bench/console/run.sh: it times every page of the
// console for an org with 50 apps, one of them deployed with 10,000
// workflows in its system database, and 14 days of metrics history for
// each app and one executor of each, seeded into the databases directly.
// It prints p50 and p99 per page, measured by a client on loopback (TLS
// and all), and asserts nothing about them. It runs only with
// HANGAR_BENCH_CONSOLE=1.
func TestBenchConsole(t *testing.T) {
	if os.Getenv("HANGAR_BENCH_CONSOLE") != "1" {
		t.Skip("a benchmark: run bench/console/run.sh")
	}
	const (
		apps      = 50
		workflows = 10000
		requests  = 100
	)
	h := startHangar(t, "--org-max-apps", "-1", "--org-max-executors", "-1") // 50 apps, above the default limits
	refresh := h.AddUser(t, "bench")
	c := h.Client(t, refresh)
	ctx := context.Background()
	if err := c.ProvisionDB(ctx, "bench", apiclient.ProvisionDBRequest{Name: "benchdb", AdminName: "dbos_admin", AdminPassword: "s3cret-pass"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "benchdb available", 2*time.Minute, func() bool {
		d, err := c.DB(ctx, "bench", "benchdb")
		return err == nil && d.Status == "available"
	})
	dir := fixture(t, "greeter", nil)
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	if out, code := h.ours(t, dir, "app", "deploy"); code != 0 {
		t.Fatalf("deploy: %d\n%s", code, out)
	}
	for i := 1; i < apps; i++ {
		if _, err := c.RegisterApp(ctx, "bench", apiclient.RegisterAppRequest{Name: fmt.Sprintf("app%02d", i), Database: "benchdb", Language: "node"}); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := c.AppVersions(ctx, "bench", "greeter")
	if err != nil || len(vs) == 0 {
		t.Fatalf("versions: %v, %v", vs, err)
	}

	start := time.Now()
	meta := metadataConn(t, h)
	creds := appDBCreds(t, h, meta, "bench", "greeter")
	if _, err := meta.Exec(ctx, `
		INSERT INTO app_metrics (app_id, minute, req_2xx, req_3xx, req_4xx, req_5xx, p50_ms, p99_ms, executors, restarts, ooms,
			wf_started, wf_completed, wf_failed, queue_depth)
		SELECT a.id, m, 50 + (random() * 20)::int, 1, (random() * 3)::int, 0, 5 + random() * 5, 40 + random() * 40, 1, 0, 0,
			(random() * 10)::int, (random() * 10)::int, 0, (random() * 3)::int
		FROM apps a, generate_series(date_trunc('minute', now()) - interval '14 days', now(), interval '1 minute') AS m
		WHERE a.org = 'bench'
		ON CONFLICT DO NOTHING`); err != nil {
		t.Fatalf("seed app history: %v", err)
	}
	if _, err := meta.Exec(ctx, `
		INSERT INTO app_metrics (app_id, minute, executor, mem_bytes, mem_limit_bytes, cpu_pct)
		SELECT a.id, m, 'ex-' || a.name, (60 + random() * 20) * 1048576, 536870912, random() * 30
		FROM apps a, generate_series(date_trunc('minute', now()) - interval '14 days', now(), interval '1 minute') AS m
		WHERE a.org = 'bench'
		ON CONFLICT DO NOTHING`); err != nil {
		t.Fatalf("seed executor history: %v", err)
	}
	sys, err := pgx.Connect(ctx, fmt.Sprintf("postgres://%s:%s@127.0.0.1:%d/%s_dbos_sys?sslmode=disable", creds.role, creds.password, creds.port, creds.db))
	if err != nil {
		t.Fatal(err)
	}
	defer sys.Close(ctx)
	if _, err := sys.Exec(ctx, `
		INSERT INTO dbos.workflow_status (workflow_uuid, status, name, created_at, updated_at, application_version, executor_id)
		SELECT 'seeded-' || i, (ARRAY['SUCCESS','ERROR','PENDING','CANCELLED'])[1 + i % 4], 'greetWorkflow',
			(extract(epoch from now()) * 1000)::bigint - i * 60000, (extract(epoch from now()) * 1000)::bigint - i * 60000 + 50, $1, 'local'
		FROM generate_series(1, $2::int) AS i`, vs[0].Version, workflows); err != nil {
		t.Fatalf("seed workflows: %v", err)
	}
	var rows int
	meta.QueryRow(ctx, `SELECT count(*) FROM app_metrics`).Scan(&rows)
	t.Logf("seeded %d history rows and %d workflows in %s", rows, workflows, time.Since(start).Round(time.Second))

	b := newConsoleBrowser(t, h)
	b.signIn(t, refresh)
	pages := []string{
		"/console/bench/apps", "/console/bench/apps/greeter", "/console/bench/apps/greeter/logs",
		"/console/bench/apps/greeter/workflows", "/console/bench/apps/greeter/workflows?status=ERROR&name=greetWorkflow",
		"/console/bench/apps/greeter/workflows/seeded-5000", "/console/bench/apps/greeter/queues",
		"/console/bench/apps/greeter/dashboard", "/console/bench/apps/greeter/metrics?range=hour",
		"/console/bench/apps/greeter/metrics?range=day", "/console/bench/apps/greeter/metrics?range=week",
		"/console/bench/dashboard", "/console/bench/databases", "/console/bench/members",
	}
	fmt.Printf("%-72s %8s %8s\n", "page ("+fmt.Sprint(requests)+" requests each)", "p50", "p99")
	for _, p := range pages {
		var d []time.Duration
		for range requests {
			t0 := time.Now()
			status, body := b.send(t, http.MethodGet, p, nil)
			d = append(d, time.Since(t0))
			if status != http.StatusOK {
				t.Fatalf("%s: %d\n%s", p, status, body)
			}
		}
		slices.Sort(d)
		fmt.Printf("%-72s %8s %8s\n", p, d[len(d)/2].Round(100*time.Microsecond), d[len(d)*99/100].Round(100*time.Microsecond))
	}
}
