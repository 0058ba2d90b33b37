package build

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/hangar-oss/hangar/internal/golden"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestCacheKey(t *testing.T) {
	t.Parallel()
	a := cacheKey([]byte("ab"), []byte("c"))
	if b := cacheKey([]byte("a"), []byte("bc")); a == b {
		t.Errorf("moving a byte between parts kept the key %s", a)
	}
	if b := cacheKey([]byte("ab"), []byte("c")); a != b {
		t.Errorf("got key %s, then %s for the same parts", a, b)
	}
	if len(a) != 64 {
		t.Errorf("got key %q, want 64 hex digits", a)
	}
}

// tree lists the files below dir as "path mode [-> target | content]".
func tree(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s", rel, fi.Mode())
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += " " + string(data)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestCopyTree(t *testing.T) {
	t.Parallel()
	src := filepath.Join(t.TempDir(), "src")
	writeFiles(t, src, map[string]string{
		"a/index.js":  "module.exports = 1",
		"a/cli.js*":   "#!/usr/bin/env node",
		"ro/file.txt": "read-only folder",
	})
	if err := os.MkdirAll(filepath.Join(src, ".bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../a/cli.js", filepath.Join(src, ".bin", "a")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent", filepath.Join(src, "dangling")); err != nil {
		t.Fatal(err)
	}
	// Larger than what copyTree hands to its workers: it copies it itself.
	if err := os.WriteFile(filepath.Join(src, "a", "big.bin"), bytes.Repeat([]byte("0123456789abcdef"), smallFile/8), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "ro", "file.txt"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(src, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.Chmod(filepath.Join(src, "ro"), 0o755) })

	dst := filepath.Join(t.TempDir(), "dst")
	h := sha256.New()
	if err := copyTree(dst, src, h); err != nil {
		t.Fatalf("copyTree: %v", err)
	}
	t.Cleanup(func() { _ = removeTree(dst) })
	if diff := cmp.Diff(tree(t, src), tree(t, dst)); diff != "" {
		t.Errorf("copy differs (-src +dst):\n%s", diff)
	}
	// What the copy hashed is what a digest of the tree reads.
	want, err := treeDigest(src)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Errorf("copy's digest %s, want the tree's %s", got, want)
	}

	// A copy, not links: writing to it leaves the source alone.
	if err := os.WriteFile(filepath.Join(dst, "a", "index.js"), []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(src, "a", "index.js")); string(got) != "module.exports = 1" {
		t.Errorf("source changed to %q through the copy", got)
	}
	if err := removeTree(dst); err != nil {
		t.Errorf("removeTree: %v", err)
	}
}

// TestBuilder_commitEntry fills one key from several goroutines at once:
// one entry wins, whole, and no staging folder is left.
func TestBuilder_commitEntry(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	key := cacheKey([]byte("k"))
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() {
			staged, err := stageEntry(cache, key)
			if err != nil {
				errs[i] = err
				return
			}
			for f := range 20 {
				if err := os.WriteFile(filepath.Join(staged, fmt.Sprint(f)), []byte(fmt.Sprint(i)), 0o644); err != nil {
					errs[i] = err
					return
				}
			}
			errs[i] = commitEntry(cache, key, staged)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("writer %d: %v", i, err)
		}
	}
	entries, err := os.ReadDir(cache)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != key {
		t.Fatalf("got cache entries %v, want only %s", entries, key)
	}
	var writers []string
	for f := range 20 {
		data, err := os.ReadFile(filepath.Join(cache, key, fmt.Sprint(f)))
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, string(data))
	}
	for _, w := range writers {
		if w != writers[0] {
			t.Errorf("entry mixes the files of writers %v", writers)
			break
		}
	}
}

func TestReadRequirements(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		files      map[string]string
		wantReason string
		wantIn     string // a string the key material must contain
	}{
		{name: "Pinned", files: map[string]string{"requirements.txt": "dbos==1.0.0\n# comment\nrequests>=2 ; python_version > '3.8'  # why\n"}, wantIn: "dbos==1.0.0"},
		{name: "Include", files: map[string]string{"requirements.txt": "-r base.txt\n--constraint=c/constraints.txt\n", "base.txt": "flask==3\n", "c/constraints.txt": "click<9\n"}, wantIn: "click<9"},
		{name: "IncludeMissing", files: map[string]string{"requirements.txt": "-rnothere.txt\n"}},
		{name: "Hash", files: map[string]string{"requirements.txt": "dbos==1.0.0 \\\n    --hash=sha256:abc\n"}, wantReason: "requirements pinned with --hash (wheels built here from source would not match)"},
		{name: "HashInInclude", files: map[string]string{"requirements.txt": "-r base.txt\n", "base.txt": "x==1 --hash=sha256:abc\n"}, wantReason: "requirements pinned with --hash (wheels built here from source would not match)"},
		{name: "Editable", files: map[string]string{"requirements.txt": "-e .\n"}, wantReason: "an editable requirement (.)"},
		{name: "LocalPath", files: map[string]string{"requirements.txt": "./vendor/pkg-1.0.tar.gz\n"}, wantReason: "a requirement on a local path (./vendor/pkg-1.0.tar.gz)"},
		{name: "FileURL", files: map[string]string{"requirements.txt": "pkg @ file:///tmp/pkg.whl\n"}, wantReason: "a requirement on a local path (pkg)"},
		{name: "IncludeOutside", files: map[string]string{"requirements.txt": "-r ../../etc/passwd\n"}, wantReason: "requirements included from outside the app folder (../../etc/passwd)"},
		{name: "IncludeURL", files: map[string]string{"requirements.txt": "-r https://example.com/r.txt\n"}, wantReason: "requirements included from a URL (https://example.com/r.txt)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			root, err := os.OpenRoot(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer root.Close()
			var out bytes.Buffer
			reason, err := readRequirements(root, "requirements.txt", 0, &out, map[string][]byte{})
			if err != nil {
				t.Fatal(err)
			}
			if reason != tt.wantReason {
				t.Errorf("got reason %q, want %q", reason, tt.wantReason)
			}
			if !strings.Contains(out.String(), tt.wantIn) {
				t.Errorf("key material %q lacks %q", out.String(), tt.wantIn)
			}
		})
	}
}

// fakeTools plays npm, node, python and pip for the cache tests: npm ci
// installs one package with a bin link, the venv names Python 3.11.7 and
// pip wheel writes one wheel.
func fakeTools(c Cmd) error {
	switch {
	case c.Shell == "node --version":
		fmt.Fprintln(c.Stdout, "v20.20.2")
	case c.Shell == "npm --version":
		fmt.Fprintln(c.Stdout, "11.19.1")
	case c.Shell == "npm ci" || c.Shell == "npm ci --ignore-scripts":
		nm := filepath.Join(c.Dir, "node_modules")
		if err := os.MkdirAll(filepath.Join(nm, "dep"), 0o755); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(nm, ".bin"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(nm, "dep", "cli.js"), []byte("#!/usr/bin/env node\n"), 0o755); err != nil {
			return err
		}
		return os.Symlink("../dep/cli.js", filepath.Join(nm, ".bin", "dep"))
	case c.Shell == "python3 -m venv .venv":
		if err := os.MkdirAll(filepath.Join(c.Dir, ".venv"), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(c.Dir, ".venv", "pyvenv.cfg"), []byte("home = /usr/bin\nversion = 3.11.7\n"), 0o644)
	case strings.HasPrefix(c.Shell, ".venv/bin/pip wheel --wheel-dir "):
		dir := filepath.Join(c.Dir, strings.Fields(c.Shell)[3])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, "dep-1.0-py3-none-any.whl"), []byte("PK"), 0o644)
	}
	return nil
}

// TestBuilder_InstallDeps_Cache installs the same app twice with one
// cache, in two folders: the log and the plan of both are in
// testdata/cache_<case>.golden, the cache folder written $CACHE.
func TestBuilder_InstallDeps_Cache(t *testing.T) {
	t.Parallel()
	const lock = `{"name": "app", "lockfileVersion": 3, "packages": {}}`
	tests := []struct {
		name  string
		lang  hangar.Language
		files map[string]string
		check func(t *testing.T, cache, first, second string)
	}{
		{
			name: "NodeLockfile", lang: hangar.LanguageNode,
			files: map[string]string{
				"package.json":      `{"scripts": {"build": "tsc", "postinstall": "prisma generate", "start": "node dist/main.js"}}`,
				"package-lock.json": lock,
			},
			check: func(t *testing.T, cache, first, second string) {
				if diff := cmp.Diff(tree(t, filepath.Join(first, "node_modules")), tree(t, filepath.Join(second, "node_modules"))); diff != "" {
					t.Errorf("restored node_modules differs (-installed +restored):\n%s", diff)
				}
				// The app's copy is its own: changing it leaves the cache alone.
				if err := os.WriteFile(filepath.Join(second, "node_modules", "dep", "cli.js"), []byte("tampered"), 0o755); err != nil {
					t.Fatal(err)
				}
				entries, _ := filepath.Glob(filepath.Join(cache, "node", "org-1", "*", "node_modules", "dep", "cli.js"))
				for _, e := range entries {
					if got, _ := os.ReadFile(e); string(got) != "#!/usr/bin/env node\n" {
						t.Errorf("cache entry %s changed to %q", e, got)
					}
				}
				if len(entries) != 1 {
					t.Errorf("got cache entries %v, want one", entries)
				}
			},
		},
		{
			name: "NodeNoLockfile", lang: hangar.LanguageNode,
			files: map[string]string{"package.json": `{}`},
		},
		{
			name: "Python", lang: hangar.LanguagePython,
			files: map[string]string{"requirements.txt": "dep==1.0\n"},
		},
		{
			name: "PythonHash", lang: hangar.LanguagePython,
			files: map[string]string{"requirements.txt": "dep==1.0 --hash=sha256:00\n"},
		},
		{
			name: "GoSource", lang: hangar.LanguageGo,
			files: map[string]string{"main.go": "package main\n", "go.mod": "module app\n"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cache := t.TempDir()
			opts := testOptions()
			opts.CacheDir = cache
			var out strings.Builder
			var dirs []string
			for _, run := range []string{"first", "second"} {
				dir := t.TempDir()
				dirs = append(dirs, dir)
				writeFiles(t, dir, tt.files)
				r := &fakeRunner{effect: fakeTools}
				var log strings.Builder
				j := Job{Dir: dir, Log: &log, OrgID: "org-1"}
				j.Config.Language = tt.lang
				if err := NewBuilder(opts, r).InstallDeps(t.Context(), j); err != nil {
					t.Fatalf("%s InstallDeps: %v\nlog:\n%s", run, err, log.String())
				}
				fmt.Fprintf(&out, "=== %s install ===\n%s--- plan ---\n%s", run, log.String(), r.plan(opts.Env))
			}
			got := regexpTmp.ReplaceAllString(strings.ReplaceAll(strings.ReplaceAll(out.String(), cache, "$CACHE"), dirs[0], "$APP"), ".tmp-*")
			got = strings.ReplaceAll(got, dirs[1], "$APP")
			golden.Check(t, golden.File("cache_"+tt.name), got)
			if tt.check != nil {
				tt.check(t, cache, dirs[0], dirs[1])
			}
			if leftovers, _ := filepath.Glob(filepath.Join(cache, "*", "*", ".tmp-*")); len(leftovers) != 0 {
				t.Errorf("staging folders left in the cache: %v", leftovers)
			}
		})
	}
}

// regexpTmp matches the random part of a staging folder's name.
var regexpTmp = regexp.MustCompile(`\.tmp-[0-9a-f]{12}-[0-9]+`)

// TestBuilder_InstallDeps_CacheDamaged checks that an entry that cannot
// serve a build is dropped and filled again, and the install still works.
func TestBuilder_InstallDeps_CacheDamaged(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		lang   hangar.Language
		files  map[string]string
		damage func(t *testing.T, entry string) func(Cmd) error // returns the second run's extra effect
	}{
		{
			name: "Node", lang: hangar.LanguageNode,
			files: map[string]string{"package.json": `{}`, "package-lock.json": `{}`},
			damage: func(t *testing.T, entry string) func(Cmd) error {
				// copyTree refuses a named pipe.
				if err := syscallMkfifo(filepath.Join(entry, "node_modules", "dep", "pipe")); err != nil {
					t.Skipf("mkfifo: %v", err)
				}
				return nil
			},
		},
		{
			name: "Python", lang: hangar.LanguagePython,
			files: map[string]string{"requirements.txt": "dep==1.0\n"},
			damage: func(t *testing.T, entry string) func(Cmd) error {
				failed := false
				return func(c Cmd) error {
					if strings.Contains(c.Shell, "--find-links "+wheelsDir+" ") && !failed {
						failed = true
						return hangar.Errorf(hangar.KindInvalid, "command %q exited with code 1", c.Shell)
					}
					return nil
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions()
			opts.CacheDir = t.TempDir()
			install := func(extra func(Cmd) error) string {
				dir := t.TempDir()
				writeFiles(t, dir, tt.files)
				r := &fakeRunner{effect: func(c Cmd) error {
					if extra != nil {
						if err := extra(c); err != nil {
							return err
						}
					}
					return fakeTools(c)
				}}
				var log strings.Builder
				j := Job{Dir: dir, Log: &log, OrgID: "org-1"}
				j.Config.Language = tt.lang
				if err := NewBuilder(opts, r).InstallDeps(t.Context(), j); err != nil {
					t.Fatalf("InstallDeps: %v\nlog:\n%s", err, log.String())
				}
				return log.String()
			}
			install(nil)
			entries, _ := filepath.Glob(filepath.Join(opts.CacheDir, "*", "org-1", "[0-9a-f]*"))
			if len(entries) != 1 {
				t.Fatalf("got cache entries %v after the first install, want one", entries)
			}
			log := install(tt.damage(t, entries[0]))
			if !strings.Contains(log, "dependency cache not used (") || !strings.Contains(log, "cached ") {
				t.Errorf("second install did not drop and refill the entry:\n%s", log)
			}
			log = install(nil)
			if !strings.Contains(log, "dependencies unchanged (cache ") {
				t.Errorf("third install did not reuse the refilled entry:\n%s", log)
			}
		})
	}
}
