package cli

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/golden"
)

func TestAppStatus_Health(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	api.mux.HandleFunc("GET /v1alpha1/o/applications/greeter", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, apiclient.Application{
			Name: "greeter", ID: "id1", PostgresInstanceName: "db", ApplicationDatabaseName: "greeter", Status: "UNAVAILABLE",
			Version: "V1", AppURL: "https://o-greeter.example", ExecutorsMemoryMib: 512,
			AppHealth: &apiclient.AppHealth{CrashLoop: "5 restarts in 2m10s; next start in 40s", LastProblem: &apiclient.ExecutorEvent{
				Time: "2026-03-01T10:00:00.5Z", Kind: "OOM", Executor: "ex-1", Version: "V1", MemoryLimitMiB: 512,
				Message: "executor ex-1 was killed: out of memory (limit 512 MiB); no executor serves the app: starting a replacement in 16s (crash loop: 5 restarts in 2m10s)",
			}},
		})
	})
	stdout, stderr, code := runCLI(t, appDir(t, "greeter"), api, "app", "status")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	golden.Check(t, golden.File("status_health"), stdout)

	t.Run("OfficialServer", func(t *testing.T) {
		t.Parallel()
		// The fake's base answers without Hangar's keys: no extra line.
		stdout, _, code := runCLI(t, appDir(t, "other"), api, "app", "status")
		if code != 0 || !strings.HasSuffix(stdout, "App URL: \n") {
			t.Errorf("exit %d, output ends %q; want the official lines only", code, stdout)
		}
	})
}

func TestAppExecutors(t *testing.T) {
	t.Parallel()
	half := 48.5
	exs := []apiclient.ExecutorStats{
		{ID: "ex-01old", Version: "V1", AppVersion: "V1", State: "RETIRING", StartedAt: "2026-03-01T09:00:00Z", MemoryLimitMiB: 512,
			Usage: &apiclient.ExecutorUsage{MemoryBytes: 100 << 20, MemoryLimitBytes: 512 << 20, Pids: 3, CPUSeconds: 12.25, OOMKills: 1}},
		{ID: "ex-02new", Version: "V2", AppVersion: "V2", State: "SERVING", StartedAt: "2026-03-01T10:00:00.25Z", MemoryLimitMiB: 1024,
			Usage: &apiclient.ExecutorUsage{MemoryBytes: 300 << 20, MemoryLimitBytes: 1024 << 20, MemoryPeakBytes: 410 << 20, Pids: 12,
				CPUSeconds: 3, CPUPercent: &half,
				ThrottledPeriods: 7, ThrottledSeconds: 0.42}},
		{ID: "ex-03nostats", Version: "V2", AppVersion: "V2", State: "STARTING", StartedAt: "2026-03-01T10:01:00Z", MemoryLimitMiB: 1024},
	}
	api := newFakeAPI(t)
	api.mux.HandleFunc("GET /hangar/v1/o/applications/greeter/executors", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, exs)
	})
	dir := appDir(t, "greeter")
	stdout, stderr, code := runCLI(t, dir, api, "app", "executors")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	golden.Check(t, filepath.Join("testdata", "executors.golden"), stdout)

	stdout, _, code = runCLI(t, dir, api, "app", "executors", "greeter", "--json")
	var got []apiclient.ExecutorStats
	if err := json.Unmarshal([]byte(stdout), &got); code != 0 || err != nil {
		t.Fatalf("--json: exit %d, %v\n%s", code, err, stdout)
	}
	if diff := cmp.Diff(exs, got); diff != "" {
		t.Errorf("--json (-want +got):\n%s", diff)
	}
}
