package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// TestCrash_KillDuringEachStep kills `hangar serve` with SIGKILL while a
// deploy is in each pipeline step in turn, restarts it, and checks that the
// deploy ends succeeded or failed with a recorded reason, the app serves,
// the next deploy succeeds and, once stopped, nothing is left running.
func TestCrash_KillDuringEachStep(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "crash")
	hc := h.HTTPClient(t)
	appURL := "https://crash-greeter." + h.Domain + "/"
	dir := fixture(t, "greeter", nil)
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("login: %d\n%s", code, out)
	}
	if out, code := h.official(t, dir, "db", "provision", "crashdb", "-U", "dbos_admin", "-W", "s3cret-pass"); code != 0 {
		t.Fatalf("provision: %d\n%s", code, out)
	}
	if out, code := h.official(t, dir, "app", "deploy"); code != 0 {
		t.Fatalf("first deploy: %d\n%s", code, out)
	}
	ctx := context.Background()
	text := "greeter v1"
	for i, step := range []string{"upload", "configuration", "migration", "deployment"} {
		t.Run(step, func(t *testing.T) {
			h.Kill(t)
			h.Start(t, "HANGAR_FAULT_STEP_DELAY="+step+"=120s")
			c := h.Client(t, refresh)
			next := fmt.Sprintf("greeter crash%d", i)
			editFile(t, dir, "app.mjs", `"`+text+`"`, `"`+next+`"`)
			done := make(chan struct{})
			go func() {
				defer close(done)
				h.official(t, dir, "app", "deploy") // fails when the server dies under it
			}()
			waitLog(t, c, "fault injection: pausing step "+step)
			h.Kill(t)
			<-done
			h.Start(t)
			c = h.Client(t, refresh)

			v := waitSettled(t, c)
			switch v.Status {
			case "ACTIVE":
				text = next
			case "FAILED":
				if v.Error == "" {
					t.Errorf("failed deploy %s has no recorded reason", v.Version)
				}
			default:
				t.Fatalf("crashed deploy settled as %+v", v)
			}
			t.Logf("deploy killed during %s ended %s %s", step, v.Status, v.Error)
			if status, body := get(t, hc, appURL); status != http.StatusOK || body != text {
				t.Errorf("after restart the app answers %d %q, want %q", status, body, text)
			}
		})
	}
	t.Run("NextDeploySucceeds", func(t *testing.T) {
		editFile(t, dir, "app.mjs", `"`+text+`"`, `"greeter after crashes"`)
		if out, code := h.official(t, dir, "app", "deploy"); code != 0 {
			t.Fatalf("deploy after the crashes: %d\n%s", code, out)
		}
		if _, body := get(t, hc, appURL); body != "greeter after crashes" {
			t.Errorf("serving %q", body)
		}
		if _, err := h.Client(t, refresh).App(ctx, "crash", "greeter"); err != nil {
			t.Fatal(err)
		}
	})
}

// waitLog waits until the app's logs contain want.
func waitLog(t *testing.T, c *apiclient.Client, want string) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		var page apiclient.LogsResponse
		q := url.Values{"format": {"json"}, "last": {"0"}, "limit": {"10000"}}
		err := c.Do(context.Background(), http.MethodGet, "/v1alpha1/crash/logs/applications/greeter?"+q.Encode(), nil, &page)
		if err == nil && strings.Contains(page.Body, want) {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("logs never showed %q", want)
}

// waitSettled waits until no version of the app is DEPLOYING and the app is
// AVAILABLE, and returns the newest version.
func waitSettled(t *testing.T, c *apiclient.Client) apiclient.AppVersion {
	t.Helper()
	deadline := time.Now().Add(4 * time.Minute)
	var last []apiclient.AppVersion
	for time.Now().Before(deadline) {
		var vs []apiclient.AppVersion
		if err := c.Do(context.Background(), http.MethodGet, "/v1alpha1/crash/applications/greeter/versions", nil, &vs); err != nil {
			t.Fatal(err)
		}
		last = vs
		a, err := c.App(context.Background(), "crash", "greeter")
		if err != nil {
			t.Fatal(err)
		}
		settled := a.Status == "AVAILABLE"
		for _, v := range vs {
			settled = settled && v.Status != "DEPLOYING"
		}
		if settled {
			return vs[0]
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Fatalf("deploy never settled: %+v", last)
	return apiclient.AppVersion{}
}
