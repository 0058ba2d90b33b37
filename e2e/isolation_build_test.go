package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestIsolation_Build deploys an app whose preinstall script, setup and
// migration each try to escape their sandbox (testdata/apps/escaper
// attempts.sh), and checks that every attempt failed; and that setup's
// "apt install traceroute" gives the app's executors traceroute, not the
// host.
func TestIsolation_Build(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "ivy")
	hangarPID := strconv.Itoa(h.cmd.Process.Pid)
	// A secret outside /tmp, which the steps' private /tmp would hide anyway.
	hostFile := "/opt/hangar-e2e-secret-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(hostFile, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hostFile) })
	dir := fixture(t, "escaper", map[string]func(string) string{
		"attempts.sh": strings.NewReplacer("@DATADIR@", h.DataDir, "@HANGARPID@", hangarPID, "@HOSTFILE@", hostFile).Replace,
	})
	must := func(args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	must("login", "--with-refresh-token", refresh)
	must("db", "provision", "ivydb", "-U", "dbos_admin", "-W", "s3cret-pass")
	must("app", "deploy")

	logs := must("app", "logs")
	for _, stage := range []string{"preinstall", "setup", "migrate"} {
		n := 0
		for line := range strings.Lines(logs) {
			i := strings.Index(line, "attempt: "+stage+" ")
			if i < 0 {
				continue
			}
			line = strings.TrimSpace(line[i:])
			n++
			t.Log(line)
			if strings.Contains(line, "-> ALLOWED") {
				t.Errorf("%s escaped: %s", stage, line)
			}
		}
		if n < 10 {
			t.Errorf("%s reported %d attempts, want 10; logs:\n%s", stage, n, logs)
		}
		for _, p := range []string{"/etc/hangar-escape-" + stage, filepath.Join(h.DataDir, "escape-"+stage), "/usr/hangar-escape-" + stage} {
			if _, err := os.Stat(p); err == nil {
				os.Remove(p)
				t.Errorf("%s wrote %s on the host", stage, p)
			} else {
				t.Logf("attempt: %s writes %s -> host unchanged", stage, p)
			}
		}
	}

	// The seed's setup example: traceroute in the app's executors only.
	out := must("app", "cmd", "--", "traceroute --version")
	if !strings.Contains(out, "traceroute") {
		t.Errorf("traceroute --version in the executor: %q", out)
	}
	if _, err := exec.LookPath("traceroute"); err == nil {
		t.Logf("note: the host has its own traceroute")
	} else {
		t.Logf("setup's apt install traceroute: in the executor (%s), not on the host", strings.TrimSpace(out))
	}
}
