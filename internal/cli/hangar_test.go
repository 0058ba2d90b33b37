package cli

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"github.com/hangar-oss/hangar/internal/golden"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// Tests of what Hangar's CLI adds to the official one: the device login,
// the streaming deploy with progress and step lines, app deployments.

// runCLIEnv is runCLI with extra environment variables.
func runCLIEnv(t *testing.T, dir string, api *fakeAPI, vars map[string]string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	all := map[string]string{"DBOS_DOMAIN": api.domain(), "SSL_CERT_FILE": api.caFile, "TMPDIR": t.TempDir()}
	for k, v := range vars {
		all[k] = v
	}
	e := &env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, dir: dir,
		getenv: func(k string) string { return all[k] },
		sleep:  func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
	code = e.run(t.Context(), args)
	return out.String(), errOut.String(), code
}

// deviceAPI is a fake whose device grant answers the poll outcomes in
// order, then outcome "" (tokens).
func deviceAPI(t *testing.T, outcomes ...string) *fakeAPI {
	t.Helper()
	api := newFakeAPI(t)
	api.mux.HandleFunc("POST /oauth/device/code", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, apiclient.DeviceCodeResponse{
			DeviceCode: "dev-1", UserCode: "BCDF-GHJK", VerificationURI: "https://h/device",
			VerificationURIComplete: "https://h/device?user_code=BCDF-GHJK", ExpiresIn: 900, Interval: 5,
		})
	})
	var polls atomic.Int32
	api.mux.HandleFunc("POST /oauth/device/token", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" || r.FormValue("device_code") != "dev-1" ||
			r.FormValue("grant_type") != apiclient.GrantTypeDeviceCode {
			writeTestJSON(w, 400, apiclient.OAuthError{Code: apiclient.OAuthInvalidRequest})
			return
		}
		n := int(polls.Add(1)) - 1
		if n < len(outcomes) && outcomes[n] != "" {
			writeTestJSON(w, 400, apiclient.OAuthError{Code: outcomes[n]})
			return
		}
		writeTestJSON(w, 200, apiclient.DeviceTokenResponse{AccessToken: unsignedJWT, RefreshToken: "hgr_new", TokenType: "Bearer", ExpiresIn: 86400})
	})
	return api
}

func TestLogin_Device(t *testing.T) {
	t.Parallel()
	t.Run("Approved", func(t *testing.T) {
		t.Parallel()
		api := deviceAPI(t, apiclient.OAuthAuthorizationPending, apiclient.OAuthSlowDown, apiclient.OAuthAuthorizationPending)
		dir := t.TempDir()
		stdout, stderr, code := runCLIEnv(t, dir, api, nil, "login", "--get-refresh-token")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		want := "Please authenticate with DBOS Cloud!\n" +
			"Login URL: https://h/device?user_code=BCDF-GHJK\n" +
			"Open it, sign in and approve the code BCDF-GHJK; it expires in 15 minutes.\n" +
			"Waiting for login...\n" +
			"Successfully logged in as u!\n" +
			"Refresh token: hgr_new\n" +
			"Refresh token saved to .dbos/credentials\n"
		if diff := cmp.Diff(want, stdout); diff != "" {
			t.Errorf("stdout (-want +got):\n%s", diff)
		}
		b, err := os.ReadFile(filepath.Join(dir, credentialsPath))
		must(t, err)
		var c apiclient.Credentials
		must(t, json.Unmarshal(b, &c))
		if diff := cmp.Diff(apiclient.Credentials{Token: unsignedJWT, RefreshToken: "hgr_new", UserName: "u", Organization: "o"}, c); diff != "" {
			t.Errorf("credentials (-want +got):\n%s", diff)
		}
	})
	for name, tc := range map[string]struct {
		outcome, want string
	}{
		"Denied":  {apiclient.OAuthAccessDenied, "the login was denied on the approval page"},
		"Expired": {apiclient.OAuthExpiredToken, "the login code expired before it was approved"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			api := deviceAPI(t, apiclient.OAuthAuthorizationPending, tc.outcome)
			dir := t.TempDir()
			stdout, stderr, code := runCLIEnv(t, dir, api, nil, "login")
			if code != 1 || !strings.Contains(stderr, tc.want) {
				t.Errorf("got exit %d, stderr %q; want 1 with %q\n%s", code, stderr, tc.want, stdout)
			}
			if _, err := os.Stat(filepath.Join(dir, credentialsPath)); err == nil {
				t.Error("credentials written after a failed login")
			}
		})
	}
	t.Run("NeverApproved", func(t *testing.T) {
		t.Parallel()
		pending := make([]string, 1000)
		for i := range pending {
			pending[i] = apiclient.OAuthAuthorizationPending
		}
		api := deviceAPI(t, pending...)
		_, stderr, code := runCLIEnv(t, t.TempDir(), api, nil, "login")
		if code != 1 || !strings.Contains(stderr, "expired before it was approved") {
			t.Errorf("got exit %d, stderr %q; want the code to expire", code, stderr)
		}
		// 900 s at 5 s a poll.
		if n := strings.Count(strings.Join(api.log(), "\n"), "POST /oauth/device/token"); n != 180 {
			t.Errorf("polled %d times, want 180", n)
		}
	})
}

// streamAPI is a fake with Hangar's streaming deploy: it captures the
// archive, waits until the CLI reads the logs (so lines show while the
// deploy runs), and answers with fail ("" for success).
func streamAPI(t *testing.T, fail *apiclient.Error) *fakeAPI {
	t.Helper()
	api := newFakeAPI(t)
	logsRead := make(chan struct{}, 100)
	api.mux.HandleFunc("POST /hangar/v1/o/applications/{app}/deploy", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Content-Type") != "application/zip" || r.ContentLength <= 0 {
			apiError(w, 400, "want a zip with a length")
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil || int64(len(b)) != r.ContentLength {
			apiError(w, 400, "short body")
			return
		}
		entries, err := readZip(b)
		if err != nil {
			apiError(w, 400, err.Error())
			return
		}
		api.mu.Lock()
		api.archives[r.PathValue("app")] = entries
		api.mu.Unlock()
		select {
		case <-logsRead:
		case <-time.After(10 * time.Second):
		}
		if fail != nil {
			writeTestJSON(w, fail.StatusCode, fail)
			return
		}
		writeTestJSON(w, 200, apiclient.DeployResponse{ApplicationName: r.PathValue("app"), ApplicationVersion: "V2"})
	})
	api.mux.HandleFunc("GET /v1alpha1/o/logs/applications/{app}", func(w http.ResponseWriter, r *http.Request) {
		logsRead <- struct{}{}
		if r.URL.Query().Get("since") != "" {
			writeTestJSON(w, 200, apiclient.LogsResponse{End: true, NextTimestamp: r.URL.Query().Get("since")})
			return
		}
		body := "2026-01-01T00:00:00.000Z [deploy/deployment@V1] ==> step deployment done in 2s\n" + // the previous deploy
			"2026-01-01T00:00:01.000Z [deploy/upload@V2] ==> step upload started\n" +
			"2026-01-01T00:00:01.100Z [deploy/upload@V2] unpacked 5 files\n" +
			"2026-01-01T00:00:01.200Z [executor/e1@V1] GET / 200\n" +
			"2026-01-01T00:00:01.300Z [deploy/upload@V2] ==> step upload done in 12ms\n" +
			"2026-01-01T00:00:01.400Z [deploy/configuration@V2] ==> step configuration started\n" +
			"2026-01-01T00:00:01.500Z [deploy/configuration@V2] npm ERR! missing script\n"
		writeTestJSON(w, 200, apiclient.LogsResponse{End: true, NextTimestamp: "2026-01-01 00:00:01.500001", Body: body})
	})
	return api
}

func TestDeploy_Streams(t *testing.T) {
	t.Parallel()
	api := streamAPI(t, nil)
	dir := appDir(t, "greeter")
	stdout, stderr, code := runCLIEnv(t, dir, api, nil, "app", "deploy")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"Submitting deploy request for greeter\nArchived 4 files into ",
		"; deploying...\n==> step upload started\n    unpacked 5 files\n==> step upload done in 12ms\n" +
			"==> step configuration started\n    npm ERR! missing script\n" +
			"Submitted deploy request for greeter. Assigned version: V2\n",
		"Access your application at https://o-greeter." + api.domain() + "/",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "step deployment done") || strings.Contains(stdout, "GET / 200") {
		t.Errorf("stdout shows lines of another version or of executors:\n%s", stdout)
	}
	if !strings.Contains(stderr, "Uploading: 100% (") {
		t.Errorf("stderr lacks the progress lines:\n%s", stderr)
	}
	var names []string
	for _, e := range api.archive("greeter") {
		names = append(names, e.Name)
	}
	if diff := cmp.Diff([]string{".dbosignore", "dbos-config.yaml", "package.json", "src/", "src/main.js"}, names); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
	for _, r := range api.log() {
		if r == "POST /v1alpha1/o/applications/greeter" {
			t.Errorf("the official endpoint was used too: %v", api.log())
		}
	}
}

func TestDeploy_StreamFails(t *testing.T) {
	t.Parallel()
	api := streamAPI(t, &apiclient.Error{
		StatusCode: 400, RequestID: "r9", Message: "deploy failed at step configuration: npm run build failed",
		DetailedError: "TAIL-OF-THE-LOG",
	})
	stdout, stderr, code := runCLIEnv(t, appDir(t, "greeter"), api, nil, "app", "deploy")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "==> step configuration started\n    npm ERR! missing script\n") {
		t.Errorf("stdout lacks the failing step's output:\n%s", stdout)
	}
	want := "[r9] Failed to deploy application greeter: deploy failed at step configuration: npm run build failed.\n"
	if !strings.HasSuffix(stderr, "\n"+want) || strings.Contains(stderr, "TAIL-OF-THE-LOG") {
		t.Errorf("stderr = %q, want it to end with %q (the log tail was shown already)", stderr, want)
	}
}

func TestDeploy_RefusesLargeArchive(t *testing.T) {
	t.Parallel()
	api := streamAPI(t, nil)
	dir := appDir(t, "greeter")
	must(t, os.WriteFile(filepath.Join(dir, "big.bin"), bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, 5000), 0o644))
	// The archive is ~1 KB compressed: the limit applies to the archive,
	// not to the files.
	_, _, code := runCLIEnv(t, dir, api, map[string]string{"HANGAR_MAX_ARCHIVE_BYTES": "5000"}, "app", "deploy")
	if code != 0 {
		t.Errorf("exit %d deploying a compressible 50 KB file under a 5000-byte limit", code)
	}
	stdout, stderr, code := runCLIEnv(t, dir, api, map[string]string{"HANGAR_MAX_ARCHIVE_BYTES": "300"}, "app", "deploy")
	if code != 1 || !regexpMatch(`the archive of greeter is [\d.]+ K?i?B \(\d+ bytes\), over the limit of 300 B \(300 bytes\): nothing was uploaded`, stderr) {
		t.Errorf("got exit %d, stderr %q; want a refusal with both sizes\n%s", code, stderr, stdout)
	}
	n := 0
	for _, r := range api.log() {
		if strings.HasPrefix(r, "POST /hangar/v1/") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("%d uploads, want 1 (the refused one not sent)", n)
	}
}

func TestDeploy_FallsBackToOfficialEndpoint(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	api.mux.HandleFunc("POST /hangar/v1/o/applications/{app}/deploy", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, 404, "no route for POST "+r.URL.Path)
	})
	stdout, stderr, code := runCLIEnv(t, appDir(t, "greeter"), api, nil, "app", "deploy")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if len(api.archive("greeter")) != 5 {
		t.Errorf("the official endpoint got %v", api.archive("greeter"))
	}
}

func TestDeployments(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	versions := []apiclient.AppVersion{
		{ApplicationName: "greeter", Version: "V3", CreationTime: "2026-03-01T10:00:00.123Z", Status: "FAILED", DeployedBy: "u",
			Error: "deploy failed at step migration: exit status 1", Steps: []apiclient.DeployStep{
				{Name: "upload", DurationMS: 40}, {Name: "configuration", DurationMS: 12345},
				{Name: "migration", DurationMS: 800, Error: "exit status 1"},
			}},
		{ApplicationName: "greeter", Version: "V2", CreationTime: "2026-02-01T10:00:00Z", Status: "ACTIVE", DeployedBy: "u", RestoredFrom: "V1",
			Steps: []apiclient.DeployStep{{Name: "upload", DurationMS: 5}, {Name: "configuration", DurationMS: 1000}, {Name: "migration", DurationMS: 0}, {Name: "deployment", DurationMS: 61000}}},
		{ApplicationName: "greeter", Version: "V1", CreationTime: "2026-01-01T10:00:00Z"},
	}
	api.mux.HandleFunc("GET /v1alpha1/o/applications/greeter/versions", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, versions)
	})
	dir := appDir(t, "greeter")
	stdout, stderr, code := runCLIEnv(t, dir, api, nil, "app", "deployments")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	golden.Check(t, filepath.Join("testdata", "deployments.golden"), stdout)

	stdout, _, code = runCLIEnv(t, dir, api, nil, "app", "deployments", "greeter", "--json")
	var got []apiclient.AppVersion
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, stdout)
	}
	if diff := cmp.Diff(versions, got); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
}

func TestCappedWriter(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	w := &cappedWriter{w: &buf, limit: 10}
	zw := zip.NewWriter(w)
	fw, _ := zw.Create("x")
	fw.Write(bytes.Repeat([]byte("a"), 100))
	must(t, zw.Close())
	if w.n <= 10 || buf.Len() > 10 {
		t.Errorf("counted %d, wrote %d; want all counted, at most 10 written", w.n, buf.Len())
	}
}

func regexpMatch(pattern, s string) bool { return regexp.MustCompile(pattern).MatchString(s) }
