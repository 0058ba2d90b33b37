package fleet

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestService_ExecutorCommand(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	ex := h.serve(t, "v1")[0]
	other := hangar.App{ID: "app2", Org: "org", Name: "other"}
	h.st.mu.Lock()
	h.st.apps[other.ID] = other
	h.st.mu.Unlock()
	command := func(ctx context.Context, app, executor, cmd string) (CommandResult, error) {
		return h.s.ExecutorCommand(ctx, Command{Org: "org", App: app, Executor: executor, Command: cmd, User: "alice"})
	}

	t.Run("Runs", func(t *testing.T) {
		res, err := command(t.Context(), "app", ex, "echo out; echo err >&2; pwd; exit 3")
		if err != nil {
			t.Fatal(err)
		}
		want := CommandResult{Stdout: "out\n" + versionDir(h.s, "app1", "v1") + "\n", Stderr: "err\n", ExitCode: 3}
		if diff := cmp.Diff(want, res); diff != "" {
			t.Errorf("result (-want +got):\n%s", diff)
		}
		// The app's logs say who ran what, at WARN, on the executor.
		line := "[executor/" + ex + "@v1] hangar: WARN: alice ran a command on executor " + ex +
			`: "echo out; echo err >&2; pwd; exit 3"; exit code 3` + "\n"
		if logs := h.logs.String(); !strings.Contains(logs, line) {
			t.Errorf("app logs lack %q:\n%s", line, logs)
		}
	})

	t.Run("TimedOut", func(t *testing.T) {
		// A deadline of the caller's that comes before CommandTimeout
		// counts the same.
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		res, err := command(ctx, "app", ex, "echo before; sleep 30; echo after")
		if err != nil {
			t.Fatal(err)
		}
		if res.ExitCode != CommandTimedOut || res.Stdout != "before\n" || !strings.Contains(res.Stderr, "ran out of time") {
			t.Errorf("got %+v, want exit code %d, the output before the kill and a note", res, CommandTimedOut)
		}
	})

	t.Run("OutputCapped", func(t *testing.T) {
		res, err := command(t.Context(), "app", ex, "head -c 3000000 /dev/zero | tr '\\0' a; echo done >&2")
		if err != nil {
			t.Fatal(err)
		}
		out, note, _ := strings.Cut(res.Stdout, "\nhangar: output truncated")
		if out != strings.Repeat("a", CommandOutputLimit) || !strings.Contains(note, "(1951424 more bytes dropped)") {
			t.Errorf("stdout: got %d bytes and note %q, want the first %d bytes and the count of the rest", len(out), note, CommandOutputLimit)
		}
		if res.Stderr != "done\n" || res.ExitCode != 0 {
			t.Errorf("got stderr %q and exit code %d, want done and 0", res.Stderr, res.ExitCode)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		for _, tc := range []struct{ app, executor, msg string }{
			{"app", "ex-nope", "executor ex-nope not found for application app"},
			{"other", ex, "executor " + ex + " not found for application other"},
			{"nope", ex, "nope"},
		} {
			_, err := command(t.Context(), tc.app, tc.executor, "true")
			if hangar.KindOf(err) != hangar.KindNotFound || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("app %s, executor %s: got %v, want kind %s saying %q", tc.app, tc.executor, err, hangar.KindNotFound, tc.msg)
			}
		}
	})
}
