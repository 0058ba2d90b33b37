package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestCLI_LoginDeployDeployments drives what Hangar's dbos-cloud adds to the
// official CLI against `hangar serve`: the device login approved through
// Hangar's page, the streaming deploy with progress and step lines, app
// deployments, and an archive over the limit refused before its upload.
func TestCLI_LoginDeployDeployments(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "hank")
	dir := fixture(t, "greeter", nil)
	must := func(t *testing.T, args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}

	t.Run("DeviceLogin", func(t *testing.T) {
		out := deviceLogin(t, h, dir, url.Values{"refresh_token": {refresh}})
		for _, want := range []string{"Successfully logged in as hank!", "Refresh token: hgr_"} {
			if !strings.Contains(out, want) {
				t.Errorf("login output lacks %q:\n%s", want, out)
			}
		}
		if out := must(t, "profile"); !strings.Contains(out, "Name: hank") {
			t.Errorf("profile after the device login:\n%s", out)
		}
	})
	if t.Failed() {
		return
	}
	must(t, "db", "provision", "hankdb", "-U", "dbos_admin", "-W", "s3cret-pass")

	t.Run("StreamingDeploy", func(t *testing.T) {
		out := must(t, "app", "deploy")
		for _, want := range []string{
			"Uploading: 100% (", "; deploying...",
			"==> step upload started", "==> step upload done in ",
			"==> step configuration started", "==> configuration: npm ci", "==> step configuration done in ",
			"==> step migration started", "==> step migration done in ",
			"==> step deployment started", "==> step deployment done in ",
			"Access your application at https://hank-greeter." + h.Domain + "/",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("deploy output lacks %q:\n%s", want, out)
			}
		}
		if i, j := strings.Index(out, "==> step upload started"), strings.Index(out, "==> step deployment done"); i < 0 || j < i {
			t.Errorf("steps out of order:\n%s", out)
		}
		if status, body := get(t, h.HTTPClient(t), "https://hank-greeter."+h.Domain+"/greet/ann"); status != http.StatusOK || !strings.Contains(body, "Hello, ann!") {
			t.Errorf("greet = %d %s", status, body)
		}
	})

	t.Run("Deployments", func(t *testing.T) {
		out := must(t, "app", "deployments")
		for _, re := range []string{
			`Version \S+  ACTIVE  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC  by hank`,
			`(?m)^  upload +\d+(ms|\.?\d*s)  ok$`, `(?m)^  configuration +\S+  ok$`,
			`(?m)^  migration +\S+  ok$`, `(?m)^  deployment +\S+  ok$`,
		} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("deployments output does not match %s:\n%s", re, out)
			}
		}
		var vs []apiclient.AppVersion
		out = must(t, "app", "deployments", "greeter", "--json")
		if err := json.Unmarshal([]byte(out), &vs); err != nil || len(vs) != 1 || len(vs[0].Steps) != 4 {
			t.Errorf("deployments --json = %+v, %v\n%s", vs, err, out)
		}
	})

	t.Run("TooLarge", func(t *testing.T) {
		env := append(h.Env(), "HANGAR_MAX_ARCHIVE_BYTES=1000")
		out, code := run(t, dir, env, filepath.Join(bin, "dbos-cloud"), "app", "deploy")
		if code != 1 || !regexp.MustCompile(`the archive of greeter is \S+ \S+ \(\d+ bytes\), over the limit of 1000 B \(1000 bytes\): nothing was uploaded`).MatchString(out) {
			t.Errorf("deploy over the limit: exit %d, want 1 and a refusal with both sizes\n%s", code, out)
		}
		if strings.Contains(out, "Uploading") {
			t.Errorf("an archive over the limit was uploaded:\n%s", out)
		}
		var vs []apiclient.AppVersion
		if out := must(t, "app", "versions", "--json"); json.Unmarshal([]byte(out[strings.Index(out, "["):]), &vs) != nil || len(vs) != 1 {
			t.Errorf("versions after the refusal: %s", out)
		}
	})
}

// deviceLogin runs our `dbos-cloud login --get-refresh-token` in dir, signs
// in on the approval page with the sign-in form's fields signin (a
// refresh_token, or a username and password), approves the code the login
// shows, and returns the login's output once it succeeded.
func deviceLogin(t *testing.T, h *Hangar, dir string, signin url.Values) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "dbos-cloud"), "login", "--get-refresh-token")
	cmd.Dir, cmd.Env = dir, h.Env()
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	loginURL := regexp.MustCompile(`Login URL: (\S+)`)
	var m []string
	for m == nil {
		if m = loginURL.FindStringSubmatch(out.String()); m != nil {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("login exited before showing a URL: %v\n%s", err, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	code := u.Query().Get("user_code")
	if !strings.Contains(out.String(), "approve the code "+code) {
		t.Errorf("login output does not show the code %s:\n%s", code, out.String())
	}
	approve(t, h, m[1], signin, code)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("login: %v\n%s", err, out.String())
		}
	case <-ctx.Done():
		t.Fatalf("login did not finish after the approval:\n%s", out.String())
	}
	return out.String()
}

// browser returns a client of h that keeps cookies, as a browser does.
func browser(t *testing.T, h *Hangar) *http.Client {
	t.Helper()
	c := h.HTTPClient(t)
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Jar = jar
	return c
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// approve signs in on the approval page at pageURL with the sign-in form's
// fields signin and approves userCode, as a person in a browser would.
func approve(t *testing.T, h *Hangar, pageURL string, signin url.Values, userCode string) {
	t.Helper()
	c := browser(t, h)
	page := func(resp *http.Response, err error) (string, string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s %s: %d\n%s", resp.Request.Method, resp.Request.URL, resp.StatusCode, b)
		}
		m := csrfRE.FindStringSubmatch(string(b))
		if m == nil {
			return string(b), "" // the outcome page has no form
		}
		return string(b), m[1]
	}
	_, csrf := page(c.Get(pageURL))
	if csrf == "" {
		t.Fatalf("the approval page has no CSRF field")
	}
	post := func(form url.Values) string {
		t.Helper()
		form.Set("csrf", csrf)
		body, tok := page(c.PostForm("https://"+h.Domain+"/device", form))
		csrf = tok
		return body
	}
	// Signing in redirects back to the page, signed in.
	form := url.Values{"action": {"signin"}, "user_code": {userCode}}
	for k, v := range signin {
		form[k] = v
	}
	if body := post(form); !strings.Contains(body, "Signed in as <b>") {
		t.Fatalf("not signed in:\n%s", body)
	}
	if body := post(url.Values{"action": {"approve"}, "user_code": {userCode}}); !strings.Contains(body, "Approved") {
		t.Fatalf("not approved:\n%s", body)
	}
}
