package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// officialPkg is the official CLI release Hangar's CLI mirrors.
const officialPkg = "@dbos-inc/dbos-cloud@2.10.24"

var official struct {
	once sync.Once
	dir  string
	err  error
}

// officialCLI returns the directory of the official CLI package, installed
// with its dependencies (fast-glob, JSZip…) into the user cache on first use.
// It skips the test when node or npm is missing; CI has both.
func officialCLI(t testing.TB) string {
	t.Helper()
	for _, bin := range []string{"node", "npm"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not found: the official CLI %s cannot run here (CI has it)", bin, officialPkg)
		}
	}
	official.once.Do(func() { official.dir, official.err = installOfficial() })
	if official.err != nil {
		t.Fatal(official.err)
	}
	return official.dir
}

func installOfficial() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "hangar-test", "dbos-cloud-2.10.24")
	pkg := filepath.Join(dir, "node_modules", "@dbos-inc", "dbos-cloud")
	if _, err := os.Stat(filepath.Join(pkg, "dist", "cli.js")); err == nil {
		return pkg, nil
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "install-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", tmp, officialPkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("npm install %s: %w\n%s", officialPkg, err, out)
	}
	// Another test process may have won the race: its copy is as good.
	if err := os.Rename(tmp, dir); err != nil {
		if _, serr := os.Stat(pkg); serr != nil {
			return "", err
		}
	}
	return pkg, nil
}
