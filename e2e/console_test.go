package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// screenshotDir is where TestConsole saves a screenshot of each page; the
// README shows them.
const screenshotDir = "../docs/console"

// TestConsole drives the web console in Debian's headless Chromium: sign in
// with a password, see an app the CLI deployed AVAILABLE, see a line the
// app prints appear in the live log, cancel a running workflow (the
// official CLI then lists it CANCELLED) and fork it from a step of its
// timeline (the fork succeeds), redeploy the older version from
// the versions list, see the dashboard's charts hold data points after
// traffic, check every page at phone width and for unlabelled controls;
// then a user of another org, signed in with a refresh token, gets none of
// it.
func TestConsole(t *testing.T) {
	t.Parallel()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium not found: scripts/setup.sh installs it")
		}
		t.Skip("chromium not found: run scripts/setup.sh")
	}
	// A sample every 2 s instead of every minute.
	h := startHangar(t, "--metrics-interval", "2s")
	refresh, rivalRefresh := h.AddUser(t, "con"), h.AddUser(t, "rival")
	c := h.Client(t, refresh)
	hc := h.HTTPClient(t)
	ctx := context.Background()
	const password = "console-password-1"
	if err := c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: password}); err != nil {
		t.Fatal(err)
	}
	appURL := "https://con-greeter." + h.Domain

	// Two versions of greeter, with the gated workflow of TestWorkflows.
	dir := fixture(t, "greeter", map[string]func(string) string{
		"app.mjs": func(s string) string {
			s = strings.Replace(s, "\nDBOS.setConfig(", workflowRoutes, 1)
			return strings.Replace(s, "await DBOS.launch();", `await DBOS.launch();
await DBOS.registerQueue("gatedq", { globalConcurrency: 1, minPollingIntervalMs: 100 });`, 1)
		},
	})
	if err := c.ProvisionDB(ctx, "con", apiclient.ProvisionDBRequest{Name: "condb", AdminName: "dbos_admin", AdminPassword: "s3cret-pass"}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "condb available", 2*time.Minute, func() bool {
		d, err := c.DB(ctx, "con", "condb")
		return err == nil && d.Status == "available"
	})
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	deploy := func(t *testing.T) string {
		t.Helper()
		if out, code := h.ours(t, dir, "app", "deploy"); code != 0 {
			t.Fatalf("deploy: %d\n%s", code, out)
		}
		vs, err := c.AppVersions(ctx, "con", "greeter")
		if err != nil || len(vs) == 0 {
			t.Fatalf("versions: %v, %v", vs, err)
		}
		return vs[0].Version
	}
	v1 := deploy(t)
	app := filepath.Join(dir, "app.mjs")
	b, err := os.ReadFile(app)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(app, []byte(strings.Replace(string(b), `send("greeter v1")`, `send("greeter v2")`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if v2 := deploy(t); v2 == v1 {
		t.Fatal("the second deploy made no new version")
	}
	if status, body := get(t, hc, appURL+"/"); body != "greeter v2" {
		t.Fatalf("GET / after the second deploy = %d %q, want greeter v2", status, body)
	}

	br := newChrome(t, chromium)
	base := "https://" + h.Domain
	page := func(path string) string { return base + "/console/con" + path }

	t.Run("SignIn", func(t *testing.T) {
		br.visit(t, base+"/", `input[name=username]`)
		br.check(t, "signin")
		br.submit(t, base+"/", `location.pathname === "/console/con/apps" && !!document.querySelector("h1")`,
			chromedp.SendKeys(chromedp.CSS(`input[name=username]`), "con"),
			chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
			chromedp.Click(chromedp.CSS(`form.narrow button`)),
		)
	})

	t.Run("AppsList", func(t *testing.T) {
		text := br.text(t, "main")
		for _, want := range []string{"greeter", "AVAILABLE", appURL, "by con"} {
			if !strings.Contains(text, want) {
				t.Errorf("the apps list lacks %q:\n%s", want, text)
			}
		}
		br.check(t, "apps")
	})

	t.Run("LiveLog", func(t *testing.T) {
		br.visit(t, page("/apps/greeter/logs"), `#log-lines`)
		// Printed after the page loaded: the live tail brings it in.
		if status, body := get(t, hc, appURL+"/greet/live-browser"); status != http.StatusOK {
			t.Fatalf("GET /greet/live-browser = %d %s", status, body)
		}
		br.poll(t, `document.getElementById("log-lines").innerText.includes("greeted live-browser")`)
		br.check(t, "logs")
	})

	t.Run("CancelWorkflow", func(t *testing.T) {
		if status, body := get(t, hc, appURL+"/enqueue/ui"); status != http.StatusOK {
			t.Fatalf("GET /enqueue/ui = %d %s", status, body)
		}
		waitFor(t, "gated-ui waits in step 2", 2*time.Minute, func() bool {
			var w apiclient.WorkflowStatus
			err := c.Do(ctx, http.MethodGet, "/appsadmin/con/applications/greeter/workflows/gated-ui", nil, &w)
			return err == nil && w.Status == "PENDING"
		})
		br.visit(t, page("/apps/greeter/workflows"), `#workflows-table`)
		br.check(t, "workflows")
		br.visit(t, page("/apps/greeter/workflows/gated-ui"), `#workflow-status`)
		br.check(t, "workflow")
		br.submit(t, page("/apps/greeter/workflows/gated-ui"), `(document.getElementById("workflow-status") || {}).innerText === "CANCELLED"`,
			chromedp.Click(chromedp.CSS(`button[aria-label="Cancel workflow gated-ui"]`)))
		out, code := h.official(t, dir, "workflow", "list", "-u", "gated-ui")
		if code != 0 || !strings.Contains(out, `"CANCELLED"`) {
			t.Errorf("official CLI's workflow list -u gated-ui: exit %d, want it CANCELLED:\n%s", code, out)
		}
		get(t, hc, appURL+"/release/ui")

		// Fork it from the last step its timeline shows: the copy keeps
		// the steps before and runs to the end.
		br.submit(t, page("/apps/greeter/workflows/gated-ui"), `(document.querySelector(".flash") || {innerText: ""}).innerText.includes("Workflow forked from step")`,
			chromedp.Click(chromedp.CSS(`ol.timeline li:last-child button[aria-label^="Fork workflow gated-ui from step"]`)))
		waitFor(t, "the fork of gated-ui succeeds", 2*time.Minute, func() bool {
			var ws []apiclient.WorkflowStatus
			err := c.Do(ctx, http.MethodPost, "/appsadmin/con/applications/greeter/workflows",
				apiclient.ListWorkflowsRequest{WorkflowName: "gated", LoadOutput: true}, &ws)
			return err == nil && slices.ContainsFunc(ws, func(w apiclient.WorkflowStatus) bool {
				return w.ForkedFrom == "gated-ui" && w.Status == "SUCCESS" && strings.Contains(w.Output, "step1,step2,step3")
			})
		})
	})

	t.Run("RedeployOlderVersion", func(t *testing.T) {
		br.visit(t, page("/apps/greeter"), `#app-status`)
		br.check(t, "app")
		br.submit(t, page("/apps/greeter"), `(document.querySelector(".flash") || {innerText: ""}).innerText.includes("Redeploying version")`,
			chromedp.Click(chromedp.CSS(fmt.Sprintf(`button[aria-label="Redeploy version %s"]`, v1))))
		waitFor(t, "greeter serves v1 again", 5*time.Minute, func() bool {
			a, err := c.App(ctx, "con", "greeter")
			_, body := get(t, hc, appURL+"/")
			return err == nil && a.Status == "AVAILABLE" && body == "greeter v1"
		})
		vs, err := c.AppVersions(ctx, "con", "greeter")
		if err != nil || len(vs) < 3 || vs[0].RestoredFrom != v1 {
			t.Errorf("versions after the redeploy: %+v, %v; want a third one restoring %s", vs, err, v1)
		}
		br.visit(t, page("/apps/greeter"), `#app-status`)
		if text := br.text(t, "#versions + ol li"); !strings.Contains(text, "restores "+v1) {
			t.Errorf("the newest version on the app page:\n%s\nwant it restoring %s", text, v1)
		}
	})

	t.Run("DashboardCharts", func(t *testing.T) {
		for range 5 {
			get(t, hc, appURL+"/")
		}
		waitFor(t, "the history holds the requests", time.Minute, func() bool {
			var m apiclient.AppMetrics
			if err := c.Do(ctx, http.MethodGet, "/hangar/v1/con/applications/greeter/metrics?range=hour", nil, &m); err != nil {
				return false
			}
			for _, v := range m.Requests2xx {
				if v != nil && *v > 0 {
					return true
				}
			}
			return false
		})
		br.visit(t, page("/apps/greeter/dashboard"), `#chart-requests`)
		for _, chart := range []string{"requests", "latency", "memory", "executors", "workflows"} {
			br.poll(t, fmt.Sprintf(`Number(document.getElementById("chart-%s").dataset.points) > 0`, chart))
		}
		br.check(t, "dashboard")
		br.visit(t, page("/dashboard"), `main ul`)
		br.check(t, "dashboards")
		// The URL both CLIs print is this page.
		for _, cmd := range []string{"launch", "url"} {
			if out, code := h.official(t, dir, "dashboard", cmd); code != 0 || !strings.Contains(out, page("/dashboard")) {
				t.Errorf("official dashboard %s: exit %d, want %s:\n%s", cmd, code, page("/dashboard"), out)
			}
		}
		if out, code := h.ours(t, dir, "dashboard", "url"); code != 0 || !strings.Contains(out, page("/dashboard")) {
			t.Errorf("our dashboard url: exit %d, want %s:\n%s", code, page("/dashboard"), out)
		}
	})

	t.Run("OtherPages", func(t *testing.T) {
		for _, p := range []struct{ name, path, want string }{
			{"databases", "/databases", "Link your own PostgreSQL server"},
			{"members", "/members", "Make an invite secret"},
			{"queues", "/apps/greeter/queues", "Queued workflows"},
		} {
			br.visit(t, page(p.path), `h1`)
			if text := br.text(t, "main"); !strings.Contains(text, p.want) {
				t.Errorf("%s lacks %q:\n%s", p.path, p.want, text)
			}
			br.check(t, p.name)
		}
	})

	t.Run("OtherOrg", func(t *testing.T) {
		rival := newChrome(t, chromium)
		rival.submit(t, base+"/console/signin", `location.pathname === "/console/rival/apps" && !!document.querySelector("h1")`,
			chromedp.Click(chromedp.CSS(`details summary`)),
			chromedp.SendKeys(chromedp.CSS(`input[name=refresh_token]`), rivalRefresh),
			chromedp.Click(chromedp.CSS(`details form button`)),
		)
		if text := rival.text(t, "header"); !strings.Contains(text, "rival") {
			t.Fatalf("rival is not signed in:\n%s", text)
		}
		for _, p := range []string{"/apps", "/apps/greeter", "/apps/greeter/logs", "/apps/greeter/workflows",
			"/apps/greeter/workflows/gated-ui", "/apps/greeter/dashboard", "/apps/greeter/metrics?range=hour", "/dashboard", "/databases", "/members"} {
			rival.visit(t, page(p), `body`)
			text := rival.text(t, "body")
			if !strings.Contains(text, "not a member of organization con") {
				t.Errorf("rival at %s sees:\n%s", p, text)
			}
			for _, secret := range []string{v1, "greeted", "gated", appURL} {
				if strings.Contains(text, secret) {
					t.Errorf("rival at %s sees %q:\n%s", p, secret, text)
				}
			}
		}
	})
}

// chrome is a headless Chromium with a fresh profile, and a tab in it.
type chrome struct {
	ctx context.Context
}

func newChrome(t *testing.T, chromium string) *chrome {
	t.Helper()
	actx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		// Hangar's CA is the test's own, made on this run: trusting it
		// would take an NSS database per profile.
		chromedp.IgnoreCertErrors,
		chromedp.UserDataDir(t.TempDir()),
	)
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(cancelTab)
	// The first action starts the browser, which lives as long as the
	// context of that action: ctx itself, not one with a timeout.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &chrome{ctx: ctx}
}

// do runs actions, each page load or wait bounded by 5 minutes (a
// redeploy answers when it is done).
func (b *chrome) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("browser: %v", err)
	}
}

func result[T any](t *testing.T, b *chrome, a chromedp.Action[T]) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, time.Minute)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	return v
}

// text is the text of the first element matching the CSS selector.
func (b *chrome) text(t *testing.T, sel string) string {
	t.Helper()
	return result(t, b, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q) || {innerText: ""}).innerText`, sel)))
}

// poll waits until the JavaScript expression is true, through page loads
// (a form's answer replaces the page it polls).
func (b *chrome) poll(t *testing.T, expr string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			body, _ := chromedp.Run(b.ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("waiting for %s: %v\npage:\n%s", expr, err, body)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// networkChanged is true on the page Chromium shows when it aborted a
// request because the host's network changed: on a test machine, other
// tests' executors add and remove veth pairs all the time.
const networkChanged = `!!document.body && document.body.innerText.includes("ERR_NETWORK_CHANGED")`

// visit loads url and waits for an element matching sel, loading it again
// when Chromium aborted it for a network change.
func (b *chrome) visit(t *testing.T, url, sel string) {
	t.Helper()
	for attempt := 1; ; attempt++ {
		// The abort shows as the navigation's error or as Chromium's
		// error page, depending on when the network changed.
		if err := b.navigate(url); err == nil {
			b.poll(t, fmt.Sprintf(`!!document.querySelector(%q) || %s`, sel, networkChanged))
			if !result(t, b, chromedp.Evaluate[bool](networkChanged)) {
				return
			}
		} else if !strings.Contains(err.Error(), "ERR_NETWORK_CHANGED") {
			t.Fatalf("browser: %v", err)
		}
		if attempt == 5 {
			t.Fatalf("loading %s: aborted by network changes %d times", url, attempt)
		}
	}
}

// navigate loads url.
func (b *chrome) navigate(url string) error {
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Minute)
	defer cancel()
	return chromedp.Do(ctx, chromedp.Navigate(url))
}

// submit loads url, runs actions (which fill and send a form) and waits
// until done is true; when Chromium aborted the form for a network change,
// it loads url again and, unless done is true by then, runs them again.
func (b *chrome) submit(t *testing.T, url, done string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	for attempt := 1; attempt <= 5; attempt++ {
		b.visit(t, url, "body")
		if result(t, b, chromedp.Evaluate[bool](done)) {
			return
		}
		b.do(t, actions...)
		b.poll(t, "("+done+") || "+networkChanged)
		if result(t, b, chromedp.Evaluate[bool](done)) {
			return
		}
	}
	t.Fatalf("%s: aborted by network changes 5 times", url)
}

// unlabelled lists the page's form controls without an accessible name: a
// label around or for them, aria-label, or (buttons) text.
const unlabelled = `Array.from(document.querySelectorAll("input:not([type=hidden]), select, textarea, button")).filter(function (e) {
  if (e.getAttribute("aria-label") || e.closest("label") || (e.id && document.querySelector("label[for='" + e.id + "']"))) return false;
  return !(e.tagName === "BUTTON" && e.textContent.trim());
}).map(function (e) { return e.outerHTML; })`

// check saves a screenshot of the page as <name>.png and checks that every
// control has a label and that the page fits a phone's width (390 px)
// without scrolling sideways, tables scrolling within their own box.
func (b *chrome) check(t *testing.T, name string) {
	t.Helper()
	if bad := result(t, b, chromedp.Evaluate[[]string](unlabelled)); len(bad) > 0 {
		t.Errorf("page %s has controls without a label:\n%s", name, strings.Join(bad, "\n"))
	}
	png := result(t, b, chromedp.CaptureScreenshot())
	if err := os.MkdirAll(screenshotDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(screenshotDir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
	b.do(t, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile))
	defer b.do(t, chromedp.EmulateViewport(1280, 900))
	var fit struct{ Scroll, Inner int }
	raw := result(t, b, chromedp.Evaluate[string](`JSON.stringify({Scroll: document.documentElement.scrollWidth, Inner: window.innerWidth})`))
	if err := json.Unmarshal([]byte(raw), &fit); err != nil {
		t.Fatal(err)
	}
	if fit.Scroll > fit.Inner+1 {
		t.Errorf("page %s is %d px wide at a phone's %d px", name, fit.Scroll, fit.Inner)
	}
	if name == "apps" || name == "dashboard" {
		phone := result(t, b, chromedp.CaptureScreenshot())
		if err := os.WriteFile(filepath.Join(screenshotDir, name+"-phone.png"), phone, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
