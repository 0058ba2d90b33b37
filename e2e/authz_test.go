package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hangar-oss/hangar/internal/api"
	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/console"
	"github.com/hangar-oss/hangar/internal/secretbox"
)

// authzFixture is what the authorization suite works with: org A ("ava",
// with the member amy, the database avadb, the deployed app greeter and its
// secret API_KEY) and org B ("ben", with bendb and the registered app
// benapp), and the clients of both.
type authzFixture struct {
	h          *Hangar
	hc         *http.Client
	ava, ben   *apiclient.Client
	benRefresh string
	version    string // greeter's deployed version
	benInvite  string // a valid invite to org B
	bendbPort  int
	workflowID string // a workflow greeter ran
	executorID string // an executor of greeter's
}

// A's names: the path values of every request of B's against org A; "id",
// a workflow of greeter's, and "executor", one of its executors, are added
// by names.
var orgA = map[string]string{"org": "ava", "app": "greeter", "db": "avadb", "name": "API_KEY", "username": "amy"}

// names returns A's names.
func (f *authzFixture) names() map[string]string {
	names := map[string]string{"id": f.workflowID, "executor": f.executorID}
	for k, v := range orgA {
		names[k] = v
	}
	return names
}

// routeCase is how the authorization suite exercises one route. An
// org-scoped route (its pattern has {org}) is sent by B with A's names and a
// body that would be valid if B were allowed: it must answer 403 or 404 and
// change nothing. A route that is not org-scoped has a check of its own.
type routeCase struct {
	// path replaces the path built from the pattern with A's names.
	path string
	// query is appended to the path.
	query string
	// body is sent as JSON; a url.Values is sent form-encoded.
	body any
	// ownOrg also sends the request with {org} = B's own org, where the
	// names of A's it carries (in the path or the body) do not exist: it
	// must answer 404. Routes with {app} or {db} always do.
	ownOrg bool
	// check judges the answer of a route that is not org-scoped; B's token
	// is sent with it.
	check func(t *testing.T, f *authzFixture, status int, body []byte)
	// authed marks a route that is not org-scoped but needs a valid token.
	authed bool
}

// routeCases has a case for every route of api.Routes():
// TestAuthorization_EveryRoute fails when one is missing.
func routeCases(f *authzFixture) map[string]routeCase {
	return map[string]routeCase{
		// Not org-scoped.
		"POST /oauth/token": {
			// Public by design: the refresh token is the credential, and
			// the access token it gives acts as its own user only.
			body: apiclient.TokenRequest{GrantType: "refresh_token", RefreshToken: f.benRefresh},
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				var tok apiclient.TokenResponse
				if status != http.StatusOK || json.Unmarshal(body, &tok) != nil {
					t.Fatalf("got %d %s, want 200 and an access token", status, body)
				}
				f.wantProfile(t, tok.AccessToken, "ben")
			},
		},
		"POST /oauth/revoke": {
			// Public by design (RFC 7009): possession of a refresh token is
			// enough to revoke it; a token B does not hold changes nothing.
			body:  apiclient.RevokeRequest{Token: auth.NewRefreshToken()},
			check: wantStatus200,
		},
		"GET /v1alpha1/user/profile": {
			authed: true,
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				var p apiclient.Profile
				if status != http.StatusOK || json.Unmarshal(body, &p) != nil || p.Name != "ben" || p.Organization != "ben" {
					t.Errorf("got %d %s, want B's own profile", status, body)
				}
			},
		},
		"PUT /v1alpha1/user": {
			// Registration acts on the token's own account: B, registered
			// already, cannot take A's name.
			authed: true,
			body:   apiclient.RegisterUserRequest{Name: "ava"},
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusConflict {
					t.Errorf("got %d %s, want 409", status, body)
				}
				f.wantProfile(t, f.ben.Token, "ben")
			},
		},
		"PUT /hangar/v1/user/password": {
			// Users set their own password only: it is B's that is set (a
			// second change needs the current one), and A's rows are
			// unchanged.
			authed: true,
			body:   apiclient.SetPasswordRequest{Password: "ben-password-1"},
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusNoContent {
					t.Fatalf("got %d %s, want 204", status, body)
				}
				status, body = f.send(t, http.MethodPut, "/hangar/v1/user/password", f.ben.Token, apiclient.SetPasswordRequest{Password: "ben-password-2"})
				if status != http.StatusBadRequest || !strings.Contains(string(body), "current") {
					t.Errorf("B's second password change without the current one: %d %s, want 400", status, body)
				}
			},
		},
		"POST /oauth/device/code": {
			// Public by design: it starts a device login bound to no
			// account until someone signed in approves it.
			body:  url.Values{"client_id": {"dbos-cloud"}},
			check: wantStatus200,
		},
		"POST /oauth/device/token": {
			// Public by design: the device code is the credential.
			body: url.Values{"grant_type": {apiclient.GrantTypeDeviceCode}, "device_code": {"hgd_" + auth.NewSecret(32)}},
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusBadRequest || !strings.Contains(string(body), apiclient.OAuthInvalidGrant) {
					t.Errorf("got %d %s, want 400 %s", status, body, apiclient.OAuthInvalidGrant)
				}
			},
		},
		"GET /device": {
			// Public by design: the approval page. Its session is a
			// cookie, so B's bearer token signs nobody in.
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusOK || strings.Contains(string(body), "Signed in") {
					t.Errorf("got %d, want the page with nobody signed in:\n%s", status, body)
				}
			},
		},
		"POST /device": {
			// The page's forms need its CSRF cookie.
			body: url.Values{"action": {"approve"}, "user_code": {"BCDF-GHJK"}},
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusForbidden {
					t.Errorf("got %d, want 403:\n%s", status, body)
				}
			},
		},
		"POST /hangar/v1/signin": {
			// Public by design: the password is the credential, and wrong
			// ones are limited per name and address.
			body: apiclient.SignInRequest{Username: "ava", Password: "not-avas-password"},
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusUnauthorized {
					t.Errorf("got %d %s, want 401", status, body)
				}
			},
		},
		"/": {
			path: "/v1alpha1/ava/no/such/route",
			check: func(t *testing.T, f *authzFixture, status int, body []byte) {
				if status != http.StatusNotFound {
					t.Errorf("got %d %s, want 404", status, body)
				}
			},
		},

		// Users and organizations.
		"GET /v1alpha1/{org}/secret": {},
		// B's own valid invite does not open org A.
		"POST /v1alpha1/{org}/join":         {body: apiclient.JoinOrgRequest{Secret: f.benInvite}},
		"GET /v1alpha1/{org}/users":         {},
		"PATCH /v1alpha1/{org}":             {body: apiclient.RenameOrgRequest{NewName: "pwned"}},
		"DELETE /v1alpha1/{org}/{username}": {ownOrg: true},
		"PUT /v1alpha1/{org}/dashboard":     {body: struct{}{}},
		"GET /v1alpha1/{org}/dashboard":     {},
		"DELETE /v1alpha1/{org}/dashboard":  {},

		// Secrets.
		"POST /v1alpha1/{org}/applications/secrets": {
			ownOrg: true,
			body:   apiclient.CreateSecretRequest{ApplicationName: "greeter", SecretName: "API_KEY", ClearSecretValue: "pwned"},
		},
		"GET /v1alpha1/{org}/applications/{app}/secrets":           {},
		"DELETE /v1alpha1/{org}/applications/{app}/secrets/{name}": {},

		// Applications.
		"PUT /v1alpha1/{org}/applications": {
			// In B's own org, an app on A's database instance.
			ownOrg: true,
			body:   apiclient.RegisterAppRequest{Name: "intruder", Database: "avadb", Language: "node"},
		},
		"GET /v1alpha1/{org}/applications":        {},
		"GET /v1alpha1/{org}/applications/{app}":  {},
		"POST /v1alpha1/{org}/applications/{app}": {body: apiclient.DeployRequest{PreviousVersion: f.version}},
		"POST /v1alpha1/{org}/applications/{app}/changedbinstance": {
			body: apiclient.DeployRequest{PreviousVersion: f.version, TargetDatabaseName: "avadb"},
		},
		"PATCH /v1alpha1/{org}/applications/{app}": {
			body: apiclient.UpdateAppRequest{ExecutorsMemoryMib: apiclient.FlexInt{Value: 1024, Set: true}},
		},
		"DELETE /v1alpha1/{org}/applications/{app}":         {body: apiclient.DeleteAppRequest{DropDB: true}},
		"GET /v1alpha1/{org}/applications/{app}/versions":   {},
		"GET /v1alpha1/{org}/logs/applications/{app}":       {query: "?last=0&limit=100"},
		"GET /hangar/v1/{org}/applications/{app}/events":    {},
		"GET /hangar/v1/{org}/applications/{app}/executors": {},
		"GET /hangar/v1/{org}/applications/{app}/metrics":   {query: "?range=week"},
		"POST /hangar/v1/{org}/applications/{app}/deploy":   {query: "?previous_version=" + f.version},
		// A shell on A's executor; Unchanged checks that it never ran.
		"POST /vmsadmin/{org}/applications/{app}/vms/{executor}/vmcmd": {body: apiclient.ExecutorCommandRequest{Command: "touch pwned"}},

		// Workflows, in greeter's system database.
		"POST /v1alpha1/{org}/applications/{app}/workflows":               {body: apiclient.ListWorkflowsRequest{LoadInput: true, LoadOutput: true}},
		"POST /v1alpha1/{org}/applications/{app}/queues":                  {body: apiclient.ListWorkflowsRequest{}},
		"POST /appsadmin/{org}/applications/{app}/workflows":              {body: apiclient.ListWorkflowsRequest{LoadInput: true, LoadOutput: true}},
		"POST /appsadmin/{org}/applications/{app}/queues":                 {body: apiclient.ListWorkflowsRequest{}},
		"GET /appsadmin/{org}/applications/{app}/workflows/{id}":          {},
		"GET /appsadmin/{org}/applications/{app}/workflows/{id}/steps":    {},
		"POST /appsadmin/{org}/applications/{app}/workflows/{id}/cancel":  {body: struct{}{}},
		"POST /appsadmin/{org}/applications/{app}/workflows/{id}/resume":  {body: struct{}{}},
		"POST /appsadmin/{org}/applications/{app}/workflows/{id}/restart": {body: struct{}{}},
		"POST /hangar/v1/{org}/applications/{app}/workflows/{id}/fork":    {body: apiclient.ForkWorkflowRequest{StartStep: 1}},

		// Database instances.
		"POST /v1alpha1/{org}/databases/userdb": {
			body: apiclient.ProvisionDBRequest{Name: "intruderdb", AdminName: "intruder", AdminPassword: "s3cret-pass"},
		},
		"GET /v1alpha1/{org}/databases":                          {},
		"GET /v1alpha1/{org}/databases/userdb/info/{db}":         {},
		"DELETE /v1alpha1/{org}/databases/userdb/{db}":           {},
		"POST /v1alpha1/{org}/databases/userdb/{db}/credentials": {body: apiclient.ResetPasswordRequest{Password: "pwned-pass1"}},
		"POST /v1alpha1/{org}/databases/userdb/{db}/restore": {
			body: apiclient.RestoreDBRequest{RestoreName: "stolen", RestoreTimestamp: time.Now().UTC().Format(time.RFC3339)},
		},
		"POST /v1alpha1/{org}/databases/byod": {
			body: apiclient.LinkDBRequest{Name: "linked", HostName: "localhost", Port: f.bendbPort, Password: "s3cret-pass", DBOSAdminName: "ben_admin"},
		},
		"DELETE /v1alpha1/{org}/databases/byod/{db}": {},
	}
}

func wantStatus200(t *testing.T, _ *authzFixture, status int, body []byte) {
	if status != http.StatusOK {
		t.Errorf("got %d %s, want 200", status, body)
	}
}

// TestAuthorization_EveryRoute fails when a route of the API has no case in
// the authorization suite, or a case names a route that is gone.
func TestAuthorization_EveryRoute(t *testing.T) {
	t.Parallel()
	cases := routeCases(&authzFixture{})
	routes := api.Routes()
	var missing, stale []string
	for _, p := range routes {
		if _, ok := cases[p]; !ok {
			missing = append(missing, p)
		}
	}
	for p := range cases {
		if !slices.Contains(routes, p) {
			stale = append(stale, p)
		}
	}
	if len(missing) > 0 {
		t.Errorf("routes without a case in routeCases (e2e/authz_test.go): add one saying what a user of another org gets:\n%s", strings.Join(missing, "\n"))
	}
	if len(stale) > 0 {
		t.Errorf("cases in routeCases for routes the API no longer has:\n%s", strings.Join(stale, "\n"))
	}
	ccases := consoleCases()
	for _, p := range console.Routes() {
		if _, ok := ccases[p]; !ok {
			t.Errorf("console route %s has no case in consoleCases (e2e/authz_console_test.go)", p)
		}
	}
	for p := range ccases {
		if !slices.Contains(console.Routes(), p) {
			t.Errorf("case in consoleCases for a route the console no longer has: %s", p)
		}
	}
}

// TestAuthorization drives every route of the API as a user of org B, with
// B's own valid token, against org A's names: each answers 403 or 404, or,
// when it is not org-scoped, acts on B alone; and org A is the same
// afterwards, through its own eyes and row by row in the metadata database.
// Invalid tokens (expired, wrong key, alg none, a disabled user's, …) get
// 401 on every authenticated route. Last, the databases of one org's app are
// out of reach of the other org's roles.
func TestAuthorization(t *testing.T) {
	t.Parallel()
	f := setupAuthz(t)
	ctx := context.Background()
	before := f.snapshot(t)
	cases := routeCases(f)

	t.Run("OtherOrg", func(t *testing.T) {
		for _, pattern := range api.Routes() {
			c, ok := cases[pattern]
			if !ok {
				continue // TestAuthorization_EveryRoute reports it
			}
			t.Run(pattern, func(t *testing.T) {
				method, path := requestOf(t, pattern, c, f.names())
				status, body := f.send(t, method, path, f.ben.Token, c.body)
				if c.check != nil {
					c.check(t, f, status, body)
					return
				}
				wantRefused(t, status, body, http.StatusForbidden, http.StatusNotFound)
			})
		}
	})

	t.Run("Console", f.consoleOtherOrg)

	t.Run("OwnOrgOthersNames", func(t *testing.T) {
		names := f.names()
		names["org"] = "ben"
		for _, pattern := range api.Routes() {
			c := cases[pattern]
			if !strings.Contains(pattern, "{org}") || !(c.ownOrg || strings.Contains(pattern, "{app}") || strings.Contains(pattern, "{db}")) {
				continue
			}
			t.Run(pattern, func(t *testing.T) {
				method, path := requestOf(t, pattern, c, names)
				status, body := f.send(t, method, path, f.ben.Token, c.body)
				wantRefused(t, status, body, http.StatusNotFound)
			})
		}
		// B's own app moved to A's database instance.
		archive := makeZip(t, []zipEntry{{Name: "package.json", Body: `{"name":"benapp"}`}})
		status, body := f.send(t, http.MethodPost, "/v1alpha1/ben/applications/benapp/changedbinstance", f.ben.Token,
			map[string]string{"application_archive": base64.StdEncoding.EncodeToString(archive), "target_database_name": "avadb"})
		wantRefused(t, status, body, http.StatusNotFound)
		// B's org renamed to A's name.
		status, body = f.send(t, http.MethodPatch, "/v1alpha1/ben", f.ben.Token, apiclient.RenameOrgRequest{NewName: "ava"})
		wantRefused(t, status, body, http.StatusConflict)
	})

	t.Run("InvalidTokens", func(t *testing.T) {
		for name, tok := range f.invalidTokens(t) {
			t.Run(name, func(t *testing.T) {
				for _, pattern := range api.Routes() {
					c := cases[pattern]
					if !strings.Contains(pattern, "{org}") && !c.authed {
						continue
					}
					method, path := requestOf(t, pattern, c, f.names())
					status, body := f.send(t, method, path, tok, c.body)
					if status != http.StatusUnauthorized {
						t.Errorf("%s %s: got %d %s, want 401", method, path, status, body)
					}
				}
			})
		}
	})

	t.Run("RevokedRefreshToken", func(t *testing.T) {
		refresh := lastWord(hangarCmd(t, f.h, "users", "token", "ben"))
		if _, err := f.ben.Exchange(ctx, refresh); err != nil {
			t.Fatalf("a new refresh token: %v", err)
		}
		if err := f.ben.Revoke(ctx, refresh); err != nil {
			t.Fatalf("revoke: %v", err)
		}
		_, err := f.ben.Exchange(ctx, refresh)
		wantStatus(t, "exchanging a revoked refresh token", err, http.StatusUnauthorized)
	})

	t.Run("Unchanged", func(t *testing.T) {
		// Executor health is the app's runtime state, which no request of
		// B's touches unless it deploys or deletes: versions and status say so.
		if diff := cmp.Diff(before, f.snapshot(t), cmpopts.IgnoreFields(apiclient.Application{}, "AppHealth")); diff != "" {
			t.Errorf("org A changed while B tried its routes (-before +after):\n%s", diff)
		}
		// B's commands on A's executor did not run; A's own do.
		res, err := f.ava.ExecutorCommand(ctx, "ava", "greeter", f.executorID, "ls")
		if err != nil || res.ExitCode != 0 || strings.Contains(res.Stdout, "pwned") || !strings.Contains(res.Stdout, "package.json") {
			t.Errorf("A's ls on its executor: %+v, %v; want the app's files and nothing B made", res, err)
		}
	})

	t.Run("DatabaseIsolation", func(t *testing.T) {
		conn := metadataConn(t, f.h)
		a, b := appDBCreds(t, f.h, conn, "ava", "greeter"), appDBCreds(t, f.h, conn, "ben", "benapp")
		// Each role reaches its own databases: the credentials are right.
		for _, c := range []dbCreds{a, b} {
			for _, db := range []string{c.db, c.db + "_dbos_sys"} {
				if err := connectPG(ctx, c.port, c.role, c.password, db); err != nil {
					t.Fatalf("%s to its own database %s: %v", c.role, db, err)
				}
			}
		}
		// Neither an app's role nor an instance's admin reaches the other
		// org's instance, whatever the database.
		for _, tc := range []struct {
			from dbCreds
			to   dbCreds
		}{{a, b}, {b, a}} {
			for _, user := range []struct{ name, password string }{{tc.from.role, tc.from.password}, {tc.from.admin, tc.from.adminPassword}} {
				for _, db := range []string{tc.to.db, tc.to.db + "_dbos_sys", tc.from.db, "postgres"} {
					err := connectPG(ctx, tc.to.port, user.name, user.password, db)
					var pgErr *pgconn.PgError
					if !errors.As(err, &pgErr) || !strings.HasPrefix(pgErr.Code, "28") {
						t.Errorf("%s (of %s's instance) connecting to %s on %s's instance: %v, want an authentication error (SQLSTATE 28xxx)",
							user.name, tc.from.org, db, tc.to.org, err)
					}
				}
			}
		}
	})
}

// setupAuthz starts a Hangar with orgs A and B (see authzFixture) and
// deploys A's greeter.
func setupAuthz(t *testing.T) *authzFixture {
	t.Helper()
	ctx := context.Background()
	h := startHangar(t)
	f := &authzFixture{h: h, hc: h.HTTPClient(t)}
	avaRefresh, amyRefresh := h.AddUser(t, "ava"), h.AddUser(t, "amy")
	f.benRefresh = h.AddUser(t, "ben")
	f.ava, f.ben = h.Client(t, avaRefresh), h.Client(t, f.benRefresh)

	for _, p := range []struct {
		c   *apiclient.Client
		org string
	}{{f.ava, "ava"}, {f.ben, "ben"}} {
		req := apiclient.ProvisionDBRequest{Name: p.org + "db", AdminName: p.org + "_admin", AdminPassword: p.org + "-s3cret-pass"}
		if err := p.c.ProvisionDB(ctx, p.org, req); err != nil {
			t.Fatalf("provision %s: %v", req.Name, err)
		}
	}
	for _, p := range []struct {
		c        *apiclient.Client
		org, app string
	}{{f.ava, "ava", "greeter"}, {f.ben, "ben", "benapp"}} {
		waitFor(t, p.org+"db available", 2*time.Minute, func() bool {
			d, err := p.c.DB(ctx, p.org, p.org+"db")
			if p.org == "ben" {
				f.bendbPort = d.Port
			}
			return err == nil && d.Status == "available"
		})
		if _, err := p.c.RegisterApp(ctx, p.org, apiclient.RegisterAppRequest{Name: p.app, Database: p.org + "db", Language: "node"}); err != nil {
			t.Fatalf("register %s: %v", p.app, err)
		}
	}

	invite, err := f.ava.InviteSecret(ctx, "ava")
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Client(t, amyRefresh).JoinOrg(ctx, "ava", invite); err != nil {
		t.Fatalf("amy joins ava: %v", err)
	}
	if _, err := f.ava.InviteSecret(ctx, "ava"); err != nil { // one left pending
		t.Fatal(err)
	}
	if f.benInvite, err = f.ben.InviteSecret(ctx, "ben"); err != nil {
		t.Fatal(err)
	}
	if err := f.ava.CreateSecret(ctx, "ava", apiclient.CreateSecretRequest{ApplicationName: "greeter", SecretName: "API_KEY", ClearSecretValue: "ava-only"}); err != nil {
		t.Fatal(err)
	}

	app := fixture(t, "greeter", nil)
	if out, code := h.ours(t, app, "login", "--with-refresh-token", avaRefresh); code != 0 {
		t.Fatalf("login: exit %d\n%s", code, out)
	}
	if out, code := h.ours(t, app, "app", "deploy"); code != 0 {
		t.Fatalf("deploy: exit %d\n%s", code, out)
	}
	vs, err := f.ava.AppVersions(ctx, "ava", "greeter")
	if err != nil || len(vs) != 1 {
		t.Fatalf("greeter's versions = %v, %v; want one", vs, err)
	}
	f.version = vs[0].Version

	// A workflow of A's, finished, for the workflow routes to name.
	var greeted struct{ WorkflowID string }
	status, body := get(t, f.hc, "https://ava-greeter."+h.Domain+"/greet/ava")
	if status != http.StatusOK || json.Unmarshal([]byte(body), &greeted) != nil || greeted.WorkflowID == "" {
		t.Fatalf("GET /greet/ava = %d %s", status, body)
	}
	f.workflowID = greeted.WorkflowID
	var exs []apiclient.ExecutorStats
	if err := f.ava.Do(ctx, http.MethodGet, "/hangar/v1/ava/applications/greeter/executors", nil, &exs); err != nil || len(exs) == 0 {
		t.Fatalf("greeter's executors = %v, %v; want one", exs, err)
	}
	f.executorID = exs[0].ID
	waitFor(t, "greeter's workflow ends", time.Minute, func() bool {
		var w apiclient.WorkflowStatus
		err := f.ava.Do(ctx, http.MethodGet, "/appsadmin/ava/applications/greeter/workflows/"+f.workflowID, nil, &w)
		return err == nil && w.Status == "SUCCESS"
	})
	return f
}

// authzSnapshot is org A as A sees it, plus A's rows in the metadata
// database (which show what the API does not: a secret's sealed value, a
// database's admin password, a pending invite, a running operation).
type authzSnapshot struct {
	Apps     []apiclient.Application
	Versions []apiclient.AppVersion
	Secrets  []string
	DBs      []apiclient.UserDBInstance
	Users    apiclient.OrgUsers
	Serves   string // what the app answers at /
	Rows     map[string][]string
	// Workflows are the rows of greeter's system database.
	Workflows map[string][]string
}

func (f *authzFixture) snapshot(t *testing.T) authzSnapshot {
	t.Helper()
	ctx := context.Background()
	var s authzSnapshot
	var err error
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("org A's %s: %v", what, err)
		}
	}
	s.Apps, err = f.ava.Apps(ctx, "ava")
	must("apps", err)
	s.Versions, err = f.ava.AppVersions(ctx, "ava", "greeter")
	must("versions", err)
	s.Secrets, err = f.ava.Secrets(ctx, "ava", "greeter")
	must("secrets", err)
	s.DBs, err = f.ava.DBs(ctx, "ava")
	must("databases", err)
	s.Users, err = f.ava.OrgUsers(ctx, "ava")
	must("users", err)
	status, body := get(t, f.hc, "https://ava-greeter."+f.h.Domain+"/")
	s.Serves = http.StatusText(status) + " " + body

	conn := metadataConn(t, f.h)
	s.Rows = map[string][]string{}
	for table, q := range map[string]string{
		"orgs":           "SELECT o::text FROM orgs o WHERE name = $1",
		"users":          "SELECT u::text FROM users u WHERE org = $1 ORDER BY id",
		"refresh_tokens": "SELECT r::text FROM refresh_tokens r JOIN users u ON u.id = r.user_id WHERE u.org = $1 ORDER BY r.id",
		"org_invites":    "SELECT i::text FROM org_invites i WHERE org = $1 ORDER BY secret_hash",
		"db_instances":   "SELECT d::text FROM db_instances d WHERE org = $1 ORDER BY id",
		"apps":           "SELECT a::text FROM apps a WHERE org = $1 ORDER BY id",
		"versions":       "SELECT v::text FROM versions v JOIN apps a ON a.id = v.app_id WHERE a.org = $1 ORDER BY v.id",
		"app_secrets":    "SELECT s::text FROM app_secrets s JOIN apps a ON a.id = s.app_id WHERE a.org = $1 ORDER BY s.name",
	} {
		rows, err := conn.Query(ctx, q, "ava")
		must(table, err)
		s.Rows[table], err = pgx.CollectRows(rows, pgx.RowTo[string])
		must(table, err)
	}

	a := appDBCreds(t, f.h, conn, "ava", "greeter")
	sysURL := url.URL{Scheme: "postgres", User: url.UserPassword(a.admin, a.adminPassword), Host: fmt.Sprintf("127.0.0.1:%d", a.port),
		Path: "/" + a.db + "_dbos_sys", RawQuery: "sslmode=disable"}
	sys, err := pgx.Connect(ctx, sysURL.String())
	must("system database", err)
	defer sys.Close(ctx)
	s.Workflows = map[string][]string{}
	for table, q := range map[string]string{
		"workflow_status":   "SELECT w::text FROM dbos.workflow_status w ORDER BY workflow_uuid",
		"operation_outputs": "SELECT o::text FROM dbos.operation_outputs o ORDER BY workflow_uuid, function_id",
	} {
		rows, err := sys.Query(ctx, q)
		must(table, err)
		s.Workflows[table], err = pgx.CollectRows(rows, pgx.RowTo[string])
		must(table, err)
	}
	return s
}

// requestOf returns the method and path of a route's case, its path values
// filled from names.
func requestOf(t *testing.T, pattern string, c routeCase, names map[string]string) (string, string) {
	t.Helper()
	method, path, ok := strings.Cut(pattern, " ")
	if !ok {
		method, path = http.MethodGet, pattern
	}
	if c.path != "" {
		return method, c.path + c.query
	}
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if strings.HasPrefix(s, "{") {
			v, ok := names[strings.Trim(s, "{}.")]
			if !ok {
				t.Fatalf("route %s: no name for %s: add one to orgA in e2e/authz_test.go", pattern, s)
			}
			segs[i] = url.PathEscape(v)
		}
	}
	return method, strings.Join(segs, "/") + c.query
}

// send sends one request with token as bearer ("" sends none) and returns
// the answer's status and body.
func (f *authzFixture) send(t *testing.T, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	contentType := ""
	switch b := body.(type) {
	case nil:
	case url.Values:
		r, contentType = strings.NewReader(b.Encode()), "application/x-www-form-urlencoded"
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r, contentType = bytes.NewReader(j), "application/json"
	}
	req, err := http.NewRequest(method, "https://"+f.h.Domain+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// wantRefused checks that an answer has one of the statuses and comes from
// the route itself, not from the catch-all of paths no route matches.
func wantRefused(t *testing.T, status int, body []byte, want ...int) {
	t.Helper()
	var e apiclient.Error
	json.Unmarshal(body, &e)
	if !slices.Contains(want, status) || strings.HasPrefix(e.Message, "no route for") {
		t.Errorf("got %d %s, want one of %v from the route", status, body, want)
	}
}

// wantProfile checks that token acts as the user name.
func (f *authzFixture) wantProfile(t *testing.T, token, name string) {
	t.Helper()
	status, body := f.send(t, http.MethodGet, "/v1alpha1/user/profile", token, nil)
	var p apiclient.Profile
	if status != http.StatusOK || json.Unmarshal(body, &p) != nil || p.Name != name {
		t.Errorf("the token's profile: %d %s, want %s's", status, body, name)
	}
}

// invalidTokens returns bearer tokens that must get 401, by what is wrong
// with them. They name B as subject and are signed, unless said otherwise,
// with the server's current key: a control token made the same way works.
func (f *authzFixture) invalidTokens(t *testing.T) map[string]string {
	t.Helper()
	ctx := context.Background()
	conn := metadataConn(t, f.h)
	var keys, benID string
	if err := conn.QueryRow(ctx, "SELECT value FROM settings WHERE key = 'jwt_keys'").Scan(&keys); err != nil {
		t.Fatal(err)
	}
	ks, err := auth.ParseKeySet(keys)
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT id FROM users WHERE name = 'ben'").Scan(&benID); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	valid := func() jwt.RegisteredClaims {
		return jwt.RegisteredClaims{
			Issuer: "hangar", Subject: benID, Audience: jwt.ClaimStrings{auth.Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}
	}
	sign := func(m jwt.SigningMethod, key any, kid string, c jwt.RegisteredClaims) string {
		tok := jwt.NewWithClaims(m, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cur := ks[0]
	f.wantProfile(t, sign(jwt.SigningMethodHS256, cur.Secret, cur.ID, valid()), "ben")

	expired, wrongAud, wrongIss, noExp := valid(), valid(), valid(), valid()
	expired.IssuedAt, expired.ExpiresAt = jwt.NewNumericDate(now.Add(-25*time.Hour)), jwt.NewNumericDate(now.Add(-time.Hour))
	wrongAud.Audience = jwt.ClaimStrings{"another-api"}
	wrongIss.Issuer = "not-hangar"
	noExp.ExpiresAt = nil
	otherKey := make([]byte, 48)
	rand.Read(otherKey)

	// A user the operator disabled, with the access token it had.
	danRefresh := f.h.AddUser(t, "dan")
	dan := f.h.Client(t, danRefresh)
	hangarCmd(t, f.h, "users", "disable", "dan")

	return map[string]string{
		"Expired":       sign(jwt.SigningMethodHS256, cur.Secret, cur.ID, expired),
		"WrongKey":      sign(jwt.SigningMethodHS256, otherKey, cur.ID, valid()),
		"UnknownKeyID":  sign(jwt.SigningMethodHS256, cur.Secret, "no-such-kid", valid()),
		"AlgNone":       sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, cur.ID, valid()),
		"AlgHS512":      sign(jwt.SigningMethodHS512, cur.Secret, cur.ID, valid()),
		"WrongAudience": sign(jwt.SigningMethodHS256, cur.Secret, cur.ID, wrongAud),
		"WrongIssuer":   sign(jwt.SigningMethodHS256, cur.Secret, cur.ID, wrongIss),
		"NoExpiry":      sign(jwt.SigningMethodHS256, cur.Secret, cur.ID, noExp),
		"Garbage":       "not-a-token",
		"RefreshToken":  f.benRefresh,
		"Missing":       "",
		"DisabledUser":  dan.Token,
	}
}

// dbCreds are an app's database credentials and its instance's.
type dbCreds struct {
	org, db, role, password string
	port                    int
	admin, adminPassword    string
}

func appDBCreds(t *testing.T, h *Hangar, conn *pgx.Conn, org, app string) dbCreds {
	t.Helper()
	c := dbCreds{org: org}
	var id string
	err := conn.QueryRow(context.Background(), `
		SELECT a.id, a.app_db_name, a.db_role, a.db_password, d.port, d.admin_user, d.admin_password
		  FROM apps a JOIN db_instances d ON d.id = a.db_instance_id
		 WHERE a.org = $1 AND a.name = $2`, org, app).Scan(&id, &c.db, &c.role, &c.password, &c.port, &c.admin, &c.adminPassword)
	if err != nil {
		t.Fatalf("database credentials of %s/%s: %v", org, app, err)
	}
	// Passwords are sealed at rest: the fixture provisioned each org's
	// instance with this one, and the app role's opens with the key.
	if !strings.HasPrefix(c.adminPassword, "sealed:") {
		t.Fatalf("instance password of %s is stored in plain text", org)
	}
	c.adminPassword = org + "-s3cret-pass"
	c.password = unsealPassword(t, h, "apps.db_password", id, c.password)
	return c
}

// unsealPassword opens a password the store sealed in column col of row
// id, with the server's secrets key.
func unsealPassword(t *testing.T, h *Hangar, col, id, stored string) string {
	t.Helper()
	b64, ok := strings.CutPrefix(stored, "sealed:")
	if !ok {
		t.Fatalf("%s of %s is stored in plain text", col, id)
	}
	box, err := secretbox.Open(filepath.Join(h.DataDir, "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	pw, err := box.OpenSealed(sealed, []byte(col+"\x00"+id))
	if err != nil {
		t.Fatalf("open %s of %s: %v", col, id, err)
	}
	return string(pw)
}

// connectPG connects to database db of the local server on port as user.
func connectPG(ctx context.Context, port int, user, password, db string) error {
	cfg, err := pgx.ParseConfig("postgres://127.0.0.1/?sslmode=disable")
	if err != nil {
		return err
	}
	cfg.Port, cfg.User, cfg.Password, cfg.Database = uint16(port), user, password, db
	cfg.ConnectTimeout = 10 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	return conn.Close(ctx)
}

func lastWord(s string) string {
	f := strings.Fields(s)
	if len(f) == 0 {
		return ""
	}
	return f[len(f)-1]
}
