package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/hangartest"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// The API tests below run against a whole server in-process (hangartest),
// without root: its executors are runtimetest.Fake's, its database
// instances real PostgreSQL clusters. One server serves every group, each
// with an app (or a user) of its own, so the cluster starts once.

const dbPassword = "a-password-1" // hangartest.ProvisionDB's

// wantAPIError fails unless err is an API error with status and a message
// holding msg.
func wantAPIError(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	if !isStatus(err, status) || !strings.Contains(err.Error(), msg) {
		t.Errorf("%s: got error %v, want %d %q", what, err, status, msg)
	}
}

// isStatus reports whether err is an API error with status.
func isStatus(err error, status int) bool {
	apiErr, ok := errors.AsType[*apiclient.Error](err)
	return ok && apiErr.StatusCode == status
}

// register registers app on alice's db1 and deploys it.
func register(t *testing.T, s *hangartest.Server, c *apiclient.Client, app string) apiclient.DeployResponse {
	t.Helper()
	if _, err := c.RegisterApp(t.Context(), "alice", apiclient.RegisterAppRequest{Name: app, Database: "db1", Language: "go"}); err != nil {
		t.Fatal(err)
	}
	dep, err := s.Deploy(t, c, "alice", app, hangartest.App(app))
	if err != nil {
		t.Fatalf("Deploy(%s) = %v", app, err)
	}
	return dep
}

func TestServer(t *testing.T) {
	t.Parallel()
	s := hangartest.New(t, hangartest.Options{})
	alice, _ := s.AddUser(t, "alice")
	db1 := s.ProvisionDB(t, alice, "alice", "db1")
	t.Run("Apps", func(t *testing.T) { t.Parallel(); testApps(t, s, alice) })
	t.Run("Versions", func(t *testing.T) { t.Parallel(); testVersions(t, s, alice) })
	t.Run("RetiredVersions", func(t *testing.T) { t.Parallel(); testRetiredVersions(t, s, alice) })
	t.Run("Secrets", func(t *testing.T) { t.Parallel(); testSecrets(t, s, alice) })
	t.Run("Workflows", func(t *testing.T) { t.Parallel(); testWorkflows(t, s, alice, db1) })
	t.Run("Orgs", func(t *testing.T) { t.Parallel(); testOrgs(t, s) })
	t.Run("Databases", func(t *testing.T) { t.Parallel(); testDatabases(t, s) })
}

// testApps registers, deploys, routes, updates and deletes an app.
func testApps(t *testing.T, s *hangartest.Server, alice *apiclient.Client) {
	ctx := t.Context()
	if _, err := alice.RegisterApp(ctx, "alice", apiclient.RegisterAppRequest{Name: "hello", Database: "nodb", Language: "go"}); !isStatus(err, http.StatusNotFound) {
		t.Errorf("RegisterApp() on a missing database = %v, want 404", err)
	}
	if _, err := alice.RegisterApp(ctx, "alice", apiclient.RegisterAppRequest{Name: "hello", Database: "db1", Language: "go"}); err != nil {
		t.Fatal(err)
	}
	app, err := alice.App(ctx, "alice", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if app.Status != string(hangar.StatusRegistered) || app.PostgresInstanceName != "db1" {
		t.Errorf("App() = status %s on %s, want %s on db1", app.Status, app.PostgresInstanceName, hangar.StatusRegistered)
	}

	dep, err := s.Deploy(t, alice, "alice", "hello", hangartest.App("hello"))
	if err != nil {
		t.Fatalf("Deploy() = %v", err)
	}
	app, err = alice.App(ctx, "alice", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if app.Status != string(hangar.StatusAvailable) || app.Version != dep.ApplicationVersion {
		t.Errorf("App() after deploy = status %s version %s, want %s %s", app.Status, app.Version, hangar.StatusAvailable, dep.ApplicationVersion)
	}
	host := "alice-hello." + s.Domain
	code, executor := s.Get(t, host, "/")
	if code != http.StatusOK || executor == "" {
		t.Fatalf("GET %s = %d %q, want 200 and the executor's ID", host, code, executor)
	}
	// app cmd: the Fake runs it on the host, in the app's folder.
	out, err := alice.ExecutorCommand(ctx, "alice", "hello", executor, "test -x main && echo hi; exit 3")
	if err != nil || out.Stdout != "hi\n" || out.ExitCode != 3 {
		t.Errorf("ExecutorCommand() = %+v, %v; want hi and exit code 3", out, err)
	}
	if _, err := alice.ExecutorCommand(ctx, "alice", "hello", "no-such-executor", "true"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("ExecutorCommand(unknown executor) = %v, want 404", err)
	}
	logs, err := alice.AppLogs(ctx, "alice", "hello", url.Values{})
	if err != nil || !strings.Contains(logs.Body, "using the prebuilt ./main") {
		t.Errorf("AppLogs() = %q, %v; want the deploy's configuration step", logs.Body, err)
	}

	apps, err := alice.Apps(ctx, "alice")
	if err != nil || !slices.ContainsFunc(apps, func(a apiclient.Application) bool { return a.Name == "hello" }) {
		t.Errorf("Apps() = %+v, %v; want hello among them", apps, err)
	}

	wantAPIError(t, "UpdateApp(1 MiB)", alice.UpdateApp(ctx, "alice", "hello", apiclient.UpdateAppRequest{ExecutorsMemoryMib: apiclient.FlexInt{Value: 1, Set: true}}), http.StatusBadRequest, "512")
	if err := alice.UpdateApp(ctx, "alice", "hello", apiclient.UpdateAppRequest{ExecutorsMemoryMib: apiclient.FlexInt{Value: 1024, Set: true}}); err != nil {
		t.Fatal(err)
	}
	if app, err := alice.App(ctx, "alice", "hello"); err != nil || app.ExecutorsMemoryMib != 1024 {
		t.Errorf("App() after update = %d MiB, %v; want 1024", app.ExecutorsMemoryMib, err)
	}

	if err := alice.DeleteApp(ctx, "alice", "hello", apiclient.DeleteAppRequest{DropDB: true}); err != nil {
		t.Fatal(err)
	}
	hangartest.Eventually(t, time.Minute, func() (bool, string) {
		_, err := alice.App(ctx, "alice", "hello")
		return isStatus(err, http.StatusNotFound), fmt.Sprintf("App() after delete: %v", err)
	})
	if code, _ := s.Get(t, host, "/"); code == http.StatusOK {
		t.Errorf("GET %s after delete = 200, want no route", host)
	}
	for _, id := range s.Driver.(*runtimetest.Fake).Running() {
		if strings.Contains(id, app.ID) {
			t.Errorf("executor %s runs after delete", id)
		}
	}
}

// testVersions deploys twice, then redeploys the first version.
func testVersions(t *testing.T, s *hangartest.Server, alice *apiclient.Client) {
	ctx := t.Context()
	v1 := register(t, s, alice, "versioned").ApplicationVersion
	v2, err := s.Deploy(t, alice, "alice", "versioned", hangartest.App("versioned"))
	if err != nil {
		t.Fatal(err)
	}
	status := func() map[string]string {
		t.Helper()
		vs, err := alice.AppVersions(ctx, "alice", "versioned")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, v := range vs {
			m[v.Version] = v.Status
		}
		return m
	}
	if got := status(); got[v1] != "RETIRED" || got[v2.ApplicationVersion] != "ACTIVE" {
		t.Errorf("versions after two deploys = %v, want %s RETIRED, %s ACTIVE", got, v1, v2.ApplicationVersion)
	}
	v3, err := alice.Deploy(ctx, "alice", "versioned", false, apiclient.DeployRequest{PreviousVersion: v1})
	if err != nil {
		t.Fatalf("Deploy(previous %s) = %v", v1, err)
	}
	vs, err := alice.AppVersions(ctx, "alice", "versioned")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].Version != v3.ApplicationVersion || vs[0].RestoredFrom != v1 || vs[0].Status != "ACTIVE" {
		t.Errorf("AppVersions() = %+v, want 3, newest first, the newest restoring %s and ACTIVE", vs, v1)
	}
	if _, err := alice.Deploy(ctx, "alice", "versioned", false, apiclient.DeployRequest{PreviousVersion: "nope"}); !isStatus(err, http.StatusNotFound) {
		t.Errorf("Deploy(previous nope) = %v, want 404", err)
	}
}

// testRetiredVersions deploys more versions than an app keeps folders (and
// with the sandbox driver, disks) of: only deploy.KeptVersions remain, and
// a version whose folder went is redeployed from its archive.
func testRetiredVersions(t *testing.T, s *hangartest.Server, alice *apiclient.Client) {
	ctx := t.Context()
	v1 := register(t, s, alice, "many").ApplicationVersion
	for range deploy.KeptVersions + 1 {
		if _, err := s.Deploy(t, alice, "alice", "many", hangartest.App("many")); err != nil {
			t.Fatal(err)
		}
	}
	app, err := alice.App(ctx, "alice", "many")
	if err != nil {
		t.Fatal(err)
	}
	folders := func() []string {
		t.Helper()
		names, err := filepath.Glob(filepath.Join(s.DataDir, "apps", app.ID, "versions", "[^.]*"))
		if err != nil {
			t.Fatal(err)
		}
		return names
	}
	// Retired versions are pruned after their deploy returned.
	settle := func() {
		for end := time.Now().Add(10 * time.Second); len(folders()) != deploy.KeptVersions && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
	}
	settle()
	if got := folders(); len(got) != deploy.KeptVersions {
		t.Errorf("version folders after %d deploys: %d, want %d: retired versions pile up", deploy.KeptVersions+2, len(got), deploy.KeptVersions)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "apps", app.ID, "versions", v1)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the oldest version's folder: %v, want it removed", err)
	}
	v, err := alice.Deploy(ctx, "alice", "many", false, apiclient.DeployRequest{PreviousVersion: v1})
	if err != nil {
		t.Fatalf("Deploy(previous %s, its folder removed) = %v", v1, err)
	}
	if code, body := s.Get(t, "alice-many."+s.Domain, "/"); code != http.StatusOK {
		t.Errorf("GET after redeploying %s = %d %q, want 200", v1, code, body)
	}
	settle()
	if got := folders(); len(got) != deploy.KeptVersions || !slices.ContainsFunc(got, func(n string) bool { return filepath.Base(n) == v.ApplicationVersion }) {
		t.Errorf("version folders after the redeploy: %v, want %d with %s", got, deploy.KeptVersions, v.ApplicationVersion)
	}
}

// testSecrets sets, lists and deletes an app's secrets.
func testSecrets(t *testing.T, s *hangartest.Server, alice *apiclient.Client) {
	ctx := t.Context()
	register(t, s, alice, "secretive")
	for _, name := range []string{"B_TOKEN", "A_KEY"} {
		if err := alice.CreateSecret(ctx, "alice", apiclient.CreateSecretRequest{ApplicationName: "secretive", SecretName: name, ClearSecretValue: "v-" + name}); err != nil {
			t.Fatal(err)
		}
	}
	wantAPIError(t, "CreateSecret(bad name)", alice.CreateSecret(ctx, "alice", apiclient.CreateSecretRequest{ApplicationName: "secretive", SecretName: "1 bad", ClearSecretValue: "x"}), http.StatusBadRequest, "")
	if err := alice.CreateSecret(ctx, "alice", apiclient.CreateSecretRequest{ApplicationName: "nope", SecretName: "A", ClearSecretValue: "x"}); !isStatus(err, http.StatusNotFound) {
		t.Errorf("CreateSecret(missing app) = %v, want 404", err)
	}
	names, err := alice.Secrets(ctx, "alice", "secretive")
	if err != nil || !slices.Equal(names, []string{"A_KEY", "B_TOKEN"}) {
		t.Errorf("Secrets() = %q, %v; want [A_KEY B_TOKEN]", names, err)
	}
	if err := alice.DeleteSecret(ctx, "alice", "secretive", "A_KEY"); err != nil {
		t.Fatal(err)
	}
	if names, err := alice.Secrets(ctx, "alice", "secretive"); err != nil || !slices.Equal(names, []string{"B_TOKEN"}) {
		t.Errorf("Secrets() after delete = %q, %v; want [B_TOKEN]", names, err)
	}
}

// testWorkflows lists and cancels a workflow that the test runs as the app
// would, with DBOS on the app's system database.
func testWorkflows(t *testing.T, s *hangartest.Server, alice *apiclient.Client, db1 apiclient.UserDBInstance) {
	ctx := t.Context()
	version := register(t, s, alice, "flows").ApplicationVersion
	app, err := alice.App(ctx, "alice", "flows")
	if err != nil {
		t.Fatal(err)
	}
	// No workflow ran yet: DBOS has not created its tables.
	if out, err := alice.Workflows(ctx, "alice", "flows", false, apiclient.ListWorkflowsRequest{}); err != nil || string(out) != "[]" {
		t.Errorf("Workflows() before any = %s, %v; want []", out, err)
	}

	sysURL := fmt.Sprintf("postgres://dbos_admin:%s@localhost:%d/%s_dbos_sys?sslmode=disable", dbPassword, db1.Port, app.ApplicationDatabaseName)
	dctx, err := dbos.NewContext(context.Background(), dbos.Config{
		AppName: "flows", DatabaseURL: sysURL, ApplicationVersion: version, ExecutorID: "test-executor",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	wf := func(ctx dbos.Context, in string) (string, error) {
		return dbos.RunAsStep(ctx, func(c context.Context) (string, error) {
			select {
			case <-release:
				return in, nil
			case <-c.Done():
				return "", c.Err()
			}
		}, dbos.WithStepName("wait"))
	}
	dbos.RegisterWorkflow(dctx, wf, dbos.WithWorkflowName("waiter"))
	if err := dbos.Launch(dctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(release); dbos.Shutdown(dctx, 5*time.Second) })
	if _, err := dbos.RunWorkflow(dctx, wf, "hi", dbos.WithWorkflowID("wf-1")); err != nil {
		t.Fatal(err)
	}

	type listed struct{ WorkflowUUID, Status, WorkflowName, ApplicationVersion string }
	list := func() []listed {
		t.Helper()
		out, err := alice.Workflows(ctx, "alice", "flows", false, apiclient.ListWorkflowsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		var got []listed
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := list(); len(got) != 1 || got[0] != (listed{"wf-1", "PENDING", "waiter", version}) {
		t.Errorf("Workflows() = %+v, want wf-1 PENDING waiter %s", got, version)
	}
	if err := alice.WorkflowAction(ctx, "alice", "flows", "wf-1", "cancel"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 1 || got[0].Status != "CANCELLED" {
		t.Errorf("Workflows() after cancel = %+v, want wf-1 CANCELLED", got)
	}
	if err := alice.WorkflowAction(ctx, "alice", "flows", "nope", "cancel"); !isStatus(err, http.StatusNotFound) {
		t.Errorf("cancel of a missing workflow = %v, want 404", err)
	}
}

// testOrgs invites, joins, lists, renames and removes members.
func testOrgs(t *testing.T, s *hangartest.Server) {
	ctx := t.Context()
	carol, _ := s.AddUser(t, "carol")
	dave, _ := s.AddUser(t, "dave")
	secret, err := carol.InviteSecret(ctx, "carol")
	if err != nil {
		t.Fatal(err)
	}
	if err := dave.JoinOrg(ctx, "carol", "wrong-secret"); err == nil {
		t.Error("JoinOrg(wrong secret) succeeded")
	}
	if err := dave.JoinOrg(ctx, "carol", secret); err != nil {
		t.Fatal(err)
	}
	if err := dave.JoinOrg(ctx, "carol", secret); err == nil {
		t.Error("an invite secret worked twice")
	}
	users, err := carol.OrgUsers(ctx, "carol")
	if err != nil || !slices.Equal(slices.Sorted(slices.Values(users.UserNames)), []string{"carol", "dave"}) {
		t.Errorf("OrgUsers() = %+v, %v; want carol and dave", users, err)
	}
	if _, err := dave.InviteSecret(ctx, "carol"); !isStatus(err, http.StatusForbidden) {
		t.Errorf("InviteSecret() by a member = %v, want 403", err)
	}
	if _, err := carol.OrgUsers(ctx, "dave"); err == nil {
		t.Error("OrgUsers() of another org succeeded")
	}
	if err := carol.RenameOrg(ctx, "carol", "carols"); err != nil {
		t.Fatal(err)
	}
	if users, err := dave.OrgUsers(ctx, "carols"); err != nil || users.OrgName != "carols" {
		t.Errorf("OrgUsers(carols) = %+v, %v; want the renamed org", users, err)
	}
	if _, err := carol.OrgUsers(ctx, "carol"); err == nil {
		t.Error("OrgUsers() of the old name succeeded")
	}
	if err := carol.RemoveOrgUser(ctx, "carols", "dave"); err != nil {
		t.Fatal(err)
	}
	if _, err := dave.OrgUsers(ctx, "carols"); err == nil {
		t.Error("a removed member still reads the org")
	}
}

// testDatabases provisions, lists, resets and destroys an instance.
func testDatabases(t *testing.T, s *hangartest.Server) {
	ctx := t.Context()
	erin, _ := s.AddUser(t, "erin")
	db := s.ProvisionDB(t, erin, "erin", "edb")
	if db.Port == 0 || db.DatabaseUsername != "dbos_admin" || db.IsLinked {
		t.Errorf("DB() = %+v, want a managed instance with a port and admin dbos_admin", db)
	}
	if err := erin.ProvisionDB(ctx, "erin", apiclient.ProvisionDBRequest{Name: "edb", AdminName: "dbos_admin", AdminPassword: dbPassword}); !isStatus(err, http.StatusConflict) {
		t.Errorf("ProvisionDB() again = %v, want 409", err)
	}
	dbs, err := erin.DBs(ctx, "erin")
	if err != nil || len(dbs) != 1 || dbs[0].PostgresInstanceName != "edb" {
		t.Errorf("DBs() = %+v, %v; want edb", dbs, err)
	}
	wantAPIError(t, "ResetDBPassword(short)", erin.ResetDBPassword(ctx, "erin", "edb", "short"), http.StatusBadRequest, "")
	if err := erin.ResetDBPassword(ctx, "erin", "edb", "another-password-2"); err != nil {
		t.Fatal(err)
	}
	if err := erin.DestroyDB(ctx, "erin", "edb"); err != nil {
		t.Fatal(err)
	}
	hangartest.Eventually(t, time.Minute, func() (bool, string) {
		dbs, err := erin.DBs(ctx, "erin")
		return err == nil && len(dbs) == 0, fmt.Sprintf("DBs() after destroy = %+v, %v", dbs, err)
	})
}
