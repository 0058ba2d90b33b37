package pgcluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestArchiveCommands runs the archive and restore commands with sh, as
// the server does, on a directory with a quote in its name.
func TestArchiveCommands(t *testing.T) {
	t.Parallel()
	gzip, _ := exec.LookPath("gzip")
	for _, tt := range []struct{ name, gzip string }{{"Plain", ""}, {"Gzip", gzip}} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if tt.name == "Gzip" && gzip == "" {
				t.Skip("no gzip")
			}
			root := t.TempDir()
			pgdata, archive := filepath.Join(root, "data"), filepath.Join(root, "it's archive")
			for _, d := range []string{filepath.Join(pgdata, "pg_wal"), archive} {
				if err := os.MkdirAll(d, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			seg := "000000010000000000000001"
			if err := os.WriteFile(filepath.Join(pgdata, "pg_wal", seg), []byte("wal bytes"), 0o600); err != nil {
				t.Fatal(err)
			}
			expand := func(cmd, p, f string) string {
				return strings.NewReplacer("%p", p, "%f", f).Replace(cmd)
			}
			sh := func(cmd string) error {
				c := exec.Command("/bin/sh", "-c", cmd)
				c.Dir = pgdata
				out, err := c.CombinedOutput()
				if err != nil {
					t.Logf("%s: %s", cmd, out)
				}
				return err
			}
			archiveCmd := archiveSettings(archive, tt.gzip, time.Minute)["archive_command"]
			for range 2 { // archiving again succeeds without rewriting
				if err := sh(expand(archiveCmd, "pg_wal/"+seg, seg)); err != nil {
					t.Fatalf("archive_command: %v", err)
				}
			}
			restore := restoreCommand(archive, tt.gzip)
			if err := sh(expand(restore, "pg_wal/RECOVERYXLOG", seg)); err != nil {
				t.Fatalf("restore_command: %v", err)
			}
			if b, err := os.ReadFile(filepath.Join(pgdata, "pg_wal", "RECOVERYXLOG")); err != nil || string(b) != "wal bytes" {
				t.Errorf("restored segment = %q, %v; want the archived bytes", b, err)
			}
			if err := sh(expand(restore, "pg_wal/RECOVERYHISTORY", "00000002.history")); err == nil {
				t.Error("restore_command of a file the archive lacks succeeded, want a failure")
			}
			tmp, _ := filepath.Glob(filepath.Join(archive, "*.tmp"))
			if len(tmp) != 0 {
				t.Errorf("temporary files left in the archive: %v", tmp)
			}
		})
	}
}
