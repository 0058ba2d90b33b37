package build

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// TestBuilder_InstallDeps_GreeterCache installs testdata/apps/greeter with
// real npm and the registry three times, and logs how long each took:
// with an empty npm cache and an empty dependency cache, with a warm npm
// cache but an empty dependency cache, and from the dependency cache.
func TestBuilder_InstallDeps_GreeterCache(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm ci against the registry; skipped with -short")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed")
	}
	t.Parallel()
	npmCache, depCache := t.TempDir(), t.TempDir()
	install := func(t *testing.T, cacheDir string) (string, string, time.Duration) {
		t.Helper()
		dir := filepath.Join(t.TempDir(), "greeter")
		if err := copyTree(dir, "../../testdata/apps/greeter", nil); err != nil {
			t.Fatal(err)
		}
		opts := Options{
			Env:         []string{"PATH=" + filepath.Dir(npm) + ":/usr/bin:/bin", "HOME=" + t.TempDir()},
			NPMCacheDir: npmCache,
			CacheDir:    cacheDir,
		}
		var log strings.Builder
		j := Job{Dir: dir, Log: &log, OrgID: "org-1"}
		j.Config.Language = hangar.LanguageNode
		start := time.Now()
		if err := NewBuilder(opts, ExecRunner{}).InstallDeps(t.Context(), j); err != nil {
			t.Fatalf("InstallDeps: %v\nlog:\n%s", err, log.String())
		}
		took := time.Since(start)
		for _, mod := range []string{"express", "pg", "@dbos-inc/dbos-sdk"} {
			if !exists(filepath.Join(dir, "node_modules", mod, "package.json")) {
				t.Errorf("node_modules/%s is missing\nlog:\n%s", mod, log.String())
			}
		}
		size, err := dirSize(filepath.Join(dir, "node_modules"))
		if err != nil {
			t.Fatal(err)
		}
		return log.String(), formatBytes(size), took
	}

	log, size, cold := install(t, depCache)
	if !strings.Contains(log, "==> configuration: npm ci --ignore-scripts\n") {
		t.Fatalf("first install did not run npm ci:\n%s", log)
	}
	_, _, warm := install(t, t.TempDir())
	log, _, hit := install(t, depCache)
	if !strings.Contains(log, "dependencies unchanged (cache ") || strings.Contains(log, "npm ci") {
		t.Errorf("second install with the same cache did not reuse it:\n%s", log)
	}
	entry, _ := filepath.Glob(filepath.Join(depCache, "node", "org-1", "*", "node_modules"))
	var entrySize int64
	if len(entry) == 1 {
		entrySize, _ = dirSize(entry[0])
	}
	t.Logf("greeter (node_modules %s after prune, cache entry %s): npm ci with empty npm cache %s, npm ci with warm npm cache %s, from the dependency cache %s",
		size, formatBytes(entrySize), cold.Round(time.Millisecond), warm.Round(time.Millisecond), hit.Round(time.Millisecond))
}
