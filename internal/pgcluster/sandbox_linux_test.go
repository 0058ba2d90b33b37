package pgcluster_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/pgcluster"
)

// jailedConfig returns the config of a cluster under dir in a sandbox of
// its own, run as uid, whose cgroup parent is /hd-pgcluster-<name>. It
// skips the test without root or runc, and removes the parent cgroup runc
// leaves behind.
func jailedConfig(t *testing.T, dir, name string, uid uint32) pgcluster.Config {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed")
	}
	parent := "hd-pgcluster-" + name
	t.Cleanup(func() {
		parents, _ := filepath.Glob("/sys/fs/cgroup/*/" + parent)
		for _, p := range parents {
			os.Remove(p)
		}
	})
	return pgcluster.Config{
		DataDir: filepath.Join(dir, "cluster"), Password: "pw", Superuser: "admin",
		Sandbox: &pgcluster.Sandbox{
			ID: parent + "-" + filepath.Base(dir), UID: uid, GID: uid,
			BundleDir: filepath.Join(dir, "bundle"), CgroupParent: "/" + parent, RuncRoot: filepath.Join(dir, "runc"),
		},
	}
}

// TestCluster_Sandbox runs a cluster in its sandbox and checks, as its
// superuser, what programs and file functions reach.
func TestCluster_Sandbox(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := jailedConfig(t, dir, "test", 2099999000)
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := startCluster(t, cfg)
	conn := connect(t, c.URL("postgres"))
	if got := queryString(t, conn, "SELECT current_setting('is_superuser')"); got != "on" {
		t.Fatalf("is_superuser = %s, want on", got)
	}
	if _, err := conn.Exec(t.Context(), "CREATE TABLE out (line text)"); err != nil {
		t.Fatal(err)
	}
	run := func(cmd string) string {
		t.Helper()
		if _, err := conn.Exec(t.Context(), "TRUNCATE out; COPY out FROM PROGRAM '"+cmd+"' WITH (DELIMITER E'\\x01')"); err != nil {
			return "error: " + err.Error()
		}
		rows, err := conn.Query(t.Context(), "SELECT line FROM out")
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for rows.Next() {
			var l string
			rows.Scan(&l)
			lines = append(lines, l)
		}
		return strings.Join(lines, "\n")
	}
	if got := run("grep -i uid /proc/self/status || cat /proc/self/status"); !strings.Contains(got, "2099999000") {
		t.Errorf("programs run as %q, want uid 2099999000", got)
	}
	if got := run("cat " + secret + " 2>&1; true"); strings.Contains(got, "host secret") {
		t.Errorf("a program read a host file: %q", got)
	}
	var n int
	err := conn.QueryRow(t.Context(), "SELECT length(pg_read_file($1))", secret).Scan(&n)
	if err == nil {
		t.Errorf("pg_read_file read a host file")
	}
	t.Logf("pg_read_file(%s): %v", secret, err)
	if _, err := c.Dial(context.Background()); err != nil {
		t.Errorf("Dial: %v", err)
	}
}

// TestCluster_SandboxUnderGODEBUG starts a jailed cluster with runtime
// traces asked of every Go program, runc included: its `state` JSON must
// still parse, as what the Go runtime traces goes to stderr.
func TestCluster_SandboxUnderGODEBUG(t *testing.T) {
	cfg := jailedConfig(t, t.TempDir(), "godebug", 2099998000)
	t.Setenv("GODEBUG", "schedtrace=1")
	c := startCluster(t, cfg)
	if got := queryString(t, connect(t, c.URL("postgres")), "SELECT 1"); got != "1" {
		t.Errorf("SELECT 1 = %q", got)
	}
}
