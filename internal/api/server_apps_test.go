package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/hangartest"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// wantAPIError fails unless err is an API error with status and a message
// holding msg.
func wantAPIError(t *testing.T, what string, err error, status int, msg string) {
	t.Helper()
	apiErr, ok := err.(*apiclient.Error)
	if !ok || apiErr.StatusCode != status || !strings.Contains(apiErr.Message, msg) {
		t.Errorf("%s: got error %v, want %d %q", what, err, status, msg)
	}
}

// TestServer_Apps registers, deploys, routes, updates and deletes an app
// through the API of a whole in-process server.
func TestServer_Apps(t *testing.T) {
	t.Parallel()
	s := hangartest.New(t, hangartest.Options{})
	alice, _ := s.AddUser(t, "alice")
	ctx := t.Context()
	s.ProvisionDB(t, alice, "alice", "db1")

	if _, err := alice.RegisterApp(ctx, "alice", apiclient.RegisterAppRequest{Name: "hello", Database: "nodb"}); err == nil {
		t.Error("RegisterApp() on a missing database succeeded, want an error")
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
	if code, body := s.Get(t, host, "/"); code != http.StatusOK || body == "" {
		t.Errorf("GET %s = %d %q, want 200 and the executor's ID", host, code, body)
	}

	apps, err := alice.Apps(ctx, "alice")
	if err != nil || len(apps) != 1 || apps[0].Name != "hello" {
		t.Errorf("Apps() = %+v, %v; want hello alone", apps, err)
	}

	wantAPIError(t, "UpdateApp(memory 1)", alice.UpdateApp(ctx, "alice", "hello", apiclient.UpdateAppRequest{ExecutorsMemoryMib: apiclient.FlexInt{Value: 1, Set: true}}), http.StatusBadRequest, "512")
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
	if running := s.Driver.(*runtimetest.Fake).Running(); len(running) != 0 {
		t.Errorf("executors after delete: %v, want none", running)
	}
}

// isStatus reports whether err is an API error with status.
func isStatus(err error, status int) bool {
	apiErr, ok := err.(*apiclient.Error)
	return ok && apiErr.StatusCode == status
}
