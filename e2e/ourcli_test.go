package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestOurCLI drives Hangar with its own dbos-cloud: login, a database, the
// TypeScript fixture, a real DBOS Go app (which the official CLI refuses),
// versions, update, logs --follow and delete.
func TestOurCLI(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "gina")
	hc := h.HTTPClient(t)
	ts := fixture(t, "greeter", nil)
	must := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	must(t, ts, "login", "--with-refresh-token", refresh)
	must(t, ts, "db", "provision", "ginadb", "-U", "dbos_admin", "-W", "s3cret-pass")

	t.Run("DeployTypeScript", func(t *testing.T) {
		out := must(t, ts, "app", "deploy")
		url := "https://gina-greeter." + h.Domain + "/"
		if !strings.Contains(out, url) {
			t.Errorf("deploy output lacks %s:\n%s", url, out)
		}
		if status, body := get(t, hc, url+"greet/hal"); status != http.StatusOK || !strings.Contains(body, "Hello, hal!") {
			t.Errorf("greet = %d %s", status, body)
		}
		var vs []apiclient.AppVersion
		out = must(t, ts, "app", "versions", "--json")
		if err := json.Unmarshal([]byte(out[strings.Index(out, "["):]), &vs); err != nil || len(vs) != 1 {
			t.Errorf("versions --json = %v %v\n%s", vs, err, out)
		}
		must(t, ts, "app", "update", "--executors-memory-mib", "768")
		var a apiclient.Application
		out = must(t, ts, "app", "status", "--json")
		if err := json.Unmarshal([]byte(out[strings.Index(out, "{"):]), &a); err != nil || a.ExecutorsMemoryMib != 768 || a.Status != "AVAILABLE" {
			t.Errorf("status after update = %+v %v", a, err)
		}
	})

	t.Run("LogsFollow", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, filepath.Join(bin, "dbos-cloud"), "app", "logs", "--follow")
		cmd.Dir, cmd.Env = ts, h.Env()
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cancel(); cmd.Wait() }()
		waitFor := func(want string) {
			t.Helper()
			for !strings.Contains(out.String(), want) {
				if ctx.Err() != nil {
					t.Fatalf("logs --follow never showed %q:\n%s", want, lastLines(out.String(), 20))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		waitFor("greeter listening on 0.0.0.0:3000")
		// A line the app writes after the tail started shows up.
		get(t, hc, "https://gina-greeter."+h.Domain+"/greet/follow-me")
		waitFor("greeted follow-me")
	})

	t.Run("DeployGo", func(t *testing.T) {
		goApp := fixture(t, "gogreeter", nil)
		must(t, goApp, "login", "--with-refresh-token", refresh)
		must(t, goApp, "app", "deploy")
		url := "https://gina-gogreeter." + h.Domain + "/"
		if _, body := get(t, hc, url); body != "gogreeter v1" {
			t.Errorf("Go app / = %q", body)
		}
		status, body := get(t, hc, url+"greet/ida")
		var g struct {
			ID      int64
			Message string
			Version string
		}
		json.Unmarshal([]byte(body), &g)
		if status != http.StatusOK || g.ID <= 0 || g.Message != "Hello, ida!" || g.Version == "" {
			t.Errorf("Go greet = %d %s", status, body)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		must(t, ts, "app", "delete", "--dropdb")
		if status, _ := get(t, hc, "https://gina-greeter."+h.Domain+"/"); status != http.StatusNotFound {
			t.Errorf("deleted app answers %d", status)
		}
	})
}
