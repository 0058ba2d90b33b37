//go:build unix

package build

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestExecRunner_Run(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cmd      Cmd
		wantOut  string
		wantKind hangar.Kind
		wantMsg  string
	}{
		{
			name:    "OutputAndEnv",
			cmd:     Cmd{Shell: `echo "out $GREETING"; echo err >&2; pwd`, Env: []string{"GREETING=hi"}},
			wantOut: "out hi\nerr\n{dir}\n",
		},
		{
			name:    "NothingInherited",
			cmd:     Cmd{Shell: `echo "[$HOME]"`},
			wantOut: "[]\n",
		},
		{
			name:     "ExitCode",
			cmd:      Cmd{Shell: "echo before; exit 3"},
			wantOut:  "before\n",
			wantKind: hangar.KindInvalid,
			wantMsg:  `command "echo before; exit 3" exited with code 3`,
		},
		{
			name:     "KilledBySignal",
			cmd:      Cmd{Shell: "kill -KILL $$"},
			wantKind: hangar.KindInvalid,
			wantMsg:  `command "kill -KILL $$" was stopped (signal: killed)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var out strings.Builder
			tt.cmd.Dir, tt.cmd.Stdout = dir, &out
			err := ExecRunner{}.Run(t.Context(), tt.cmd)
			checkErr(t, err, tt.wantKind, tt.wantMsg)
			if want := strings.ReplaceAll(tt.wantOut, "{dir}", dir); out.String() != want {
				t.Errorf("got output %q, want %q", out.String(), want)
			}
		})
	}
}

// TestExecRunner_Kill checks that a timeout or a cancelled context kills the
// shell and the processes it started.
func TestExecRunner_Kill(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		timeout  time.Duration
		cancel   bool
		wantKind hangar.Kind
		wantMsg  string
	}{
		{
			name:     "Timeout",
			timeout:  2 * time.Second, // long enough for a loaded machine to write child.pid
			wantKind: hangar.KindInvalid,
			wantMsg:  `command "sleep 60 & echo $! > child.pid; wait" timed out after 2s and was killed`,
		},
		{name: "Cancel", cancel: true, wantKind: hangar.KindInternal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			ctx := t.Context()
			if tt.cancel {
				var cancel context.CancelFunc
				ctx, cancel = context.WithCancel(ctx)
				go func() {
					// The shell creates the file before it writes the PID.
					waitFor(t, func() bool {
						b, _ := os.ReadFile(filepath.Join(dir, "child.pid"))
						return strings.HasSuffix(string(b), "\n")
					})
					cancel()
				}()
			}
			start := time.Now()
			err := ExecRunner{}.Run(ctx, Cmd{Dir: dir, Shell: "sleep 60 & echo $! > child.pid; wait", Timeout: tt.timeout})
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Run took %s, want it to stop promptly", d)
			}
			if tt.cancel && !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, want context.Canceled", err)
			}
			checkErr(t, err, tt.wantKind, tt.wantMsg)

			data, err := os.ReadFile(filepath.Join(dir, "child.pid"))
			if err != nil {
				t.Fatal(err)
			}
			pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return !alive(pid) })
		})
	}
}

// alive reports whether pid is a running (not zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// The state follows the parenthesized command name.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Error("condition not met within 10s")
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}
