package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// workflowRoutes adds to the greeter fixture the workflow "gated": three
// steps, the second of which waits until /release/:tag; /enqueue/:tag runs
// it as gated-<tag> on the queue gatedq, one at a time. Each step and the
// end of the workflow function are logged.
const workflowRoutes = `
const released = new Set();
app.get("/release/:tag", (req, res) => {
  released.add(req.params.tag);
  res.send("released " + req.params.tag);
});
async function gatedStep(tag, step) {
  console.log("gated " + tag + ": step " + step + " started");
  while (step === 2 && !released.has(tag)) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return "step" + step;
}
async function gatedFn(tag) {
  try {
    const out = [];
    for (const step of [1, 2, 3]) {
      out.push(await DBOS.runStep(() => gatedStep(tag, step), { name: "gatedStep" + step }));
    }
    return out.join(",");
  } finally {
    console.log("gated " + tag + ": workflow function returned");
  }
}
const gated = DBOS.registerWorkflow(gatedFn, { name: "gated" });
app.get("/enqueue/:tag", async (req, res, next) => {
  try {
    const handle = await DBOS.startWorkflow(gated, { workflowID: "gated-" + req.params.tag, queueName: "gatedq" })(req.params.tag);
    res.json({ workflowID: handle.workflowID });
  } catch (err) {
    next(err);
  }
});

DBOS.setConfig(`

// TestWorkflows manages the workflows of a deployed app with the official
// CLI, served from the app's system database: workflow list with its
// filters, queue list, cancel of a running workflow (its next step does
// not run), resume (its recorded steps do not run again), restart (a new
// workflow runs again from the start); then the same with Hangar's CLI.
func TestWorkflows(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "wfs")
	hc := h.HTTPClient(t)
	c := h.Client(t, refresh)
	ctx := context.Background()
	base := "https://wfs-greeter." + h.Domain

	dir := fixture(t, "greeter", map[string]func(string) string{
		"app.mjs": func(s string) string {
			s = strings.Replace(s, "\nDBOS.setConfig(", workflowRoutes, 1)
			return strings.Replace(s, "await DBOS.launch();", `await DBOS.launch();
await DBOS.registerQueue("gatedq", { globalConcurrency: 1, minPollingIntervalMs: 100 });`, 1)
		},
	})
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	official := func(t *testing.T, args ...string) string {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	ours := func(t *testing.T, args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("our dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	// list parses the workflows a list command printed.
	list := func(t *testing.T, out string) []apiclient.WorkflowStatus {
		t.Helper()
		var ws []apiclient.WorkflowStatus
		if err := json.Unmarshal([]byte(lastJSON(out)), &ws); err != nil {
			t.Fatalf("list output is not a list of workflows: %v\n%s", err, out)
		}
		return ws
	}
	ids := func(ws []apiclient.WorkflowStatus) []string {
		out := []string{}
		for _, w := range ws {
			out = append(out, w.WorkflowUUID)
		}
		return out
	}
	workflow := func(t *testing.T, id string) apiclient.WorkflowStatus {
		t.Helper()
		var w apiclient.WorkflowStatus
		if err := c.Do(ctx, http.MethodGet, "/appsadmin/wfs/applications/greeter/workflows/"+url.PathEscape(id), nil, &w); err != nil {
			t.Fatalf("get workflow %s: %v", id, err)
		}
		return w
	}
	waitStatus := func(t *testing.T, id, status string) apiclient.WorkflowStatus {
		t.Helper()
		var w apiclient.WorkflowStatus
		waitFor(t, id+" "+status, 2*time.Minute, func() bool {
			w = workflow(t, id)
			return w.Status == status
		})
		return w
	}
	logs := func(t *testing.T) string {
		t.Helper()
		var page apiclient.LogsResponse
		q := url.Values{"format": {"json"}, "last": {"0"}, "limit": {"10000"}}
		if err := c.Do(ctx, http.MethodGet, "/v1alpha1/wfs/logs/applications/greeter?"+q.Encode(), nil, &page); err != nil {
			t.Fatal(err)
		}
		return page.Body
	}
	waitLogged := func(t *testing.T, line string) {
		t.Helper()
		waitFor(t, "the app logs "+line, 2*time.Minute, func() bool { return strings.Contains(logs(t), line) })
	}
	call := func(t *testing.T, path string, out any) {
		t.Helper()
		status, body := get(t, hc, base+path)
		if status != http.StatusOK {
			t.Fatalf("GET %s = %d %s", path, status, body)
		}
		if out != nil {
			if err := json.Unmarshal([]byte(body), out); err != nil {
				t.Fatalf("GET %s: %v\n%s", path, err, body)
			}
		}
	}

	official(t, "db", "provision", "wfsdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	official(t, "app", "deploy")
	vs, err := c.AppVersions(ctx, "wfs", "greeter")
	if err != nil || len(vs) != 1 {
		t.Fatalf("versions = %v, %v; want one", vs, err)
	}
	version := vs[0].Version

	// Two greetings finish; gated-a1 runs into its step two, where it
	// waits; gated-a2 waits in the queue behind it.
	var greets []string
	for _, name := range []string{"alice", "bob"} {
		var g struct{ WorkflowID string }
		call(t, "/greet/"+name, &g)
		greets = append(greets, g.WorkflowID)
		waitStatus(t, g.WorkflowID, "SUCCESS")
	}
	call(t, "/enqueue/a1", nil)
	waitLogged(t, "gated a1: step 2 started")
	call(t, "/enqueue/a2", nil)
	waitStatus(t, "gated-a2", "ENQUEUED")

	t.Run("List", func(t *testing.T) {
		all := list(t, official(t, "workflow", "list"))
		if diff := cmp.Diff(append(slices.Clone(greets), "gated-a1", "gated-a2"), ids(all)); diff != "" {
			t.Errorf("workflow list (-want +got):\n%s", diff)
		}
		for _, w := range all {
			if w.ApplicationVersion != version || w.CreatedAt == "" || w.ExecutorID == "" && w.Status != "ENQUEUED" {
				t.Errorf("workflow %+v: want app version %s, a creation time and (unless enqueued) an executor", w, version)
			}
		}
		if got := ids(list(t, official(t, "workflow", "list", "--limit", "1", "--sort-desc"))); !cmp.Equal(got, []string{"gated-a2"}) {
			t.Errorf("workflow list --limit 1 --sort-desc = %q, want the newest, gated-a2", got)
		}
		if got := ids(list(t, official(t, "workflow", "list", "--status", "SUCCESS", "--offset", "1"))); !cmp.Equal(got, greets[1:]) {
			t.Errorf("workflow list --status SUCCESS --offset 1 = %q, want %q", got, greets[1:])
		}
		if got := list(t, official(t, "workflow", "list", "-u", greets[0])); len(got) != 1 || got[0].WorkflowName != "greetWorkflow" || got[0].Status != "SUCCESS" {
			t.Errorf("workflow list -u %s = %+v, want that greetWorkflow, SUCCESS", greets[0], got)
		}
		out, code := h.official(t, dir, "workflow", "list", "--status", "DONE")
		if code == 0 || !strings.Contains(out, `unknown workflow status \"DONE\"`) && !strings.Contains(out, `unknown workflow status "DONE"`) {
			t.Errorf("workflow list --status DONE: exit %d, want a failure naming the status:\n%s", code, out)
		}
	})

	t.Run("QueueList", func(t *testing.T) {
		queued := list(t, official(t, "workflow", "queue", "list"))
		got := map[string]string{}
		for _, w := range queued {
			got[w.WorkflowUUID] = w.Status + " in " + w.QueueName
		}
		if want := map[string]string{"gated-a1": "PENDING in gatedq", "gated-a2": "ENQUEUED in gatedq"}; !cmp.Equal(got, want) {
			t.Errorf("queue list = %v, want %v", got, want)
		}
		if got := ids(list(t, official(t, "workflow", "queue", "list", "--status", "ENQUEUED"))); !cmp.Equal(got, []string{"gated-a2"}) {
			t.Errorf("queue list --status ENQUEUED = %q, want gated-a2", got)
		}
		if got := ids(list(t, official(t, "workflow", "queue", "list", "--queue", "otherq"))); len(got) != 0 {
			t.Errorf("queue list --queue otherq = %q, want none", got)
		}
		// Hangar's CLI prints the same.
		if diff := cmp.Diff(queued, list(t, ours(t, "workflow", "queue", "list"))); diff != "" {
			t.Errorf("our queue list differs from the official one (-official +ours):\n%s", diff)
		}
	})

	t.Run("CancelResume", func(t *testing.T) {
		official(t, "workflow", "cancel", "-w", "gated-a1")
		if w := workflow(t, "gated-a1"); w.Status != "CANCELLED" || w.QueueName != "" {
			t.Fatalf("gated-a1 is %s in queue %q after the cancel, want CANCELLED out of its queue", w.Status, w.QueueName)
		}
		// Its step two ends; the workflow stops before step three.
		call(t, "/release/a1", nil)
		waitLogged(t, "gated a1: workflow function returned")
		if l := logs(t); strings.Contains(l, "gated a1: step 3 started") {
			t.Errorf("step three of the cancelled gated-a1 ran:\n%s", lastLines(l, 20))
		}
		if w := workflow(t, "gated-a1"); w.Status != "CANCELLED" {
			t.Errorf("gated-a1 is %s after its function returned, want CANCELLED", w.Status)
		}
		var steps []apiclient.WorkflowStep
		if err := c.Do(ctx, http.MethodGet, "/appsadmin/wfs/applications/greeter/workflows/gated-a1/steps", nil, &steps); err != nil {
			t.Fatal(err)
		}
		if len(steps) == 0 || len(steps) > 2 || steps[0].FunctionName != "gatedStep1" {
			t.Fatalf("steps of the cancelled gated-a1 = %+v, want step one and perhaps two", steps)
		}

		t.Logf("steps of gated-a1 recorded when it was cancelled: %d", len(steps))
		official(t, "workflow", "resume", "-w", "gated-a1")
		w := waitStatus(t, "gated-a1", "SUCCESS")
		if w.ApplicationVersion != version {
			t.Errorf("resumed gated-a1 ran as version %s, want %s", w.ApplicationVersion, version)
		}
		// The steps recorded before the cancel did not run again. The app's
		// output reaches the logs after the workflow's status does.
		waitLogged(t, "gated a1: step 3 started")
		l := logs(t)
		for step, want := range map[string]int{"1": 1, "2": 3 - len(steps), "3": 1} {
			if got := strings.Count(l, "gated a1: step "+step+" started"); got != want {
				t.Errorf("step %s of gated-a1 started %d times, want %d (%d steps recorded at the cancel)", step, got, want, len(steps))
			}
		}
		out, code := h.official(t, dir, "workflow", "cancel", "-w", "no-such-workflow")
		if code == 0 || !strings.Contains(out, "workflow no-such-workflow not found") {
			t.Errorf("cancel of an unknown workflow: exit %d, want it not found:\n%s", code, out)
		}
	})

	// restarted returns the workflow forked from id, once it succeeded.
	restarted := func(t *testing.T, id string) apiclient.WorkflowStatus {
		t.Helper()
		var fork string
		waitFor(t, "a restart of "+id, time.Minute, func() bool {
			for _, w := range list(t, ours(t, "workflow", "list", "--sort-desc")) {
				if w.ForkedFrom == id {
					fork = w.WorkflowUUID
				}
			}
			return fork != ""
		})
		w := waitStatus(t, fork, "SUCCESS")
		if w.WorkflowName != "greetWorkflow" || w.ApplicationVersion != version {
			t.Errorf("restart of %s = %+v, want a greetWorkflow of version %s", id, w, version)
		}
		return w
	}
	greetings := func(t *testing.T) map[string]int {
		t.Helper()
		var rows []struct{ Name string }
		call(t, "/greetings", &rows)
		n := map[string]int{}
		for _, r := range rows {
			n[r.Name]++
		}
		return n
	}

	t.Run("Restart", func(t *testing.T) {
		official(t, "workflow", "restart", "-w", greets[0])
		restarted(t, greets[0])
		if got := greetings(t); got["alice"] != 2 || got["bob"] != 1 {
			t.Errorf("greetings = %v, want alice greeted again by the restart", got)
		}
		if w := workflow(t, greets[0]); !w.WasForkedFrom || w.Status != "SUCCESS" {
			t.Errorf("the restarted workflow is %+v, want SUCCESS and forked from", w)
		}
	})

	t.Run("OurCLI", func(t *testing.T) {
		// gated-a2 runs now, waiting in its step two.
		waitLogged(t, "gated a2: step 2 started")
		ours(t, "workflow", "cancel", "-w", "gated-a2")
		if got := ids(list(t, ours(t, "workflow", "list", "--status", "CANCELLED"))); !cmp.Equal(got, []string{"gated-a2"}) {
			t.Errorf("our workflow list --status CANCELLED = %q, want gated-a2", got)
		}
		call(t, "/release/a2", nil)
		waitLogged(t, "gated a2: workflow function returned")
		ours(t, "workflow", "resume", "-w", "gated-a2")
		waitStatus(t, "gated-a2", "SUCCESS")
		if n := strings.Count(logs(t), "gated a2: step 1 started"); n != 1 {
			t.Errorf("step 1 of gated-a2 started %d times, want once", n)
		}
		ours(t, "workflow", "restart", "-w", greets[1])
		restarted(t, greets[1])
		if got := greetings(t); got["bob"] != 2 {
			t.Errorf("greetings = %v, want bob greeted again by the restart", got)
		}
		if got := list(t, ours(t, "workflow", "queue", "list")); len(got) != 0 {
			t.Errorf("queue list after everything ended = %+v, want none", got)
		}
	})

	// app cmd runs a shell command on the serving executor, confined as
	// the app is, for 10 s at most, and leaves a trace in the app's logs.
	t.Run("AppCmd", func(t *testing.T) {
		out := ours(t, "app", "cmd", "--", "id -u; grep CapEff /proc/self/status; ls")
		lines := strings.Split(out, "\n")
		if uid, err := strconv.Atoi(lines[0]); err != nil || uid == 0 {
			t.Errorf("the command runs as uid %q, want the executor's own, not root:\n%s", lines[0], out)
		}
		for _, want := range []string{"CapEff:\t0000000000000000", "app.mjs", "dbos-config.yaml", "package.json"} {
			if !slices.Contains(lines, want) {
				t.Errorf("output lacks the line %q (no capabilities, the app's files):\n%s", want, out)
			}
		}
		out, code := h.ours(t, dir, "app", "cmd", "echo seven; exit 7")
		if code != 7 || out != "seven\n" {
			t.Errorf("exit 7: got exit code %d and %q, want 7 and \"seven\\n\"", code, out)
		}
		out, code = h.ours(t, dir, "app", "cmd", "sleep 30; echo slept")
		if code != 124 || strings.Contains(out, "slept") || !strings.Contains(out, "ran out of time") {
			t.Errorf("sleep 30: got exit code %d and %q, want 124, cut at 10 s", code, out)
		}
		l := ours(t, "app", "logs")
		for _, want := range []string{`hangar: WARN: wfs ran a command on executor ex-`, `: "echo seven; exit 7"; exit code 7`, `: "sleep 30; echo slept"; exit code 124`} {
			if !strings.Contains(l, want) {
				t.Errorf("app logs lack %q:\n%s", want, lastLines(l, 20))
			}
		}
		// The app still serves.
		call(t, "/greetings", nil)
	})
}
