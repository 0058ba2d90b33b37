package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// executorRoutes adds to the greeter fixture the routes the executor tests
// drive: /whoami names the executor, /hog allocates memory past any limit,
// /slow/:tag starts a workflow whose second step takes 10 s.
const executorRoutes = `
app.get("/whoami", (_req, res) => {
  res.json({ executor: process.env.DBOS__VMID, version: process.env.DBOS__APPVERSION });
});

const hogged = [];
app.get("/hog", (_req, res) => {
  for (let i = 0; i < 64; i++) {
    hogged.push(Buffer.alloc(32 << 20, 1)); // touched: resident, charged to the cgroup
  }
  res.send("allocated " + hogged.length * 32 + " MiB");
});

async function slowStep(tag, step) {
  const executor = process.env.DBOS__VMID;
  if (step === 2) {
    console.log("slow " + tag + ": step 2 started on " + executor);
    await new Promise((resolve) => setTimeout(resolve, 10000));
  }
  await pool.query("INSERT INTO slow_steps (tag, step, executor) VALUES ($1, $2, $3)", [tag, step, executor]);
  return "step" + step + " on " + executor;
}
async function slowWorkflowFn(tag) {
  const one = await DBOS.runStep(() => slowStep(tag, 1), { name: "slowStep1" });
  const two = await DBOS.runStep(() => slowStep(tag, 2), { name: "slowStep2" });
  return one + "; " + two;
}
const slowWorkflow = DBOS.registerWorkflow(slowWorkflowFn, { name: "slowWorkflow" });
app.get("/slow/:tag", async (req, res, next) => {
  try {
    const handle = await DBOS.startWorkflow(slowWorkflow, { workflowID: "slow-" + req.params.tag })(req.params.tag);
    res.json({ workflowID: handle.workflowID, executor: process.env.DBOS__VMID });
  } catch (err) {
    next(err);
  }
});

// /probe runs the checks of the query's JSON array from inside the
// executor: {name, kind: read|list|write|dial|pgdb, target, port}; a dial to
// "GATEWAY" goes to the executor's gateway (its database's host), pgdb
// connects with the app's own credentials to database target.
const probeFS = await import("node:fs");
const probeNet = await import("node:net");
async function probeOne(c) {
  const own = new URL(process.env.DBOS_DATABASE_URL);
  switch (c.kind) {
    case "read": return probeFS.readFileSync(c.target);
    case "list": return probeFS.readdirSync(c.target);
    case "write": return probeFS.writeFileSync(c.target, "x");
    case "dial":
      return await new Promise((ok, fail) => {
        const sock = probeNet.connect({ host: c.target === "GATEWAY" ? own.hostname : c.target, port: c.port, timeout: 1000 });
        sock.on("connect", () => { sock.destroy(); ok(); });
        sock.on("timeout", () => { sock.destroy(); fail(new Error("timeout")); });
        sock.on("error", fail);
      });
    case "pgdb": {
      own.pathname = "/" + c.target;
      const client = new pg.Client({ connectionString: own.toString(), connectionTimeoutMillis: 3000 });
      try {
        await client.connect();
        await client.query("SELECT 1");
      } finally {
        await client.end().catch(() => {});
      }
      return;
    }
  }
  throw new Error("unknown kind " + c.kind);
}
app.get("/probe", async (req, res) => {
  const out = {};
  for (const c of JSON.parse(req.query.checks)) {
    try {
      const got = await probeOne(c);
      out[c.name] = Array.isArray(got) ? "ok: " + got.sort().join(",") : "ok";
    } catch (err) {
      out[c.name] = "denied: " + err.message;
    }
  }
  const status = probeFS.readFileSync("/proc/self/status", "utf8");
  out.uid = String(process.getuid());
  out.capEff = (status.match(/CapEff:\s*(\w+)/) || [])[1];
  out.procs = String(probeFS.readdirSync("/proc").filter((d) => /^\d+$/.test(d)).length);
  out.cwd = process.cwd();
  res.json(out);
});

DBOS.setConfig(`

// TestExecutors drives the supervisor through a real `hangar serve` with
// the sandbox driver: a killed executor is replaced, an executor that runs
// out of memory is reported with its limit and replaced, a workflow killed
// mid-step finishes on the replacement without running its completed step
// again, and min executors give balanced executors. Its Hangar serves
// metrics, which it checks after the first deploy.
func TestExecutors(t *testing.T) {
	t.Parallel()
	metricsAddr := "127.0.0.1:" + freePort(t)
	h := startHangar(t, "--metrics-listen", metricsAddr)
	refresh := h.AddUser(t, "exec")
	hc := h.HTTPClient(t)
	c := h.Client(t, refresh)
	ctx := context.Background()
	base := "https://exec-greeter." + h.Domain

	dir := fixture(t, "greeter", map[string]func(string) string{
		"app.mjs": func(s string) string { return strings.Replace(s, "\nDBOS.setConfig(", executorRoutes, 1) },
		"migrate.mjs": func(s string) string {
			return strings.Replace(s, `console.log("migrate: table greetings is ready");`,
				`await client.query("CREATE TABLE IF NOT EXISTS slow_steps (tag text NOT NULL, step int NOT NULL, executor text NOT NULL, at timestamptz DEFAULT now())");
  console.log("migrate: tables greetings and slow_steps are ready");`, 1)
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
	mustCLI(t, "db", "provision", "execdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	mustCLI(t, "app", "deploy")

	whoami := func(t *testing.T) (string, error) {
		t.Helper()
		resp, err := hc.Get(base + "/whoami")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET /whoami: %s", resp.Status)
		}
		var w struct{ Executor string }
		if err := json.NewDecoder(resp.Body).Decode(&w); err != nil {
			return "", err
		}
		return w.Executor, nil
	}
	// replaced waits until an executor other than dead serves the app and
	// the app reads AVAILABLE, and returns the new executor and how long
	// that took.
	replaced := func(t *testing.T, dead string, since time.Time) (string, time.Duration) {
		t.Helper()
		deadline := since.Add(60 * time.Second)
		for time.Now().Before(deadline) {
			if ex, err := whoami(t); err == nil && ex != dead {
				if a, err := c.App(ctx, "exec", "greeter"); err == nil && a.Status == "AVAILABLE" {
					return ex, time.Since(since)
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatalf("no executor replaced %s within 60s", dead)
		return "", 0
	}
	serving := func(t *testing.T) string {
		t.Helper()
		ex, err := whoami(t)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}

	t.Run("Metrics", func(t *testing.T) {
		// Traffic to count: an app request and an API call.
		serving(t)
		if _, err := c.App(ctx, "exec", "greeter"); err != nil {
			t.Fatal(err)
		}
		mfs := scrapeMetrics(t, "http://"+metricsAddr+"/metrics")
		app := []string{"org", "exec", "app", "greeter"}
		limits := metricValues(mfs, "hangar_executor_memory_limit_bytes", app...)
		if len(limits) == 0 {
			t.Errorf("no hangar_executor_memory_limit_bytes for exec/greeter's executors")
		}
		for ex, v := range limits {
			if v != 512<<20 {
				t.Errorf("executor %s: memory limit %v bytes, want 512 MiB", ex, v)
			}
		}
		cpu := metricValues(mfs, "hangar_executor_cpu_seconds_total", app...)
		for ex := range limits {
			if cpu[ex] <= 0 {
				t.Errorf("executor %s: %v CPU seconds, want > 0", ex, cpu[ex])
			}
		}
		for _, want := range []struct {
			name   string
			labels []string
		}{
			{"hangar_api_requests_total", []string{"route", "GET /v1alpha1/{org}/applications/{app}", "code", "200"}},
			{"hangar_router_requests_total", append([]string{"code", "2xx"}, app...)},
			{"hangar_deploys_total", []string{"outcome", "success"}},
			{"hangar_app_status", append([]string{"status", "AVAILABLE"}, app...)},
		} {
			total := 0.0
			for _, v := range metricValues(mfs, want.name, want.labels...) {
				total += v
			}
			if total < 1 {
				t.Errorf("%s%q = %v, want ≥ 1", want.name, want.labels, total)
			}
		}
	})

	t.Run("KillReplaced", func(t *testing.T) {
		dead := serving(t)
		killNode(t, h, dead)
		start := time.Now()
		next, took := replaced(t, dead, start)
		t.Logf("executor %s killed; %s serves %s later", dead, next, took.Round(time.Millisecond))
		if took > 30*time.Second {
			t.Errorf("replacement took %s, want under 30s", took)
		}
		waitAppLog(t, c, "executor "+dead+" exited with code 137 (signal killed); no executor serves the app: starting a replacement in")
	})

	t.Run("OOMReported", func(t *testing.T) {
		dead := serving(t)
		start := time.Now()
		if resp, err := hc.Get(base + "/hog"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatalf("GET /hog answered 200: the memory limit was not enforced")
			}
		}
		waitAppLog(t, c, "executor "+dead+" was killed: out of memory (limit 512 MiB)")
		var evs []apiclient.ExecutorEvent
		if err := c.Do(context.Background(), http.MethodGet, "/hangar/v1/exec/applications/greeter/events", nil, &evs); err != nil {
			t.Fatal(err)
		}
		oom := false
		for _, ev := range evs {
			oom = oom || ev.Kind == "OOM" && ev.Executor == dead && ev.MemoryLimitMiB == 512
		}
		if !oom {
			t.Errorf("app events lack the OOM kill of %s with its 512 MiB limit: %+v", dead, evs)
		}
		next, took := replaced(t, dead, start)
		t.Logf("executor %s killed for memory; %s serves %s later", dead, next, took.Round(time.Millisecond))
		checkOOMShown(t, h, dir, c, dead, next)
	})

	t.Run("KillMidWorkflow", func(t *testing.T) {
		port := instancePort(t, c, "exec", "execdb")
		sys := connect(t, "postgres://dbos_admin:s3cret-pass@127.0.0.1:"+port+"/greeter_dbos_sys?sslmode=disable")
		appDB := connect(t, "postgres://dbos_admin:s3cret-pass@127.0.0.1:"+port+"/greeter?sslmode=disable")

		var started struct{ WorkflowID, Executor string }
		if status, body := get(t, hc, base+"/slow/k1"); status != http.StatusOK || json.Unmarshal([]byte(body), &started) != nil {
			t.Fatalf("GET /slow/k1 = %d %s", status, body)
		}
		dead := started.Executor
		waitAppLog(t, c, "slow k1: step 2 started on "+dead)
		killNode(t, h, dead)
		killed := time.Now()

		var status, executor string
		var attempts int
		deadline := time.Now().Add(3 * time.Minute)
		for {
			err := sys.QueryRow(ctx, "SELECT status, executor_id, recovery_attempts FROM dbos.workflow_status WHERE workflow_uuid = $1",
				started.WorkflowID).Scan(&status, &executor, &attempts)
			if err != nil {
				t.Fatal(err)
			}
			if status == "SUCCESS" || status == "ERROR" || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Logf("workflow %s: %s on %s, %d recovery attempts, %s after the kill", started.WorkflowID, status, executor, attempts, time.Since(killed).Round(time.Millisecond))
		if status != "SUCCESS" || executor == dead {
			t.Fatalf("workflow is %s on %s, want SUCCESS on another executor than %s", status, executor, dead)
		}

		// The system database's step outputs: step 1 recorded once, by the
		// killed executor; step 2 by the replacement.
		rows, err := sys.Query(ctx, "SELECT function_name, output FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id", started.WorkflowID)
		if err != nil {
			t.Fatal(err)
		}
		var steps []string
		for rows.Next() {
			var name string
			var output *string
			if err := rows.Scan(&name, &output); err != nil {
				t.Fatal(err)
			}
			out := ""
			if output != nil {
				out = *output
			}
			steps = append(steps, name+" → "+out)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if len(steps) != 2 || !strings.HasPrefix(steps[0], "slowStep1 → ") || !strings.Contains(steps[0], "step1 on "+dead) ||
			!strings.HasPrefix(steps[1], "slowStep2 → ") || !strings.Contains(steps[1], "step2 on "+executor) {
			t.Errorf("operation_outputs = %q, want slowStep1 by %s, then slowStep2 by %s", steps, dead, executor)
		}
		// What the steps did: step 1 ran once, step 2 completed once (it
		// was killed before its insert).
		var ran []string
		rows, err = appDB.Query(ctx, "SELECT step || ' on ' || executor FROM slow_steps WHERE tag = 'k1' ORDER BY at")
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			ran = append(ran, s)
		}
		if want := []string{"1 on " + dead, "2 on " + executor}; strings.Join(ran, ",") != strings.Join(want, ",") {
			t.Errorf("steps ran %q, want %q", ran, want)
		}
		waitAppLog(t, c, "re-enqueued 1 PENDING workflows of executor "+dead)
	})

	t.Run("MinExecutorsBalanced", func(t *testing.T) {
		mustCLI(t, "app", "update", "--min-executors", "2")
		mustCLI(t, "app", "deploy")
		seen := map[string]int{}
		for range 10 {
			seen[serving(t)]++
		}
		if len(seen) != 2 {
			t.Fatalf("10 requests reached executors %v, want 2 executors", seen)
		}
		t.Logf("10 requests over 2 executors: %v", seen)

		// One of them dies: once the supervisor saw it, requests keep
		// succeeding on the other while a replacement starts. (Requests in
		// the moment between the death and the supervisor's reaction go to
		// the other executor when the dead one refuses the connection; one
		// the dying executor had accepted fails.)
		var dead string
		for ex := range seen {
			dead = ex
			break
		}
		killNode(t, h, dead)
		waitAppLog(t, c, "executor "+dead+" exited with code 137 (signal killed); 1 executors still serve; starting a replacement in")
		failed := 0
		for range 20 {
			if _, err := whoami(t); err != nil {
				failed++
				t.Logf("request after the kill: %v", err)
			}
		}
		if failed > 0 {
			t.Errorf("%d of 20 requests failed after one of 2 executors died", failed)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			seen = map[string]int{}
			for range 10 {
				if ex, err := whoami(t); err == nil {
					seen[ex]++
				}
			}
			if _, ok := seen[dead]; len(seen) == 2 && !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("60s after a kill, requests reach %v, want 2 executors without %s", seen, dead)
			}
			time.Sleep(200 * time.Millisecond)
		}

		// A second app from the same folder, so also on port 3000, on 3
		// executors: each app's requests are spread over all of its own
		// executors and never reach the other app's.
		t.Run("TwoApps", func(t *testing.T) {
			// Its first deploy starts three executors on a fresh system
			// database, which the DBOS SDK migrates at launch.
			mustCLI(t, "app", "register", "greeter2", "-d", "execdb")
			mustCLI(t, "app", "update", "greeter2", "--min-executors", "3")
			mustCLI(t, "app", "deploy", "greeter2")
			apps := []struct {
				url       string
				executors int
			}{{base, 2}, {"https://exec-greeter2." + h.Domain, 3}}

			// Who runs which app, as the host sees it: the supervisor may
			// still be retiring an executor of greeter's previous version.
			var owner map[string]string
			deadline := time.Now().Add(60 * time.Second)
			for {
				owner = executorApps(t, h)
				count := map[string]int{}
				for _, app := range owner {
					count[app]++
				}
				if count[apps[0].url] == apps[0].executors && count[apps[1].url] == apps[1].executors && len(count) == 2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("executors run %v (executor → app), want %d of %s and %d of %s",
						owner, apps[0].executors, apps[0].url, apps[1].executors, apps[1].url)
				}
				time.Sleep(200 * time.Millisecond)
			}

			for _, app := range apps {
				served := map[string]int{}
				for range 40 {
					status, body := get(t, hc, app.url+"/whoami")
					var w struct{ Executor string }
					if status != http.StatusOK || json.Unmarshal([]byte(body), &w) != nil {
						t.Fatalf("GET %s/whoami = %d %s", app.url, status, body)
					}
					if owner[w.Executor] != app.url {
						t.Errorf("a request to %s was answered by executor %q, which runs %q", app.url, w.Executor, owner[w.Executor])
					}
					served[w.Executor]++
				}
				for ex, url := range owner {
					if url == app.url && served[ex] == 0 {
						t.Errorf("executor %s of %s got none of 40 requests: %v", ex, app.url, served)
					}
				}
				t.Logf("40 requests to %s over its executors: %v", app.url, served)
			}

			t.Run("IsolatedFromInside", func(t *testing.T) { isolatedFromInside(t, h, hc, c, base) })
		})
	})
}

// executorApps maps each running executor of h to the app it serves, from
// the environment of its app process (node): DBOS__VMID names the
// executor, DBOS_APP_HOSTNAME the app's URL (without the trailing slash).
func executorApps(t *testing.T, h *Hangar) map[string]string {
	t.Helper()
	apps := map[string]string{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cg, err := os.ReadFile(filepath.Join(p, "cgroup"))
		if err != nil || !strings.Contains(string(cg), "/"+h.Prefix+"/") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		environ, err := os.ReadFile(filepath.Join(p, "environ"))
		if !strings.HasPrefix(string(cmdline), "node\x00") || err != nil {
			continue
		}
		env := map[string]string{}
		for _, kv := range strings.Split(string(environ), "\x00") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = v
			}
		}
		if id := env["DBOS__VMID"]; id != "" {
			apps[id] = strings.TrimSuffix(env["DBOS_APP_HOSTNAME"], "/")
		}
	}
	return apps
}

// killNode kills with SIGKILL the app process (node) of executor id, found
// by the executor's cgroup, which the sandbox driver names after it, and
// waits until it is dead.
func killNode(t *testing.T, h *Hangar, id string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cg, err := os.ReadFile(filepath.Join(p, "cgroup"))
		if err != nil || !strings.Contains(string(cg), "/"+h.Prefix+"/"+id+"/") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		if !strings.HasPrefix(string(cmdline), "node\x00") {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(p))
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", pid, err)
		}
		// kill returns before the process is gone; until then it may
		// still accept connections.
		deadline := time.Now().Add(10 * time.Second)
		for {
			stat, err := os.ReadFile(filepath.Join(p, "stat"))
			if err != nil || strings.Contains(string(stat), ") Z ") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node (pid %d) still runs 10s after SIGKILL", pid)
			}
			time.Sleep(5 * time.Millisecond)
		}
		t.Logf("killed node (pid %d) of executor %s", pid, id)
		return
	}
	t.Fatalf("no node process of executor %s", id)
}

// waitAppLog waits until the logs of exec's greeter contain want.
func waitAppLog(t *testing.T, c *apiclient.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	var last string
	for time.Now().Before(deadline) {
		var page apiclient.LogsResponse
		q := url.Values{"format": {"json"}, "last": {"0"}, "limit": {"10000"}}
		err := c.Do(context.Background(), http.MethodGet, "/v1alpha1/exec/logs/applications/greeter?"+q.Encode(), nil, &page)
		if err == nil {
			last = page.Body
			if strings.Contains(page.Body, want) {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("app logs never showed %q; last lines:\n%s", want, lastLines(last, 30))
}

// instancePort returns the port of org's database instance name.
func instancePort(t *testing.T, c *apiclient.Client, org, name string) string {
	t.Helper()
	var d apiclient.UserDBInstance
	if err := c.Do(context.Background(), http.MethodGet, "/v1alpha1/"+org+"/databases/userdb/info/"+name, nil, &d); err != nil {
		t.Fatal(err)
	}
	return strconv.Itoa(d.Port)
}

// connect opens a connection closed when the test ends.
func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// isolatedFromInside probes from inside an executor of greeter (app A),
// with greeter2 (app B) on the same database instance: A reads and writes
// its own folder and /tmp and its own database, and nothing else — not B's
// folder or database, not Hangar's data dir or metadata database, not the
// rest of the filesystem or the host's processes; it runs as a non-root uid
// without capabilities.
func isolatedFromInside(t *testing.T, h *Hangar, hc *http.Client, c *apiclient.Client, base string) {
	a, err := c.App(context.Background(), "exec", "greeter")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.App(context.Background(), "exec", "greeter2")
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Port int `json:"port"`
	}
	raw, err := os.ReadFile(filepath.Join(h.DataDir, "postgres.json"))
	if err != nil || json.Unmarshal(raw, &md) != nil {
		t.Fatalf("read the metadata cluster's port: %v", err)
	}
	type check struct {
		Name   string `json:"name"`
		Kind   string `json:"kind"`
		Target string `json:"target"`
		Port   int    `json:"port,omitempty"`
	}
	checks := []check{
		{"read-own", "read", "dbos-config.yaml", 0},
		{"write-own", "write", "probe-file", 0},
		{"write-tmp", "write", "/tmp/probe-file", 0},
		{"own-db", "pgdb", a.ApplicationDatabaseName, 0},
		{"list-other-app", "list", filepath.Join(h.DataDir, "apps", b.ID), 0},
		{"list-data-dir", "list", h.DataDir, 0},
		{"list-apps", "list", filepath.Join(h.DataDir, "apps"), 0},
		{"read-ca-key", "read", filepath.Join(h.DataDir, "ca-key.pem"), 0},
		{"read-secrets-key", "read", filepath.Join(h.DataDir, "secrets.key"), 0},
		{"read-metadata-password", "read", filepath.Join(h.DataDir, "postgres.json"), 0},
		{"write-root", "write", "/probe-file", 0},
		{"write-etc", "write", "/etc/probe-file", 0},
		{"write-data-dir", "write", filepath.Join(h.DataDir, "probe-file"), 0},
		{"other-app-db", "pgdb", b.ApplicationDatabaseName, 0},
		{"other-app-sysdb", "pgdb", b.ApplicationDatabaseName + "_dbos_sys", 0},
		{"metadata-db-gateway", "dial", "GATEWAY", md.Port},
		{"metadata-db-loopback", "dial", "127.0.0.1", md.Port},
	}
	q, _ := json.Marshal(checks)
	status, body := get(t, hc, base+"/probe?checks="+url.QueryEscape(string(q)))
	var got map[string]string
	if status != http.StatusOK || json.Unmarshal([]byte(body), &got) != nil {
		t.Fatalf("GET /probe = %d %s", status, body)
	}
	t.Logf("probes from inside executor (cwd %s): %v", got["cwd"], got)
	for _, ck := range checks {
		want := "denied"
		switch {
		case strings.HasSuffix(ck.Name, "-own") || ck.Name == "write-tmp" || ck.Name == "own-db":
			want = "ok"
		case ck.Name == "list-data-dir" && got[ck.Name] == "ok: apps",
			ck.Name == "list-apps" && got[ck.Name] == "ok: "+a.ID:
			// The data dir is hidden, its path kept only down to the
			// app's own folder, mounted where Hangar has it.
			continue
		}
		if !strings.HasPrefix(got[ck.Name], want) {
			t.Errorf("%s (%s %s): got %q, want %s", ck.Name, ck.Kind, ck.Target, got[ck.Name], want)
		}
	}
	if got["uid"] == "0" || got["uid"] == "" {
		t.Errorf("executor runs as uid %q, want a non-root uid", got["uid"])
	}
	if got["capEff"] != "0000000000000000" {
		t.Errorf("executor's effective capabilities %q, want none", got["capEff"])
	}
	// The init, node and the shell of the start command: none of the host's.
	if n, _ := strconv.Atoi(got["procs"]); n == 0 || n > 5 {
		t.Errorf("executor sees %s processes, want only its own (1 to 5)", got["procs"])
	}
}

// scrapeMetrics reads Hangar's metrics at url.
func scrapeMetrics(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mfs
}

// metricValues returns the values of the counter or gauge name among mfs
// whose labels include the name/value pairs labels, keyed by their
// executor label (empty when they have none).
func metricValues(mfs map[string]*dto.MetricFamily, name string, labels ...string) map[string]float64 {
	out := map[string]float64{}
	mf := mfs[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			match = match && have[labels[i]] == labels[i+1]
		}
		if !match {
			continue
		}
		v := m.GetGauge().GetValue()
		if m.Counter != nil {
			v = m.GetCounter().GetValue()
		}
		out[have["executor"]] += v
	}
	return out
}
