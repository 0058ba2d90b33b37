package cli

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// runCLI runs dbos-cloud args in dir against api; waits return at once.
func runCLI(t *testing.T, dir string, api *fakeAPI, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	vars := map[string]string{"DBOS_DOMAIN": api.domain(), "SSL_CERT_FILE": api.caFile}
	e := &env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &errOut, dir: dir,
		getenv: func(k string) string { return vars[k] },
		sleep:  func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
	}
	code = e.run(t.Context(), args)
	return out.String(), errOut.String(), code
}

// appDir makes a node app directory named app, logged in to the fake.
func appDir(t *testing.T, app string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"package.json":     `{"name":"` + app + `"}`,
		defaultConfigFile:  "name: " + app + "\nlanguage: node\n",
		"src/main.js":      "console.log(1)",
		"node_modules/x/y": "ignored",
		".dbosignore":      "*.log\n",
		"debug.log":        "ignored",
	}
	for name, body := range files {
		must(t, os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755))
		must(t, os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644))
	}
	writeTestCredentials(t, dir, unsignedJWT, "")
	return dir
}

func apiError(w http.ResponseWriter, status int, msg string) {
	writeTestJSON(w, status, apiclient.Error{Message: msg, StatusCode: status, RequestID: "req-1"})
}

func TestDeploy_ExistingApp(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	dir := appDir(t, "greeter")
	stdout, stderr, code := runCLI(t, dir, api, "app", "deploy")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"Application greeter exists, updating...",
		"Submitted deploy request for greeter. Assigned version: v1",
		"Successfully deployed greeter!",
		"Access your application at https://o-greeter." + api.domain() + "/",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	var names []string
	for _, e := range api.archive("greeter") {
		names = append(names, e.Name)
	}
	want := []string{".dbosignore", "dbos-config.yaml", "package.json", "src/", "src/main.js"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("archive entries (-want +got):\n%s", diff)
	}
}

func TestDeploy_RegistersNewApp(t *testing.T) {
	t.Parallel()
	t.Run("OneInstance", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t)
		api.mux.HandleFunc("GET /v1alpha1/o/applications/{app}", func(w http.ResponseWriter, r *http.Request) {
			apiError(w, 404, "application "+r.PathValue("app")+" not found")
		})
		api.mux.HandleFunc("GET /v1alpha1/o/databases", func(w http.ResponseWriter, r *http.Request) {
			writeTestJSON(w, 200, []apiclient.UserDBInstance{{PostgresInstanceName: "main"}})
		})
		var reg apiclient.RegisterAppRequest
		api.mux.HandleFunc("PUT /v1alpha1/o/applications", func(w http.ResponseWriter, r *http.Request) {
			json.NewDecoder(r.Body).Decode(&reg)
			writeTestJSON(w, 200, "app-uuid")
		})
		stdout, stderr, code := runCLI(t, appDir(t, "greeter"), api, "app", "deploy", "--enable-timetravel")
		if code != 0 {
			t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
		}
		want := apiclient.RegisterAppRequest{Name: "greeter", Database: "main", Language: "node", ProvenanceDB: "main"}
		if diff := cmp.Diff(want, reg); diff != "" {
			t.Errorf("register request (-want +got):\n%s", diff)
		}
		for _, line := range []string{"Using database instance: main", "greeter ID: app-uuid", "Successfully registered greeter!", "Successfully deployed greeter!"} {
			if !strings.Contains(stdout, line) {
				t.Errorf("stdout lacks %q:\n%s", line, stdout)
			}
		}
	})
	t.Run("NoInstanceNoTerminal", func(t *testing.T) {
		t.Parallel()
		api := newFakeAPI(t)
		api.mux.HandleFunc("GET /v1alpha1/o/applications/{app}", func(w http.ResponseWriter, r *http.Request) {
			apiError(w, 404, "application "+r.PathValue("app")+" not found")
		})
		api.mux.HandleFunc("GET /v1alpha1/o/databases", func(w http.ResponseWriter, r *http.Request) {
			writeTestJSON(w, 200, []apiclient.UserDBInstance{})
		})
		_, stderr, code := runCLI(t, appDir(t, "greeter"), api, "app", "deploy")
		if code != 1 || !strings.Contains(stderr, "-d <instance>") {
			t.Errorf("exit %d, stderr %q; want 1 and a hint to pass -d", code, stderr)
		}
	})
}

func TestErrors_APIError(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	api.mux.HandleFunc("/v1alpha1/o/databases", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 404, apiclient.Error{Message: "no route for GET /v1alpha1/o/databases", StatusCode: 404, RequestID: "abc", DetailedError: "details"})
	})
	stdout, stderr, code := runCLI(t, appDir(t, "greeter"), api, "db", "list")
	want := "[abc] Failed to retrieve info: no route for GET /v1alpha1/o/databases.\ndetails\nHint: this Hangar server does not implement this command yet; upgrade the server\n"
	if code != 1 || stderr != want || stdout != "" {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and stderr %q", code, stdout, stderr, want)
	}
}

func TestErrors_Usage(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	for _, args := range [][]string{
		{"app", "nope"},
		{"app", "deploy", "--nope"},
		{"app", "status", "a", "b"},
		{"db", "provision"},
		{"app", "env", "create", "-s", "X"},
		{"app", "logs", "--last", "0"},
		{"app", "logs", "--last", "x"},
	} {
		t.Run(strings.Join(args, "_"), func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runCLI(t, t.TempDir(), api, args...)
			if code != 2 || !strings.Contains(stderr, "--help' for usage") {
				t.Errorf("exit %d, stderr %q; want 2 and a usage hint", code, stderr)
			}
		})
	}
}

func TestErrors_NotLoggedIn(t *testing.T) {
	t.Parallel()
	_, stderr, code := runCLI(t, t.TempDir(), newFakeAPI(t), "app", "list")
	if code != 1 || !strings.Contains(stderr, "dbos-cloud login") {
		t.Errorf("exit %d, stderr %q; want 1 and how to log in", code, stderr)
	}
}

func jwtWithExp(exp time.Time) string {
	p, _ := json.Marshal(map[string]any{"sub": "u", "exp": exp.Unix()})
	return "eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString(p) + "."
}

func TestSession_RefreshesExpiredToken(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	fresh := jwtWithExp(time.Now().Add(time.Hour))
	api.mux.HandleFunc("POST /oauth/token", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.TokenRequest
		json.NewDecoder(r.Body).Decode(&req)
		if req.GrantType != "refresh_token" || req.RefreshToken != "refresh-1" {
			apiError(w, 401, "bad refresh token")
			return
		}
		writeTestJSON(w, 200, apiclient.TokenResponse{AccessToken: fresh, TokenType: "Bearer", ExpiresIn: 3600})
	})
	var auth string
	api.mux.HandleFunc("GET /v1alpha1/user/profile", func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		writeTestJSON(w, 200, apiclient.Profile{Name: "u", Email: "u@example.com", Organization: "o", SubscriptionPlan: "pro"})
	})
	dir := t.TempDir()
	writeTestCredentials(t, dir, jwtWithExp(time.Now().Add(-time.Minute)), "refresh-1")
	stdout, stderr, code := runCLI(t, dir, api, "profile")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if want := "Name: u\nEmail: u@example.com\nSubscription Plan: pro\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}
	if auth != "Bearer "+fresh {
		t.Errorf("profile called with %q, want the refreshed token", auth)
	}
	var c apiclient.Credentials
	b, err := os.ReadFile(filepath.Join(dir, credentialsPath))
	must(t, err)
	must(t, json.Unmarshal(b, &c))
	if want := (apiclient.Credentials{Token: fresh, RefreshToken: "refresh-1", UserName: "u", Organization: "o"}); c != want {
		t.Errorf("credentials %+v, want %+v", c, want)
	}
}

func TestTokenExpired(t *testing.T) {
	t.Parallel()
	now := time.Now()
	for _, c := range []struct {
		name  string
		token string
		want  bool
	}{
		{"NoExp", unsignedJWT, false},
		{"Future", jwtWithExp(now.Add(time.Minute)), false},
		{"Past", jwtWithExp(now.Add(-time.Minute)), true},
		{"NotJWT", "hgr_opaque", true},
		{"BadPayload", "a.!!.c", true},
	} {
		if got := tokenExpired(c.token, now); got != c.want {
			t.Errorf("%s: tokenExpired = %t, want %t", c.name, got, c.want)
		}
	}
}

func TestLogs_PaginatesAndFollows(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	pages := map[string]apiclient.LogsResponse{
		"last=0&limit=2":    {Body: "l1\nl2\n", NextTimestamp: "t2"},
		"limit=2&since=t2":  {Body: "l3\n", NextTimestamp: "t3", End: true},
		"limit=2&since=t3":  {Body: "", End: true},
		"limit=2&since=t3 ": {},
	}
	api.mux.HandleFunc("GET /v1alpha1/o/logs/applications/greeter", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		q.Del("format")
		p, ok := pages[q.Encode()]
		if !ok {
			apiError(w, 400, "unexpected query "+q.Encode())
			return
		}
		writeTestJSON(w, 200, p)
	})
	dir := appDir(t, "greeter")
	stdout, stderr, code := runCLI(t, dir, api, "app", "logs", "-p", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if want := "Loaded application name from dbos-config.yaml: greeter\nl1\nl2\nl3\n"; stdout != want {
		t.Errorf("stdout %q, want %q", stdout, want)
	}

	// --follow polls from next_timestamp until interrupted: here the second
	// wait is cut short.
	ctx, cancel := context.WithCancel(t.Context())
	waits := 0
	var out bytes.Buffer
	e := &env{
		stdin: strings.NewReader(""), stdout: &out, stderr: &bytes.Buffer{}, dir: dir,
		getenv: func(k string) string {
			return map[string]string{"DBOS_DOMAIN": api.domain(), "SSL_CERT_FILE": api.caFile}[k]
		},
		sleep: func(ctx context.Context, d time.Duration) error {
			if waits++; waits == 2 {
				cancel()
			}
			return ctx.Err()
		},
	}
	if code := e.run(ctx, []string{"app", "logs", "greeter", "-p", "2", "--follow"}); code != 0 {
		t.Fatalf("follow: exit %d", code)
	}
	if want := "l1\nl2\nl3\n"; out.String() != want {
		t.Errorf("follow stdout %q, want %q", out.String(), want)
	}
	if waits != 2 {
		t.Errorf("waited %d times, want 2", waits)
	}
}

func TestVerbose_TracesRequestsWithoutTokens(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	_, stderr, code := runCLI(t, appDir(t, "greeter"), api, "--verbose", "app", "list")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	for _, want := range []string{"http: GET https://" + api.domain() + "/v1alpha1/user/profile -> 200 OK (", "http: GET https://" + api.domain() + "/v1alpha1/o/applications -> 200 OK ("} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, unsignedJWT) {
		t.Errorf("stderr shows the token:\n%s", stderr)
	}
}

func TestSecrets_Import(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	var got []apiclient.CreateSecretRequest
	api.mux.HandleFunc("POST /v1alpha1/o/applications/secrets", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.CreateSecretRequest
		json.NewDecoder(r.Body).Decode(&req)
		got = append(got, req)
	})
	dir := appDir(t, "greeter")
	must(t, os.WriteFile(filepath.Join(dir, ".env"), []byte("# c\nA=1\nexport B=\"x\\ny\"\nC='${A}'\nD=${A}-$B-${NOPE:-def} # note\nE=\\$A\n"), 0o600))
	stdout, stderr, code := runCLI(t, dir, api, "app", "secrets", "import", "-d", ".env")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	var want []apiclient.CreateSecretRequest
	for _, kv := range [][2]string{{"A", "1"}, {"B", "x\ny"}, {"C", "1"}, {"D", "1-x\ny-def"}, {"E", "$A"}} {
		want = append(want, apiclient.CreateSecretRequest{ApplicationName: "greeter", SecretName: kv[0], ClearSecretValue: kv[1]})
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("secrets (-want +got):\n%s", diff)
	}
}

// TestCommands_Requests checks the method, path and body each command sends.
func TestCommands_Requests(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string // "METHOD path body"
	}{
		{[]string{"app", "update", "greeter", "--executors-memory-mib", "1024"}, `PATCH /v1alpha1/o/applications/greeter {"executors_memory_mib":1024,"min_vms":null,"max_vms":null}`},
		{[]string{"app", "env", "delete", "-s", "K"}, `DELETE /v1alpha1/o/applications/greeter/secrets/K `},
		{[]string{"wf", "list", "-S", "ERROR"}, `POST /v1alpha1/o/applications/greeter/workflows {"limit":10,"status":"ERROR"}`},
		{[]string{"wf", "q", "list", "-o", "5", "-q", "jobs"}, `POST /v1alpha1/o/applications/greeter/queues {"offset":5,"queue_name":"jobs"}`},
		{[]string{"wf", "cancel", "-w", "wf-1"}, `POST /appsadmin/o/applications/greeter/workflows/wf-1/cancel {}`},
		{[]string{"db", "link", "ext", "-H", "db.example.com", "-W", "password1"}, `POST /v1alpha1/o/databases/byod {"Name":"ext","HostName":"db.example.com","Port":5432,"Password":"password1","captureProvenance":false}`},
		{[]string{"db", "destroy", "d1"}, `DELETE /v1alpha1/o/databases/userdb/d1 `},
		{[]string{"dashboard", "launch"}, `PUT /v1alpha1/o/dashboard {}`},
		{[]string{"org", "rename", "o", "o2"}, `PATCH /v1alpha1/o {"newName":"o2"}`},
		{[]string{"org", "join", "other", "s3cret"}, `POST /v1alpha1/other/join {"secret":"s3cret"}`},
		{[]string{"org", "remove", "bob"}, `DELETE /v1alpha1/o/bob `},
		{[]string{"revoke", "tok"}, `POST /oauth/revoke {"token":"tok"}`},
	} {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t)
			var got string
			api.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/v1alpha1/user/profile" {
					api.base.ServeHTTP(w, r)
					return
				}
				var body bytes.Buffer
				body.ReadFrom(r.Body)
				got = fmt.Sprintf("%s %s %s", r.Method, r.URL.Path, strings.TrimSpace(body.String()))
				writeTestJSON(w, 200, "ok")
			})
			stdout, stderr, code := runCLI(t, appDir(t, "greeter"), api, c.args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
			}
			if got != c.want {
				t.Errorf("request\n got %s\nwant %s", got, c.want)
			}
		})
	}
}
