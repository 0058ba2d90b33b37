package build

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// poisonApp is a node app whose dependency "evil" has an install script
// and whose own postinstall script rewrite another package, express, in the
// app's node_modules.
var poisonApp = map[string]string{
	"package.json":      `{"scripts": {"postinstall": "node poison.js"}}`,
	"package-lock.json": `{"lockfileVersion": 3, "packages": {"": {}, "node_modules/express": {}, "node_modules/evil": {"hasInstallScript": true}}}`,
}

const cleanExpress = "module.exports = 'express'\n"

// poisonTools plays npm for poisonApp: npm ci installs a clean express;
// the scripts (npm rebuild runs evil's and the app's postinstall; npm ci
// both) overwrite it. seen records what express held when npm rebuild
// started.
type poisonTools struct {
	mu   sync.Mutex
	seen []string
}

func (p *poisonTools) run(c Cmd) error {
	express := filepath.Join(c.Dir, "node_modules", "express", "index.js")
	switch c.Shell {
	case "node --version":
		c.Stdout.Write([]byte("v20.20.2\n"))
	case "npm --version":
		c.Stdout.Write([]byte("11.19.1\n"))
	case "npm ci", "npm ci --ignore-scripts":
		if err := os.MkdirAll(filepath.Dir(express), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(express, []byte(cleanExpress), 0o644); err != nil {
			return err
		}
		if c.Shell == "npm ci" {
			return os.WriteFile(express, []byte("poisoned by install scripts"), 0o644)
		}
	case "npm rebuild --foreground-scripts":
		data, err := os.ReadFile(express)
		if err != nil {
			return err
		}
		p.mu.Lock()
		p.seen = append(p.seen, string(data))
		p.mu.Unlock()
		return os.WriteFile(express, []byte("poisoned by install scripts"), 0o644)
	case "npm run --ignore-scripts postinstall":
		return errors.New("npm rebuild ran the app's postinstall already")
	}
	return nil
}

// TestBuilder_InstallDeps_CachePoisoning tries to poison the dependency
// cache from a build's install scripts, from a running executor that
// rewrites its node_modules in place and by tampering with an entry on
// disk; it checks that every later deploy, of the same org and of another,
// starts from the clean install.
func TestBuilder_InstallDeps_CachePoisoning(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.CacheDir = t.TempDir()
	tools := &poisonTools{}
	install := func(org string) (dir, log string) {
		t.Helper()
		dir = t.TempDir()
		writeFiles(t, dir, poisonApp)
		var out strings.Builder
		j := Job{Dir: dir, Log: &out, OrgID: org}
		j.Config.Language = hangar.LanguageNode
		if err := NewBuilder(opts, &fakeRunner{effect: tools.run}).InstallDeps(t.Context(), j); err != nil {
			t.Fatalf("InstallDeps: %v\nlog:\n%s", err, out.String())
		}
		return dir, out.String()
	}
	lastSeen := func() string {
		tools.mu.Lock()
		defer tools.mu.Unlock()
		return tools.seen[len(tools.seen)-1]
	}
	entryExpress := func(org string) string {
		t.Helper()
		m, _ := filepath.Glob(filepath.Join(opts.CacheDir, "node", org, "[0-9a-f]*", "node_modules", "express", "index.js"))
		if len(m) != 1 {
			t.Fatalf("got cache entries %v of org %s, want one", m, org)
		}
		return m[0]
	}
	readFile := func(name string) string {
		t.Helper()
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}

	// A build whose scripts rewrite express: the app's copy is changed, the
	// cache is not.
	dir, log := install("org-a")
	if !strings.Contains(log, "npm ci --ignore-scripts") {
		t.Fatalf("the first install did not fill the cache from a clean install:\n%s", log)
	}
	if got := readFile(filepath.Join(dir, "node_modules", "express", "index.js")); got != "poisoned by install scripts" {
		t.Errorf("the app's scripts did not run on its copy: express holds %q", got)
	}
	if got := readFile(entryExpress("org-a")); got != cleanExpress {
		t.Errorf("attempt: install scripts rewrite express -> the cache entry holds %q", got)
	} else {
		t.Logf("attempt: build's install scripts (a dependency's and the app's postinstall) rewrite node_modules/express -> denied (the cache holds the clean install)")
	}

	// A running executor rewrites its node_modules in place.
	if err := os.WriteFile(filepath.Join(dir, "node_modules", "express", "index.js"), []byte("poisoned by an executor"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, log = install("org-a")
	if !strings.Contains(log, "dependencies unchanged (cache ") {
		t.Fatalf("the second install of org-a missed the cache:\n%s", log)
	}
	if got := lastSeen(); got != cleanExpress {
		t.Errorf("attempt: poison the next deploy of the same org -> it got express %q", got)
	} else {
		t.Logf("attempt: build scripts and an executor rewrite node_modules/express in place, then the org deploys again -> denied (clean express)")
	}

	// Another org with the same lockfile never reads org-a's entry.
	_, log = install("org-b")
	if !strings.Contains(log, "dependencies not cached yet (cache ") {
		t.Errorf("attempt: org-b deploys org-a's lockfile -> cache hit, want a miss:\n%s", log)
	} else if got := lastSeen(); got != cleanExpress {
		t.Errorf("org-b got express %q", got)
	} else {
		t.Logf("attempt: another org deploys the same lockfile -> denied (a miss, filled from its own clean install)")
	}

	// An entry changed on disk is detected, dropped and filled again.
	if err := os.WriteFile(entryExpress("org-a"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, log = install("org-a")
	if !strings.Contains(log, "dependency cache not used (restore node_modules failed)") ||
		!strings.Contains(log, "npm ci --ignore-scripts") {
		t.Errorf("a tampered entry was not dropped and filled again:\n%s", log)
	}
	if got := lastSeen(); got != cleanExpress {
		t.Errorf("attempt: tamper with the cache entry -> the deploy got express %q", got)
	} else {
		t.Logf("attempt: tamper with a cache entry on disk -> denied (digest mismatch, entry filled again)")
	}
	if got := readFile(entryExpress("org-a")); got != cleanExpress {
		t.Errorf("the refilled entry holds %q", got)
	}
}

// TestBuilder_InstallDeps_PythonCacheTampered changes a cached wheel on
// disk: the next install detects it and builds the wheels again.
func TestBuilder_InstallDeps_PythonCacheTampered(t *testing.T) {
	t.Parallel()
	opts := testOptions()
	opts.CacheDir = t.TempDir()
	install := func() string {
		dir := t.TempDir()
		writeFiles(t, dir, map[string]string{"requirements.txt": "dep==1.0\n"})
		var log strings.Builder
		j := Job{Dir: dir, Log: &log, OrgID: "org-a"}
		j.Config.Language = hangar.LanguagePython
		if err := NewBuilder(opts, &fakeRunner{effect: fakeTools}).InstallDeps(t.Context(), j); err != nil {
			t.Fatalf("InstallDeps: %v\nlog:\n%s", err, log.String())
		}
		if exists(filepath.Join(dir, wheelsDir)) {
			t.Errorf("the wheels' copy is left in the app folder")
		}
		return log.String()
	}
	install()
	wheels, _ := filepath.Glob(filepath.Join(opts.CacheDir, "python", "org-a", "*", "wheels", "*.whl"))
	if len(wheels) != 1 {
		t.Fatalf("got cached wheels %v, want one", wheels)
	}
	if err := os.WriteFile(wheels[0], []byte("PK tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	log := install()
	if !strings.Contains(log, "dependency cache not used (restore the wheels failed)") || !strings.Contains(log, "pip wheel") {
		t.Errorf("a tampered wheel was not detected and rebuilt:\n%s", log)
	}
	if data, _ := os.ReadFile(wheels[0]); string(data) != "PK" {
		t.Errorf("the refilled wheel holds %q", data)
	}
}
