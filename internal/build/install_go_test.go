package build

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// TestBuilder_InstallDeps_RealGo builds a module without dependencies with
// the real go command, its caches in CacheDir.
func TestBuilder_InstallDeps_RealGo(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go build; skipped with -short")
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not installed")
	}
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"go.mod": "module example.com/greeter\n\ngo 1.22\n",
		// println rather than fmt: compiling the runtime alone into an empty
		// GOCACHE is slow enough.
		"main.go": "package main\n\nfunc main() { println(\"hello from go\") }\n",
	})
	cache := t.TempDir()
	opts := Options{
		// GOTOOLCHAIN=local: the build must not download a toolchain here.
		Env:      []string{"PATH=" + filepath.Dir(goBin) + ":/usr/bin:/bin", "HOME=" + t.TempDir(), "GOTOOLCHAIN=local"},
		CacheDir: cache,
		GoProxy:  "off",
	}
	var log strings.Builder
	j := Job{Dir: dir, Log: &log, OrgID: "org1"}
	j.Config.Language = hangar.LanguageGo
	if err := NewBuilder(opts, ExecRunner{}).InstallDeps(t.Context(), j); err != nil {
		t.Fatalf("InstallDeps: %v\nlog:\n%s", err, log.String())
	}
	out, err := exec.Command(filepath.Join(dir, "main")).CombinedOutput()
	if err != nil || string(out) != "hello from go\n" {
		t.Errorf("./main printed %q, %v; want \"hello from go\\n\"", out, err)
	}
	if entries, err := os.ReadDir(filepath.Join(cache, "go", "org1", "build")); err != nil || len(entries) == 0 {
		t.Errorf("GOCACHE in CacheDir/go/<org>/build is empty (%v): the build did not use it", err)
	}
}
