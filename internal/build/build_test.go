package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeRunner records commands instead of running them; fail maps a command
// line to the error it returns, and effect, when set, plays the part of
// the command (writes its files and output).
type fakeRunner struct {
	mu     sync.Mutex
	cmds   []Cmd
	fail   map[string]error
	effect func(Cmd) error
}

func (f *fakeRunner) Run(_ context.Context, c Cmd) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cmds = append(f.cmds, c)
	if err := f.fail[c.Shell]; err != nil {
		return err
	}
	if f.effect != nil {
		return f.effect(c)
	}
	return nil
}

// plan renders the recorded commands, one a line: the folder when it is a
// cache fill's, the variables added to the base environment, the timeout
// and the command line.
func (f *fakeRunner) plan(base []string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var b strings.Builder
	for _, c := range f.cmds {
		extra := c.Env[len(base):]
		if strings.Contains(c.Dir, "/.tmp-") { // a cache fill's clean tree
			fmt.Fprintf(&b, "(in %s) ", c.Dir)
		}
		fmt.Fprintf(&b, "[%s] timeout=%s $ %s\n", strings.Join(extra, " "), c.Timeout, c.Shell)
	}
	return b.String()
}

// testOptions are Options with a fixed base environment.
func testOptions() Options {
	return Options{Env: []string{"PATH=/bin", "HOME=/home"}}
}

// writeFiles creates files below dir; names ending in "*" are executable.
func writeFiles(t testing.TB, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFormatBytes(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{1023, "1023 B"},
		{1536, "1.5 KiB"},
		{500 << 20, "500 MiB"},
		{2 << 30, "2 GiB"},
		{(2 << 30) + (1 << 29), "2.5 GiB"},
	} {
		if got := formatBytes(tt.n); got != tt.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}
