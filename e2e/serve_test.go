package e2e

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/pgcluster"
)

// TestServe_ExternalDatabase runs Hangar on a metadata database it does not
// own (--database-url): users added on that database log in.
func TestServe_ExternalDatabase(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "hangar-e2e-extpg-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	cl, err := pgcluster.New(pgcluster.Config{DataDir: filepath.Join(dir, "pg"), Port: port, Password: "ext-secret-pw", Settings: map[string]string{"fsync": "off"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := cl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Stop(context.Background()) })
	url := cl.URL("postgres")

	h := startHangar(t, "--database-url", url)
	out, err := runOut(filepath.Join(bin, "hangar"), "users", "add", "erin", "--data-dir", h.DataDir, "--database-url", url)
	if err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	app := t.TempDir()
	if out, code := h.ours(t, app, "login", "--with-refresh-token", f[len(f)-1]); code != 0 {
		t.Fatalf("login against a Hangar on an external database: exit %d\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(h.DataDir, "postgres")); err == nil {
		t.Errorf("hangar started its embedded cluster although --database-url was given")
	}
}
