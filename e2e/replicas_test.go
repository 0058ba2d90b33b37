package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/image/imagetest"
)

// TestReplicas runs two `hangar serve` replicas on one metadata PostgreSQL
// and one data dir (docs/replicas.md): both serve the API and the app, a
// route set by one reaches the other, and a replica killed (SIGKILL, never
// restarted) in the middle of a deploy's deployment step is taken over by
// the other, which finishes that deploy; nothing the dead one ran is left.
// Real processes, because the point is a process that dies.
func TestReplicas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	meta := ownServer(t, "hangar", "meta-pass")
	createDatabase(t, meta.URL("postgres"), "hangar")
	appDB := ownServer(t, "dbosadmin", "app-pass")
	// A longer timeout than a restart takes: a's restart below keeps its
	// apps rather than handing them to b.
	rs := startReplicas(t, meta.URL("hangar"), 2, "--replica-timeout", "10s")
	a, b := rs[0], rs[1]
	// The crash tests' helpers read org crash's app greeter.
	refresh := a.addReplicaUser(t, meta.URL("hangar"), "crash")
	ca, cb := a.Client(t, refresh), b.Client(t, refresh)
	if err := ca.LinkDB(ctx, "crash", apiclient.LinkDBRequest{Name: "appdb", HostName: "localhost", Port: appDB.Port(), Password: "app-pass"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cb.RegisterApp(ctx, "crash", apiclient.RegisterAppRequest{Name: "greeter", Database: "appdb", Language: "node"}); err != nil {
		t.Fatalf("register the app through b: %v", err)
	}
	dir := fixture(t, "greeter", nil)
	if out, code := a.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	appURL := "https://crash-greeter." + a.Domain + "/"
	ha, hb := a.HTTPClient(t), b.HTTPClient(t)

	t.Run("BothServe", func(t *testing.T) {
		// The official CLI talks to the domain's port: replica a.
		if out, code := a.official(t, dir, "app", "deploy"); code != 0 {
			t.Fatalf("deploy through a: %d\n%s", code, out)
		}
		deployed := time.Now()
		waitServes(t, hb, appURL, "greeter v1")
		t.Logf("b served the route a set %v after the deploy returned", time.Since(deployed).Round(time.Millisecond))
		waitServes(t, ha, appURL, "greeter v1")
		if app, err := cb.App(ctx, "crash", "greeter"); err != nil || app.Status != "AVAILABLE" {
			t.Errorf("the app through b's API: %+v, %v", app, err)
		}
	})

	t.Run("KillDuringDeploy", func(t *testing.T) {
		// a again, now pausing in the deployment step; within the
		// timeout, so it keeps its row, its apps and its executors.
		a.Kill(t)
		a.Start(t, "HANGAR_FAULT_STEP_DELAY=deployment=120s")
		waitServes(t, a.HTTPClient(t), appURL, "greeter v1")
		editFile(t, dir, "app.mjs", `"greeter v1"`, `"greeter v2"`)
		done := make(chan struct{})
		go func() {
			defer close(done)
			a.official(t, dir, "app", "deploy") // fails when a dies under it
		}()
		waitLog(t, cb, "fault injection: pausing step deployment")
		if len(a.leftovers()) == 0 {
			t.Fatal("a runs no executor when it is killed: nothing to take over")
		}
		a.Kill(t)
		<-done

		v := waitSettled(t, cb)
		if v.Status != "ACTIVE" {
			t.Fatalf("the deploy a died in settled as %+v, want ACTIVE", v)
		}
		waitServes(t, hb, appURL, "greeter v2")
		took := regexp.MustCompile(`resumed a dead replica's apps and workflows" replica=r0 workflows=(\d+)`).FindStringSubmatch(b.out.String())
		if took == nil || took[1] == "0" {
			t.Errorf("b never logged taking over a's deploy workflow:\n%s", b.out.String())
		}
		waitFor(t, "nothing of a's left running", 30*time.Second, func() bool { return len(a.leftovers()) == 0 })
	})

	t.Run("DeployMovesApp", func(t *testing.T) {
		// a comes back as a new replica; a deploy through it moves the
		// app there, and b stops its executors.
		a.Start(t)
		editFile(t, dir, "app.mjs", `"greeter v2"`, `"greeter v3"`)
		if out, code := a.official(t, dir, "app", "deploy"); code != 0 {
			t.Fatalf("deploy through a: %d\n%s", code, out)
		}
		waitServes(t, hb, appURL, "greeter v3")
		waitServes(t, a.HTTPClient(t), appURL, "greeter v3")
		waitFor(t, "b's executors stopped", time.Minute, func() bool { return len(b.leftovers()) == 0 })
	})

	t.Run("ExecutorsOnAny", func(t *testing.T) {
		// a runs the app; b answers for its executors by asking a.
		var onA, onB []apiclient.ExecutorStats
		path := "/hangar/v1/crash/applications/greeter/executors"
		if err := ca.Do(ctx, http.MethodGet, path, nil, &onA); err != nil || len(onA) == 0 {
			t.Fatalf("executors through a = %v, %v; want a's", onA, err)
		}
		if err := cb.Do(ctx, http.MethodGet, path, nil, &onB); err != nil || len(onB) != len(onA) || onB[0].ID != onA[0].ID {
			t.Fatalf("executors through b = %+v, %v; want a's %+v", onB, err, onA)
		}
		if onB[0].Usage == nil {
			t.Errorf("executors through b carry no stats: %+v", onB[0])
		}
		res, err := cb.ExecutorCommand(ctx, "crash", "greeter", onA[0].ID, "echo from-the-executor")
		if err != nil || res.Stdout != "from-the-executor\n" || res.ExitCode != 0 {
			t.Errorf("app cmd through b = %+v, %v", res, err)
		}
	})

	t.Run("DeleteThroughOther", func(t *testing.T) {
		// a runs the app; deleting it through b stops a's executors.
		if len(a.leftovers()) == 0 {
			t.Fatal("a runs no executor before the delete")
		}
		if err := cb.DeleteApp(ctx, "crash", "greeter", apiclient.DeleteAppRequest{}); err != nil {
			t.Fatalf("delete through b: %v", err)
		}
		waitFor(t, "a's executors stopped", time.Minute, func() bool { return len(a.leftovers()) == 0 })
		// The delete finishes: the app's record and its files are gone,
		// though a held them busy until its executors stopped.
		waitFor(t, "the app deleted", time.Minute, func() bool {
			apps, err := cb.Apps(ctx, "crash")
			return err == nil && len(apps) == 0
		})
		if dirs, _ := os.ReadDir(filepath.Join(a.DataDir, "apps")); len(dirs) != 0 {
			t.Errorf("the deleted app's files remain: %v", dirs)
		}
		for name, c := range map[string]*http.Client{"a": a.HTTPClient(t), "b": hb} {
			if resp, err := c.Get(appURL); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					t.Errorf("%s still serves the deleted app", name)
				}
			}
		}
	})

	t.Run("KillDuringProvision", func(t *testing.T) {
		// a restarts (keeping its row) to pause provisioning after its
		// server started, and is killed there: b stops what a left of
		// the instance, finishes the workflow, and runs the instance.
		a.Kill(t)
		a.Start(t, "HANGAR_FAULT_STEP_DELAY=available=120s")
		mark := len(a.out.String())
		if err := a.Client(t, refresh).ProvisionDB(ctx, "crash", apiclient.ProvisionDBRequest{Name: "provdb", AdminName: "prov_admin", AdminPassword: "prov-pass-1"}); err != nil {
			t.Fatalf("provision through a: %v", err)
		}
		waitFor(t, "a pausing the provisioning", 3*time.Minute, func() bool {
			return strings.Contains(a.out.String()[mark:], "fault injection: pausing step available")
		})
		if len(dbContainers(a.Prefix)) == 0 {
			t.Fatal("a runs no database container when it is killed: nothing to take over")
		}
		a.Kill(t)
		var db apiclient.UserDBInstance
		waitFor(t, "the instance available through b", 3*time.Minute, func() bool {
			var err error
			db, err = cb.DB(ctx, "crash", "provdb")
			return err == nil && db.Status == "available"
		})
		if left := dbContainers(a.Prefix); len(left) > 0 {
			t.Errorf("a's database containers left after the takeover: %v", left)
		}
		if len(dbContainers(b.Prefix)) == 0 {
			t.Error("b runs no database container for the instance it took over")
		}
		// Usable: an app on it, deployed through a new a, serves on both.
		a.Start(t)
		if _, err := cb.RegisterApp(ctx, "crash", apiclient.RegisterAppRequest{Name: "onprov", Database: "provdb", Language: "node"}); err != nil {
			t.Fatalf("register the app on the instance b took over: %v", err)
		}
		pdir := fixture(t, "greeter", map[string]func(string) string{
			"dbos-config.yaml": func(s string) string { return strings.Replace(s, "name: greeter", "name: onprov", 1) },
		})
		if out, code := a.ours(t, pdir, "login", "--with-refresh-token", refresh); code != 0 {
			t.Fatalf("login: %d\n%s", code, out)
		}
		if out, code := a.official(t, pdir, "app", "deploy"); code != 0 {
			t.Fatalf("deploy through a: %d\n%s", code, out)
		}
		url := "https://crash-onprov." + a.Domain + "/"
		waitServes(t, hb, url, "greeter v1")
		waitServes(t, a.HTTPClient(t), url, "greeter v1")
	})

	t.Run("DestroyThroughOther", func(t *testing.T) {
		// b runs provdb; destroying it through a stops b's server first.
		ca := a.Client(t, refresh)
		if err := ca.DeleteApp(ctx, "crash", "onprov", apiclient.DeleteAppRequest{}); err != nil {
			t.Fatalf("delete the app on provdb: %v", err)
		}
		waitFor(t, "the app deleted", time.Minute, func() bool {
			_, err := ca.App(ctx, "crash", "onprov")
			return err != nil
		})
		if err := ca.DestroyDB(ctx, "crash", "provdb"); err != nil {
			t.Fatalf("destroy provdb through a: %v", err)
		}
		if left := dbContainers(b.Prefix); len(left) > 0 {
			t.Errorf("b still runs provdb after its destroy returned: %v", left)
		}
		if dirs, _ := filepath.Glob(filepath.Join(a.DataDir, "instances", "*", "data")); len(dirs) > 0 {
			t.Errorf("instance files left after the destroy: %v", dirs)
		}
	})
}

// dbContainers lists the runc containers of managed database instances
// that the replica of prefix runs.
func dbContainers(prefix string) []string {
	var left []string
	out, _ := exec.Command("runc", "--root", "/run/hangar-db", "list", "--quiet").Output()
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, prefix+"-db-") {
			left = append(left, name)
		}
	}
	return left
}

// waitServes polls url through c until it answers 200 with want.
func waitServes(t *testing.T, c *http.Client, url, want string) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(50 * time.Millisecond) {
		resp, err := c.Get(url)
		if err != nil {
			last = err.Error()
		} else {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && string(body) == want {
				return
			}
			last = fmt.Sprintf("%d %q", resp.StatusCode, body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered %q; last: %s", url, want, last)
		}
	}
}

// createDatabase creates database name on the server of adminURL.
func createDatabase(t *testing.T, adminURL, name string) {
	t.Helper()
	c, err := pgx.Connect(t.Context(), adminURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(t.Context(), "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
}

// startReplicas starts n `hangar serve` replicas on the metadata database
// dbURL and one fresh data dir, each with its own port, network prefix
// and subnet, all serving the first one's domain (as behind one load
// balancer; clients dial each replica's port). At the end of the test it
// stops them, then checks that none left anything running.
func startReplicas(t *testing.T, dbURL string, n int, extra ...string) []*Hangar {
	t.Helper()
	dataDir, err := os.MkdirTemp("", "hangar-e2e-data-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	hs := make([]*Hangar, n)
	t.Cleanup(func() {
		for _, h := range hs {
			if h != nil && h.cmd != nil {
				h.Stop(t)
			}
		}
		for _, h := range hs {
			if h == nil {
				continue
			}
			left := h.orphans()
			for deadline := time.Now().Add(15 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = h.orphans() {
				time.Sleep(200 * time.Millisecond)
			}
			if len(left) > 0 {
				t.Errorf("left running 15s after the replicas stopped: %v", left)
			}
			if t.Failed() {
				t.Logf("replica %s output:\n%s", h.Prefix, h.out.String())
			}
		}
		removeDataDir(t, dataDir)
	})
	domain := "localhost:" + freePort(t)
	for i := range hs {
		prefixSeq.Lock()
		prefixSeq.n++
		seq := prefixSeq.n
		prefixSeq.Unlock()
		port := freePort(t)
		if i == 0 {
			_, port, _ = strings.Cut(domain, ":")
		}
		h := &Hangar{
			DataDir: dataDir, Domain: domain, Port: port, Prefix: fmt.Sprintf("hp%d%d", os.Getpid()%10000, seq),
			CA: filepath.Join(dataDir, "ca.pem"), out: &syncBuffer{},
		}
		h.args = append([]string{"serve",
			"--data-dir", dataDir, "--listen", "127.0.0.1:" + port, "--domain", domain,
			"--network-prefix", h.Prefix, "--image-cache", imagetest.Dir(),
			"--subnet", fmt.Sprintf("10.%d.0.0/16", subnetBase()+seq%subnetSpan), "--health-timeout", "90s",
			"--db-ports", "0", "--database-url", dbURL, "--replica-id", fmt.Sprintf("r%d", i)}, extra...)
		hs[i] = h
		// One after the other: the first creates the CA and the sealing key.
		h.Start(t)
	}
	return hs
}

// addReplicaUser runs `hangar users add` on the replicas' metadata
// database and returns the refresh token.
func (h *Hangar) addReplicaUser(t *testing.T, dbURL, name string) string {
	t.Helper()
	out, err := runOut(filepath.Join(bin, "hangar"), "users", "add", name, "--data-dir", h.DataDir, "--database-url", dbURL)
	if err != nil {
		t.Fatalf("hangar users add: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	return f[len(f)-1]
}

// leftovers lists what runs under the replica's network prefix: network
// namespaces and runc containers.
func (h *Hangar) leftovers() []string {
	var left []string
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, h.Prefix+"-") {
			left = append(left, "netns "+strings.Fields(line)[0])
		}
	}
	out, _ = exec.Command("runc", "--root", filepath.Join("/run/hangar/sandbox", h.Prefix, "runc"), "list", "--quiet").Output()
	for _, name := range strings.Fields(string(out)) {
		left = append(left, "container "+name)
	}
	return left
}
