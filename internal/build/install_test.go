package build

import (
	"github.com/hangar-oss/hangar/internal/golden"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// TestBuilder_InstallDeps checks the commands each kind of app gets: the log
// and the plan are in testdata/install_<case>.golden.
func TestBuilder_InstallDeps(t *testing.T) {
	t.Parallel()
	const buildScript = `{"scripts": {"build": "tsc", "start": "node dist/main.js"}}`
	const noBuild = `{"scripts": {"start": "node main.js"}}`
	tests := []struct {
		name     string
		lang     hangar.Language
		files    map[string]string
		opts     func(*Options)
		fail     map[string]error
		wantKind hangar.Kind
		wantMsg  string
	}{
		{name: "NodeLockfileBuild", lang: hangar.LanguageNode, files: map[string]string{"package.json": buildScript, "package-lock.json": "{}"}},
		{name: "NodeLockfileNoBuild", lang: hangar.LanguageNode, files: map[string]string{"package.json": noBuild, "package-lock.json": "{}"}},
		{name: "NodeNoLockfileBuild", lang: hangar.LanguageNode, files: map[string]string{"package.json": buildScript}},
		{name: "NodeNoLockfileNoBuild", lang: hangar.LanguageNode, files: map[string]string{"package.json": noBuild}},
		{name: "NodeShrinkwrap", lang: hangar.LanguageNode, files: map[string]string{"package.json": "{}", "npm-shrinkwrap.json": "{}"}},
		{
			name: "NodeCache", lang: hangar.LanguageNode, files: map[string]string{"package.json": "{}"},
			opts: func(o *Options) { o.NPMCacheDir = "/var/cache/npm" },
		},
		{
			name: "NodeInstallFails", lang: hangar.LanguageNode, files: map[string]string{"package.json": buildScript},
			fail:     map[string]error{"npm install": hangar.Errorf(hangar.KindInvalid, `command "npm install" exited with code 1`)},
			wantKind: hangar.KindInvalid, wantMsg: `configuration: command "npm install" exited with code 1`,
		},
		{
			name: "NodeNoPackageJSON", lang: hangar.LanguageNode,
			wantKind: hangar.KindInvalid, wantMsg: "configuration: package.json not found: a node app needs one at the root of its folder",
		},
		{
			name: "NodeBadPackageJSON", lang: hangar.LanguageNode, files: map[string]string{"package.json": "{"},
			wantKind: hangar.KindInvalid, wantMsg: "configuration: package.json is not valid JSON: unexpected end of JSON input",
		},
		{name: "PythonRequirements", lang: hangar.LanguagePython, files: map[string]string{"requirements.txt": "dbos\n"}},
		{name: "PythonNoRequirements", lang: hangar.LanguagePython},
		{
			name: "PythonIndex", lang: hangar.LanguagePython, files: map[string]string{"requirements.txt": "dbos\n"},
			opts: func(o *Options) { o.PipIndexURL, o.PipFindLinks = "http://pypi.local/simple", "/wheels" },
		},
		{name: "GoPrebuilt", lang: hangar.LanguageGo, files: map[string]string{"main*": "\x7fELF", "go.mod": "module app\n"}},
		{name: "GoNotExecutable", lang: hangar.LanguageGo, files: map[string]string{"main": "\x7fELF", "go.mod": "module app\n"}},
		{name: "GoSource", lang: hangar.LanguageGo, files: map[string]string{"main.go": "package main\n", "go.mod": "module app\n"}},
		{
			name: "TooLarge", lang: hangar.LanguageGo, files: map[string]string{"main*": strings.Repeat("x", 1500)},
			opts:     func(o *Options) { o.MaxInstalledBytes = 1024 },
			wantKind: hangar.KindTooLarge, wantMsg: "the application is 1.5 KiB once its dependencies are installed, over the 1 KiB limit",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			opts := testOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			r := &fakeRunner{fail: tt.fail}
			var log strings.Builder
			j := Job{Dir: dir, Log: &log, Env: []string{"NOT_FOR_INSTALL=1"}}
			j.Config.Language = tt.lang
			err := NewBuilder(opts, r).InstallDeps(t.Context(), j)
			checkErr(t, err, tt.wantKind, tt.wantMsg)
			for _, c := range r.cmds {
				if c.Dir != dir {
					t.Errorf("%q ran in %q, want %q", c.Shell, c.Dir, dir)
				}
			}
			golden.Check(t, golden.File("install_"+tt.name), log.String()+"--- plan ---\n"+r.plan(opts.Env))
		})
	}
}

// TestBuilder_InstallDeps_RealNPM runs npm for real on an app without
// dependencies, so it needs no registry.
func TestBuilder_InstallDeps_RealNPM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs npm; skipped with -short")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm not installed")
	}
	t.Parallel()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"package.json": `{"name": "app", "version": "1.0.0", "scripts": {"build": "node -e \"require('fs').writeFileSync('built', 'ok')\""}}`,
	})
	opts := Options{
		Env:         []string{"PATH=" + filepath.Dir(npm) + ":/usr/bin:/bin", "HOME=" + t.TempDir()},
		NPMCacheDir: t.TempDir(),
	}
	var log strings.Builder
	j := Job{Dir: dir, Log: &log}
	j.Config.Language = hangar.LanguageNode
	b := NewBuilder(opts, ExecRunner{})
	if err := b.InstallDeps(t.Context(), j); err != nil {
		t.Fatalf("InstallDeps: %v\nlog:\n%s", err, log.String())
	}
	if err := b.Prune(t.Context(), j); err != nil {
		t.Fatalf("Prune: %v\nlog:\n%s", err, log.String())
	}
	got, err := os.ReadFile(filepath.Join(dir, "built"))
	if err != nil || string(got) != "ok" {
		t.Errorf("build output = %q, %v; want \"ok\"\nlog:\n%s", got, err, log.String())
	}
	for _, h := range []string{"==> configuration: npm install\n", "==> configuration: npm run build\n", "==> configuration: no devDependencies: nothing to prune\n"} {
		if !strings.Contains(log.String(), h) {
			t.Errorf("log lacks %q:\n%s", h, log.String())
		}
	}
}
