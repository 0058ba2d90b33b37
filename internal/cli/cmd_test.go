package cli

import (
	"encoding/json"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func TestAppCmd(t *testing.T) {
	t.Parallel()
	api := newFakeAPI(t)
	var mu sync.Mutex
	var ran []string // "app executor command" of every command run
	api.mux.HandleFunc("GET /hangar/v1/o/applications/{app}/executors", func(w http.ResponseWriter, r *http.Request) {
		exs := []apiclient.ExecutorStats{{ID: "ex-old", State: "RETIRING"}, {ID: "ex-new", State: "SERVING"}}
		if r.PathValue("app") == "idle" {
			exs = exs[:1]
		}
		writeTestJSON(w, 200, exs)
	})
	api.mux.HandleFunc("POST /vmsadmin/o/applications/{app}/vms/{executor}/vmcmd", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.ExecutorCommandRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeTestJSON(w, 400, apiclient.Error{Message: err.Error(), StatusCode: 400, RequestID: "r1"})
			return
		}
		mu.Lock()
		ran = append(ran, r.PathValue("app")+" "+r.PathValue("executor")+" "+req.Command)
		mu.Unlock()
		if r.PathValue("executor") == "ex-gone" {
			writeTestJSON(w, 404, apiclient.Error{Message: "executor ex-gone not found for application greeter", StatusCode: 404, RequestID: "r2"})
			return
		}
		res := apiclient.ExecutorCommandResponse{Stdout: "out\n"}
		if strings.Contains(req.Command, "exit 7") {
			res = apiclient.ExecutorCommandResponse{Stdout: "partial", Stderr: "err\n", ExitCode: 7}
		}
		writeTestJSON(w, 200, res)
	})
	dir := appDir(t, "greeter")

	for _, tc := range []struct {
		name           string
		args           []string
		stdout, stderr string
		code           int
		ran            string
	}{
		{"ServingExecutor", []string{"id -u; exit 7"}, "partial", "err\n", 7, "greeter ex-new id -u; exit 7"},
		{"Words", []string{"--", "ls", "-la"}, "out\n", "", 0, "greeter ex-new ls -la"},
		{"AppAndExecutor", []string{"other", "-e", "ex-old", "--", "cat", "/proc/self/status"}, "out\n", "", 0, "other ex-old cat /proc/self/status"},
		{"NotFound", []string{"-e", "ex-gone", "true"}, "", "[r2] Failed to execute command: executor ex-gone not found for application greeter.\n", 1, "greeter ex-gone true"},
		{"NoServingExecutor", []string{"idle", "--", "true"}, "", "no executor of idle serves: deploy it first, or name one with --executor (see `dbos-cloud app executors`)\n", 1, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			ran = nil
			mu.Unlock()
			stdout, stderr, code := runCLI(t, dir, api, append([]string{"app", "cmd"}, tc.args...)...)
			if stdout != tc.stdout || stderr != tc.stderr || code != tc.code {
				t.Errorf("got exit %d, stdout %q, stderr %q; want %d, %q, %q", code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
			}
			var want []string
			if tc.ran != "" {
				want = []string{tc.ran}
			}
			mu.Lock()
			defer mu.Unlock()
			if diff := cmp.Diff(want, ran); diff != "" {
				t.Errorf("commands run (-want +got):\n%s", diff)
			}
		})
	}

	t.Run("Usage", func(t *testing.T) {
		for _, args := range [][]string{{}, {"greeter", "--"}, {"a", "b", "--", "ls"}} {
			_, stderr, code := runCLI(t, dir, api, append([]string{"app", "cmd"}, args...)...)
			if code != 2 {
				t.Errorf("app cmd %q: exit %d, want 2 (usage)\n%s", args, code, stderr)
			}
		}
		_, stderr, code := runCLI(t, dir, api, "app", "cmd", strings.Repeat("x", apiclient.MaxCommandBytes+1))
		if code != 1 || !strings.Contains(stderr, "over the limit of 4096") {
			t.Errorf("a command over the limit: exit %d, stderr %q; want 1 and the limit", code, stderr)
		}
	})
}
