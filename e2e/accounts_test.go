package e2e

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestAccounts_OfficialCLI drives users, organizations and secrets through
// the official DBOS Cloud CLI against a real hangar serve: an org invite
// joined and removed, secrets created, imported, listed and deleted with the
// CLI's exact messages, stored sealed, and visible to the app after a
// redeploy; a user of another org is refused everywhere.
func TestAccounts_OfficialCLI(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	ctx := context.Background()
	aliceTok, carolTok, bobTok := h.AddUser(t, "alice"), h.AddUser(t, "carol"), h.AddUser(t, "bob")

	app := fixture(t, "greeter", map[string]func(string) string{
		"app.mjs": func(s string) string {
			return strings.Replace(s, `app.get("/healthz"`,
				`app.get("/env/:name", (req, res) => { res.type("text/plain").send(process.env[req.params.name] ?? "<unset>"); });

app.get("/healthz"`, 1)
		},
	})
	carolDir, bobDir := t.TempDir(), t.TempDir()
	for dir, tok := range map[string]string{app: aliceTok, carolDir: carolTok, bobDir: bobTok} {
		if out, code := h.ours(t, dir, "login", "--with-refresh-token", tok); code != 0 {
			t.Fatalf("dbos-cloud login: exit %d\n%s", code, out)
		}
	}
	// official runs the official CLI and fails the test on a non-zero exit.
	official := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code != 0 {
			t.Fatalf("official %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	// wantLines checks the official CLI's log lines exactly (a message's own
	// trailing space included), timestamps and colors stripped.
	wantLines := func(t *testing.T, out string, want ...string) {
		t.Helper()
		if diff := cmp.Diff(want, officialLines(out)); diff != "" {
			t.Errorf("official CLI output (-want +got):\n%s\nraw:\n%s", diff, out)
		}
	}

	t.Run("Profile", func(t *testing.T) {
		var p apiclient.Profile
		out := official(t, app, "profile", "--json")
		if err := json.Unmarshal([]byte(lastJSON(out)), &p); err != nil || p.Name != "alice" || p.Organization != "alice" || !p.IsOrgAdmin {
			t.Errorf("alice's profile = %+v (%v), want admin of alice\n%s", p, err, out)
		}
	})

	t.Run("InviteJoinListRemove", func(t *testing.T) {
		out := official(t, app, "org", "invite")
		m := regexp.MustCompile(`(?m)^\S+ \S+ \[info\]: (hgi_[A-Za-z0-9_-]+) ?$`).FindStringSubmatch(stripANSI(out))
		if m == nil {
			t.Fatalf("org invite printed no secret:\n%s", out)
		}
		secret := m[1]
		wantLines(t, out, "info: To invite a user to your organization, alice, give them this single-use secret: ", "info: "+secret)

		out = official(t, carolDir, "org", "join", "alice", secret)
		wantLines(t, out, "info: Successfully joined organization alice. Please logout and login to refresh your local context before any further commands.")
		if out, code := h.official(t, bobDir, "org", "join", "alice", secret); code == 0 || !strings.Contains(out, "invalid invite secret") {
			t.Errorf("a used invite secret works again: exit %d\n%s", code, out)
		}

		out = official(t, app, "org", "list")
		wantLines(t, out, "info: Users in organization alice: ", "info: alice", "info: carol")
		out = official(t, carolDir, "org", "list", "--json")
		var users apiclient.OrgUsers
		if err := json.Unmarshal([]byte(lastJSON(out)), &users); err != nil || users.OrgName != "alice" || !slicesEqual(users.UserNames, "alice", "carol") {
			t.Errorf("carol's org list --json = %+v (%v)\n%s", users, err, out)
		}
		if out, code := h.official(t, carolDir, "org", "invite"); code == 0 || !strings.Contains(out, "only the admin of organization alice can invite users") {
			t.Errorf("a member invited: exit %d\n%s", code, out)
		}
		if out, code := h.official(t, carolDir, "org", "remove", "alice"); code == 0 || !strings.Contains(out, "only the admin") {
			t.Errorf("a member removed the admin: exit %d\n%s", code, out)
		}

		out = official(t, app, "org", "remove", "carol")
		wantLines(t, out, "info: Successfully removed carol from organization alice")
		wantLines(t, official(t, app, "org", "list"), "info: Users in organization alice: ", "info: alice")
		var p apiclient.Profile
		if err := json.Unmarshal([]byte(lastJSON(official(t, carolDir, "profile", "--json"))), &p); err != nil || p.Organization != "carol" || !p.IsOrgAdmin {
			t.Errorf("removed carol's profile = %+v (%v), want admin of her own org again", p, err)
		}
	})

	official(t, app, "db", "provision", "appdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	official(t, app, "app", "register", "-d", "appdb")
	const apiKey = "sk-live-7f3a9c1e-do-not-log"

	t.Run("Secrets", func(t *testing.T) {
		const loaded = "info: Loaded application name from dbos-config.yaml: greeter"
		wantLines(t, official(t, app, "app", "env", "create", "-s", "API_KEY", "-v", apiKey),
			loaded, "info: Variable API_KEY successfully updated!")
		envFile := filepath.Join(app, "prod.env")
		if err := os.WriteFile(envFile, []byte("# imported\nFOO=bar\nBAZ=${FOO}-qux\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		wantLines(t, official(t, app, "app", "env", "import", "-d", "prod.env"),
			loaded, "info: Importing variables from prod.env",
			"info: Variable FOO successfully updated!",
			"info: Variable BAZ successfully updated!")
		if diff := cmp.Diff("API_KEY\nBAZ\nFOO\n", officialStdout(official(t, app, "app", "env", "list"))); diff != "" {
			t.Errorf("env list (-want +got):\n%s", diff)
		}
		wantLines(t, official(t, app, "app", "env", "delete", "-s", "FOO"),
			loaded, "info: Secrets successfully deleted for application greeter")
		if got := lastJSON(official(t, app, "app", "env", "list", "--json")); got != `["API_KEY","BAZ"]` {
			t.Errorf("env list --json = %s, want [\"API_KEY\",\"BAZ\"]", got)
		}
		for _, name := range []string{"DBOS_DATABASE_URL", "DBOS_APP_HOSTNAME", "PGPASSWORD", "1BAD"} {
			out, code := h.official(t, app, "app", "env", "create", "-s", name, "-v", "x")
			if code == 0 || !strings.Contains(out, name) {
				t.Errorf("env create %s: exit %d, want a refusal naming it\n%s", name, code, out)
			}
		}
		if out, code := h.official(t, app, "app", "env", "delete", "-s", "NOPE"); code == 0 || !strings.Contains(out, "secret NOPE not found for application greeter") {
			t.Errorf("deleting a missing secret: exit %d\n%s", code, out)
		}
	})

	t.Run("OurCLI", func(t *testing.T) {
		// Hangar's dbos-cloud speaks the same routes.
		for _, args := range [][]string{
			{"app", "env", "create", "-s", "OURS", "-v", "ours-value"},
			{"app", "env", "delete", "-s", "OURS"},
		} {
			if out, code := h.ours(t, app, args...); code != 0 {
				t.Errorf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
			}
		}
		if out, code := h.ours(t, app, "app", "env", "list"); code != 0 || !strings.Contains(out, "API_KEY") || strings.Contains(out, "OURS") {
			t.Errorf("dbos-cloud app env list: exit %d\n%s", code, out)
		}
		if out, code := h.ours(t, app, "org", "list"); code != 0 || !strings.Contains(out, "alice") {
			t.Errorf("dbos-cloud org list: exit %d\n%s", code, out)
		}
	})

	t.Run("VisibleAfterRedeploy", func(t *testing.T) {
		hc := h.HTTPClient(t)
		url := "https://alice-greeter." + h.Domain + "/env/"
		official(t, app, "app", "deploy")
		for name, want := range map[string]string{"API_KEY": apiKey, "BAZ": "bar-qux", "FOO": "<unset>", "DBOS__APPID": ""} {
			if status, body := get(t, hc, url+name); status != http.StatusOK || (want != "" && body != want) || (want == "" && body == "<unset>") {
				t.Errorf("GET /env/%s = %d %q, want %q", name, status, body, want)
			}
		}
		official(t, app, "app", "env", "create", "-s", "LATER", "-v", "v2")
		if _, body := get(t, hc, url+"LATER"); body != "<unset>" {
			t.Errorf("a secret reached the app before a redeploy: %q", body)
		}
		official(t, app, "app", "deploy")
		if _, body := get(t, hc, url+"LATER"); body != "v2" {
			t.Errorf("after the redeploy LATER = %q, want v2", body)
		}
		if strings.Contains(h.out.String(), apiKey) {
			t.Errorf("the server logged a secret's value")
		}
	})

	t.Run("SealedAtRest", func(t *testing.T) {
		conn := metadataConn(t, h)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM app_secrets").Scan(&n); err != nil || n != 3 {
			t.Fatalf("app_secrets rows = %d (%v), want 3", n, err)
		}
		// After two deploys, no row of any table (logs included) holds the
		// value, as text or as bytes.
		rows, err := conn.Query(ctx, "SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
		if err != nil {
			t.Fatal(err)
		}
		tables, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pgx.Identifier, error) {
			var s, n string
			return pgx.Identifier{s, n}, r.Scan(&s, &n)
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, tb := range tables {
			var hits int
			q := "SELECT count(*) FROM " + tb.Sanitize() + " t WHERE strpos(t::text, $1) > 0 OR strpos(t::text, $2) > 0"
			if err := conn.QueryRow(ctx, q, apiKey, hex.EncodeToString([]byte(apiKey))).Scan(&hits); err != nil {
				t.Fatalf("%s: %v", tb.Sanitize(), err)
			}
			if hits > 0 {
				t.Errorf("table %s holds the secret's value in clear", tb.Sanitize())
			}
		}
	})

	t.Run("OtherOrgRefused", func(t *testing.T) {
		bob := h.Client(t, bobTok)
		for _, tc := range []struct {
			method, path string
			body         any
		}{
			{http.MethodPost, "/v1alpha1/alice/applications/secrets", apiclient.CreateSecretRequest{ApplicationName: "greeter", SecretName: "API_KEY", ClearSecretValue: "pwned"}},
			{http.MethodGet, "/v1alpha1/alice/applications/greeter/secrets", nil},
			{http.MethodDelete, "/v1alpha1/alice/applications/greeter/secrets/API_KEY", nil},
			{http.MethodGet, "/v1alpha1/alice/users", nil},
			{http.MethodGet, "/v1alpha1/alice/secret", nil},
			{http.MethodPatch, "/v1alpha1/alice", apiclient.RenameOrgRequest{NewName: "pwned"}},
			{http.MethodDelete, "/v1alpha1/alice/alice", nil},
			{http.MethodPost, "/v1alpha1/alice/join", apiclient.JoinOrgRequest{Secret: "hgi_guess"}},
		} {
			err := bob.Do(ctx, tc.method, tc.path, tc.body, nil)
			var apiErr *apiclient.Error
			if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusForbidden {
				t.Errorf("bob %s %s = %v, want 403", tc.method, tc.path, err)
			}
		}
		// Bob's own org has no app greeter.
		err := bob.Do(ctx, http.MethodPost, "/v1alpha1/bob/applications/secrets", apiclient.CreateSecretRequest{ApplicationName: "greeter", SecretName: "K", ClearSecretValue: "v"}, nil)
		var apiErr *apiclient.Error
		if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound {
			t.Errorf("bob's secret for a greeter of his own org = %v, want 404", err)
		}
		alice := h.Client(t, aliceTok)
		if names, err := alice.Secrets(ctx, "alice", "greeter"); err != nil || !slicesEqual(names, "API_KEY", "BAZ", "LATER") {
			t.Errorf("alice's secrets after bob's attempts = %v, %v", names, err)
		}
		if u, err := alice.OrgUsers(ctx, "alice"); err != nil || !slicesEqual(u.UserNames, "alice") {
			t.Errorf("alice's org after bob's attempts = %+v, %v", u, err)
		}
	})

	t.Run("Rename", func(t *testing.T) {
		hc := h.HTTPClient(t)
		wantLines(t, official(t, app, "org", "rename", "alice", "acme"),
			"info: Successfully renamed organization alice to acme. Please logout and login to refresh your local context before any further commands.")
		if status, body := get(t, hc, "https://acme-greeter."+h.Domain+"/env/API_KEY"); status != http.StatusOK || body != apiKey {
			t.Errorf("the app at its new hostname: %d %q", status, body)
		}
		if status, _ := get(t, hc, "https://alice-greeter."+h.Domain+"/"); status == http.StatusOK {
			t.Errorf("the old hostname still serves")
		}
		// The official CLI reads the org from the profile on every command.
		if diff := cmp.Diff("API_KEY\nBAZ\nLATER\n", officialStdout(official(t, app, "app", "env", "list"))); diff != "" {
			t.Errorf("env list after the rename (-want +got):\n%s", diff)
		}
	})

	t.Run("Register", func(t *testing.T) {
		// A sign-up account registers through the official CLI, joining
		// alice's (now acme's) org with an invite.
		out := official(t, app, "org", "invite", "--json")
		var secret string
		if err := json.Unmarshal([]byte(lastJSON(out)), &secret); err != nil {
			t.Fatalf("org invite --json: %v\n%s", err, out)
		}
		dir := t.TempDir()
		signupCreds(t, h, dir)
		out = official(t, dir, "register", "-u", "dave", "-s", secret)
		if !strings.Contains(out, "Successfully registered and logged in as dave!") {
			t.Errorf("register:\n%s", out)
		}
		wantLines(t, official(t, app, "org", "list"), "info: Users in organization acme: ", "info: alice", "info: dave")

		dir2 := t.TempDir()
		signupCreds(t, h, dir2)
		if out, code := h.official(t, dir2, "register", "-u", "alice"); code == 0 || !strings.Contains(out, "taken") {
			t.Errorf("registering a taken name: exit %d\n%s", code, out)
		}
		out = official(t, dir2, "register", "-u", "erin")
		var p apiclient.Profile
		if err := json.Unmarshal([]byte(lastJSON(official(t, dir2, "profile", "--json"))), &p); err != nil || p.Organization != "erin" || !p.IsOrgAdmin {
			t.Errorf("erin's profile = %+v (%v)\n%s", p, err, out)
		}
	})

	t.Run("RevokeDisableDelete", func(t *testing.T) {
		c := &apiclient.Client{BaseURL: "https://" + h.Domain, HTTP: h.HTTPClient(t)}
		extra := h.AddUser(t, "frank")
		if err := c.Revoke(ctx, extra); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		if err := c.Revoke(ctx, "hgr_unknown"); err != nil {
			t.Errorf("revoking an unknown token: %v, want 200", err)
		}
		wantStatus(t, "refresh with a revoked token", func() error { _, err := c.Exchange(ctx, extra); return err }(), http.StatusUnauthorized)

		bob := h.Client(t, bobTok)
		hangarCmd(t, h, "users", "disable", "bob")
		wantStatus(t, "disabled bob's access token", func() error { _, err := bob.Apps(ctx, "bob"); return err }(), http.StatusUnauthorized)
		wantStatus(t, "disabled bob's refresh token", func() error { _, err := c.Exchange(ctx, bobTok); return err }(), http.StatusUnauthorized)
		out := hangarCmd(t, h, "users", "list")
		if !regexp.MustCompile(`(?m)^bob\s+bob\s+admin\s+disabled\s`).MatchString(out) || !regexp.MustCompile(`(?m)^dave\s+acme\s+member\s+active\s`).MatchString(out) {
			t.Errorf("users list:\n%s", out)
		}
		hangarCmd(t, h, "users", "delete", "bob")
		if out := hangarCmd(t, h, "users", "list"); regexp.MustCompile(`(?m)^bob\s`).MatchString(out) {
			t.Errorf("bob is listed after delete:\n%s", out)
		}
		if out, err := runOut(filepath.Join(bin, "hangar"), "users", "delete", "alice", "--data-dir", h.DataDir); err != nil {
			t.Errorf("deleting alice, the admin of acme, which dave keeps: %v\n%s", err, out)
		}
	})

	t.Run("KeyRotation", func(t *testing.T) {
		c := h.Client(t, carolTok)
		out := hangarCmd(t, h, "keys", "rotate")
		if !strings.Contains(out, "New signing key") {
			t.Errorf("keys rotate:\n%s", out)
		}
		// carol's access token, signed with the previous key, still works.
		if _, err := c.Apps(ctx, "carol"); err != nil {
			t.Errorf("a token of the previous key after rotation: %v", err)
		}
	})
}

// signupCreds writes official credentials for a new sign-up account into dir
// (what Hangar's login would write: a token, no username yet).
func signupCreds(t *testing.T, h *Hangar, dir string) {
	t.Helper()
	out := hangarCmd(t, h, "users", "signup")
	f := strings.Fields(out)
	c := &apiclient.Client{BaseURL: "https://" + h.Domain, HTTP: h.HTTPClient(t)}
	tok, err := c.Exchange(context.Background(), f[len(f)-1])
	if err != nil {
		t.Fatal(err)
	}
	// A non-empty userName spares the official CLI's interactive prompts for
	// given name, family name and company.
	b, _ := json.Marshal(apiclient.Credentials{Token: tok.AccessToken, RefreshToken: f[len(f)-1], UserName: "new"})
	if err := os.MkdirAll(filepath.Join(dir, ".dbos"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".dbos", "credentials"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// hangarCmd runs a hangar operator command on h's data dir.
func hangarCmd(t *testing.T, h *Hangar, args ...string) string {
	t.Helper()
	out, err := runOut(filepath.Join(bin, "hangar"), append(args, "--data-dir", h.DataDir)...)
	if err != nil {
		t.Fatalf("hangar %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// metadataConn connects to h's embedded metadata database.
func metadataConn(t *testing.T, h *Hangar) *pgx.Conn {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.DataDir, "postgres.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st struct {
		Port     int    `json:"port"`
		Password string `json:"password"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	cfg, err := pgx.ParseConfig("postgres://postgres@127.0.0.1/hangar?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Port, cfg.Password = uint16(st.Port), st.Password
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

var (
	ansiRE    = regexp.MustCompile(`\x1b\[[0-9;]*m`)
	logLineRE = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[(\w+)\]: (.*?) ?$`)
)

func stripANSI(s string) string { return ansiRE.ReplaceAllString(s, "") }

// officialLines returns the official CLI's log lines as "level: message",
// without timestamps and colors; npx's own output is dropped.
func officialLines(out string) []string {
	var lines []string
	for _, l := range strings.Split(stripANSI(out), "\n") {
		if m := logLineRE.FindStringSubmatch(l); m != nil {
			lines = append(lines, m[1]+": "+m[2])
		}
	}
	return lines
}

// officialStdout returns what the official CLI printed with console.log:
// the lines that are not log lines or npm notices.
func officialStdout(out string) string {
	var b strings.Builder
	for _, l := range strings.Split(stripANSI(out), "\n") {
		if l == "" || logLineRE.MatchString(l) || strings.HasPrefix(l, "npm ") {
			continue
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// lastJSON returns the last line of out that looks like JSON.
func lastJSON(out string) string {
	lines := strings.Split(strings.TrimSpace(stripANSI(out)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if l := strings.TrimSpace(lines[i]); strings.HasPrefix(l, "{") || strings.HasPrefix(l, "[") || strings.HasPrefix(l, `"`) {
			return l
		}
	}
	return ""
}

func slicesEqual(got []string, want ...string) bool { return cmp.Equal(got, want) }

func wantStatus(t *testing.T, what string, err error, status int) {
	t.Helper()
	var apiErr *apiclient.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != status {
		t.Errorf("%s: %v, want %d", what, err, status)
	}
}
