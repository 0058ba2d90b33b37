package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestDeploy_OfficialCLI is the walking skeleton: the official DBOS Cloud CLI
// deploys a real DBOS TypeScript app to Hangar, which runs its migration and
// serves it over HTTPS at https://<org>-<app>.<domain>/.
func TestDeploy_OfficialCLI(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "alice")
	hc := h.HTTPClient(t)

	// login writes the official credentials file, then deploy with the official CLI.
	login := func(t *testing.T, dir string) {
		t.Helper()
		if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
			t.Fatalf("dbos-cloud login: exit %d\n%s", code, out)
		}
	}
	deploy := func(t *testing.T, dir string) (string, int) {
		t.Helper()
		login(t, dir)
		return h.official(t, dir, "app", "deploy")
	}
	greeter := fixture(t, "greeter", nil)
	login(t, greeter)

	t.Run("Credentials", func(t *testing.T) {
		b, err := os.ReadFile(filepath.Join(greeter, ".dbos", "credentials"))
		if err != nil {
			t.Fatal(err)
		}
		var c apiclient.Credentials
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		if c.UserName != "alice" || c.Organization != "alice" || c.RefreshToken != refresh {
			t.Errorf("credentials = %+v, want user and org alice with the refresh token", c)
		}
		claims := jwt.MapClaims{}
		if _, _, err := jwt.NewParser().ParseUnverified(c.Token, claims); err != nil {
			t.Fatalf("token is not a JWT: %v", err)
		}
		if _, ok := claims["exp"]; !ok {
			t.Errorf("token has no exp claim: %v", claims)
		}
	})

	if out, code := h.official(t, greeter, "db", "provision", "appdb", "-U", "dbos_admin", "-W", "s3cret-pass"); code != 0 {
		t.Fatalf("official db provision: exit %d\n%s", code, out)
	}

	out, code := h.official(t, greeter, "app", "deploy")
	if code != 0 {
		t.Fatalf("official app deploy: exit %d\n%s", code, out)
	}
	m := urlRE.FindStringSubmatch(out)
	wantURL := "https://alice-greeter." + h.Domain + "/"
	if m == nil || m[1] != wantURL {
		t.Fatalf("deploy output names URL %v, want %s\n%s", m, wantURL, out)
	}

	t.Run("ServesWorkflow", func(t *testing.T) {
		status, body := get(t, hc, wantURL+"greet/bob")
		if status != http.StatusOK {
			t.Fatalf("GET greet/bob = %d %s", status, body)
		}
		var g struct {
			ID      int    `json:"id"`
			Name    string `json:"name"`
			Message string `json:"message"`
			Version string `json:"version"`
		}
		if err := json.Unmarshal([]byte(body), &g); err != nil {
			t.Fatalf("greet body %q: %v", body, err)
		}
		if g.ID <= 0 || g.Name != "bob" || g.Message != "Hello, bob!" || g.Version == "" {
			t.Errorf("greet = %+v, want a stored row for bob and a version", g)
		}
	})

	t.Run("StatusAndList", func(t *testing.T) {
		out, code := h.official(t, greeter, "app", "status")
		if code != 0 || !strings.Contains(out, "Status: AVAILABLE") || !strings.Contains(out, "App URL: "+wantURL) {
			t.Errorf("app status: exit %d\n%s", code, out)
		}
		out, code = h.official(t, greeter, "app", "list", "--json")
		if code != 0 {
			t.Fatalf("app list: exit %d\n%s", code, out)
		}
		var apps []apiclient.Application
		if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &apps); err != nil {
			t.Fatalf("app list --json: %v\n%s", err, out)
		}
		if len(apps) != 1 || apps[0].Name != "greeter" || apps[0].Status != "AVAILABLE" {
			t.Errorf("app list = %+v, want greeter AVAILABLE", apps)
		}
	})

	t.Run("SideBySide", func(t *testing.T) {
		second := fixture(t, "greeter", map[string]func(string) string{
			"dbos-config.yaml": func(s string) string { return strings.Replace(s, "name: greeter", "name: second", 1) },
			"app.mjs":          func(s string) string { return strings.Replace(s, `"greeter v1"`, `"second v1"`, 1) },
		})
		if out, code := deploy(t, second); code != 0 {
			t.Fatalf("deploy second: exit %d\n%s", code, out)
		}
		if _, body := get(t, hc, "https://alice-second."+h.Domain+"/"); body != "second v1" {
			t.Errorf("second app / = %q, want %q", body, "second v1")
		}
		if _, body := get(t, hc, wantURL); body != "greeter v1" {
			t.Errorf("greeter / = %q, want %q", body, "greeter v1")
		}
	})

	t.Run("RedeployServesNewCode", func(t *testing.T) {
		app := filepath.Join(greeter, "app.mjs")
		b, _ := os.ReadFile(app)
		if err := os.WriteFile(app, []byte(strings.Replace(string(b), `"greeter v1"`, `"greeter v2"`, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := deploy(t, greeter); code != 0 {
			t.Fatalf("redeploy: exit %d\n%s", code, out)
		}
		if _, body := get(t, hc, wantURL); body != "greeter v2" {
			t.Errorf("after redeploy / = %q, want %q", body, "greeter v2")
		}
		if status, body := get(t, hc, wantURL+"greet/carol"); status != http.StatusOK || !strings.Contains(body, "Hello, carol!") {
			t.Errorf("greet after redeploy = %d %s", status, body)
		}
	})

	t.Run("FailingMigration", func(t *testing.T) {
		broken := fixture(t, "greeter", map[string]func(string) string{
			"dbos-config.yaml": func(s string) string {
				s = strings.Replace(s, "name: greeter", "name: broken", 1)
				return strings.Replace(s, "- node migrate.mjs", `- node -e "console.log('migration-boom'); process.exit(3)"`, 1)
			},
		})
		out, code := deploy(t, broken)
		if code == 0 {
			t.Fatalf("deploy with a failing migration exited 0\n%s", out)
		}
		if !strings.Contains(out, "migration-boom") || !strings.Contains(out, "migration") {
			t.Errorf("deploy output does not show the migration's output:\n%s", out)
		}
		c := h.Client(t, refresh)
		a, err := c.App(context.Background(), "alice", "broken")
		if err != nil {
			t.Fatal(err)
		}
		if a.Status == "AVAILABLE" {
			t.Errorf("app with a failed migration is %s", a.Status)
		}
	})

	t.Run("BadArchives", func(t *testing.T) {
		c := h.Client(t, refresh)
		ctx := context.Background()
		if err := c.Do(ctx, http.MethodPut, "/v1alpha1/alice/applications",
			apiclient.RegisterAppRequest{Name: "evil", Database: "appdb", Language: "node"}, nil); err != nil {
			t.Fatal(err)
		}
		canary := filepath.Join(os.TempDir(), "hangar-e2e-canary")
		os.RemoveAll(canary)
		if err := os.MkdirAll(canary, 0o755); err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(canary)
		config := zipEntry{Name: "dbos-config.yaml", Body: "name: evil\nlanguage: node\nruntimeConfig:\n  start: [\"node app.mjs\"]\n"}
		for _, tc := range []struct {
			name    string
			entries []zipEntry
			want    string
		}{
			{"DotDot", []zipEntry{config, {Name: "../../../../../../.." + canary + "/dotdot", Body: "x"}}, "dotdot"},
			{"Absolute", []zipEntry{config, {Name: canary + "/abs", Body: "x"}}, "abs"},
			{"SymlinkOut", []zipEntry{config, {Name: "link", Body: canary, Symlink: true}, {Name: "link/through", Body: "x"}}, "link"},
			{"MalformedConfig", []zipEntry{{Name: "dbos-config.yaml", Body: "name: evil\nlanguage: node\nruntimeConfig:\n  start: [node app.mjs\n"}, {Name: "package.json", Body: "{}"}}, "line"},
			// 2.1 GiB of zeros deflates to about 2 MiB: over the 2 GiB unpacked cap.
			{"ZipBomb", []zipEntry{config, {Name: "bomb", Body: strings.Repeat("\x00", 1<<20), Repeat: 2100}}, "2 GiB"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				body := apiclient.DeployRequest{ApplicationArchive: base64.StdEncoding.EncodeToString(makeZip(t, tc.entries))}
				err := c.Do(ctx, http.MethodPost, "/v1alpha1/alice/applications/evil", body, nil)
				var apiErr *apiclient.Error
				if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest {
					t.Fatalf("deploy = %v, want a 400 error", err)
				}
				t.Logf("refused: %s", apiErr.Message)
				if !strings.Contains(apiErr.Message+apiErr.DetailedError, tc.want) {
					t.Errorf("error %q does not mention %q", apiErr.Message, tc.want)
				}
				left, _ := os.ReadDir(canary)
				if len(left) != 0 {
					t.Errorf("files written outside the app folder: %v", left)
				}
			})
		}
		a, err := c.App(ctx, "alice", "evil")
		if err != nil {
			t.Fatal(err)
		}
		if a.Status == "AVAILABLE" {
			t.Errorf("app evil is %s after only bad deploys", a.Status)
		}
	})

	t.Run("Unauthenticated", func(t *testing.T) {
		for _, tok := range []string{"", "garbage", forgedToken(t)} {
			c := &apiclient.Client{BaseURL: "https://" + h.Domain, HTTP: hc, Token: tok}
			_, err := c.Apps(context.Background(), "alice")
			var apiErr *apiclient.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnauthorized {
				t.Errorf("token %.10q: %v, want 401", tok, err)
			}
		}
	})

	// A redeploy starts the new executor while the migrations run, its
	// database held until they are done: the app loads meanwhile but its
	// first query sees what they made.
	t.Run("ExecutorStartsDuringMigrations", func(t *testing.T) {
		dir := fixture(t, "greeter", map[string]func(string) string{
			"dbos-config.yaml": func(s string) string {
				return strings.Replace(s, "- node migrate.mjs", "- node migrate.mjs\n    - node mark.mjs", 1)
			},
			"app.mjs": func(s string) string {
				return strings.Replace(s, "DBOS.setConfig(", `const startedAt = Date.now();
try {
  const { rows } = await pool.query("SELECT (extract(epoch FROM at) * 1000)::bigint AS at FROM marks WHERE kind = 'migrated'");
  console.log("early-start: started " + startedAt + " migrated " + (rows[0]?.at ?? "never"));
} catch (err) {
  console.log("early-start: started " + startedAt + " query failed: " + err.message);
}
DBOS.setConfig(`, 1)
			},
		})
		mark := `import pg from "pg";
await new Promise((r) => setTimeout(r, 2000));
const client = new pg.Client({ connectionString: process.env.DBOS_DATABASE_URL });
await client.connect();
await client.query("CREATE TABLE IF NOT EXISTS marks (kind text PRIMARY KEY, at timestamptz NOT NULL)");
await client.query("INSERT INTO marks VALUES ('migrated', clock_timestamp()) ON CONFLICT (kind) DO UPDATE SET at = clock_timestamp()");
await client.end();
`
		if err := os.WriteFile(filepath.Join(dir, "mark.mjs"), []byte(mark), 0o644); err != nil {
			t.Fatal(err)
		}
		if out, code := deploy(t, dir); code != 0 {
			t.Fatalf("redeploy: exit %d\n%s", code, out)
		}
		out, code := h.ours(t, dir, "app", "logs")
		if code != 0 {
			t.Fatalf("app logs: exit %d\n%s", code, out)
		}
		m := regexp.MustCompile(`early-start: started (\d+) (.*)`).FindAllStringSubmatch(out, -1)
		if len(m) != 1 {
			t.Fatalf("want one early-start line in the logs, got %d:\n%s", len(m), out)
		}
		started, _ := strconv.ParseInt(m[0][1], 10, 64)
		migrated, err := strconv.ParseInt(strings.TrimPrefix(m[0][2], "migrated "), 10, 64)
		if err != nil {
			t.Fatalf("the app's first query did not see the migrations' table: %q", m[0][0])
		}
		if started >= migrated {
			t.Errorf("the app started at %d, after the migrations ended at %d: want it started during them", started, migrated)
		}
	})
}

// forgedToken is a well-formed JWT for alice signed with the wrong key.
func forgedToken(t *testing.T) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "alice", "aud": "dbos-cloud-api", "iss": "hangar", "exp": 4102444800,
	}).SignedString([]byte("not-the-server-key-not-the-server-key"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
