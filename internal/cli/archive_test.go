package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var archiveSeed = flag.Uint64("archive-seed", 5, "seed of the trees TestArchive_MatchesOfficialCLI generates")

// TestArchive_MatchesOfficialCLI generates directory trees and .dbosignore
// files and checks that our archive equals, entry for entry (name, mode,
// creator, config text), the one the official CLI uploads: its real
// deployAppCode runs in node against a fake API that captures the zips.
func TestArchive_MatchesOfficialCLI(t *testing.T) {
	t.Parallel()
	pkg := officialCLI(t)
	const cases = 240
	api := newFakeAPI(t)
	base := t.TempDir()
	rng := rand.New(rand.NewPCG(*archiveSeed, 0))
	t.Logf("seed %d (-archive-seed)", *archiveSeed)
	var dirs []string
	for i := range cases {
		dir := filepath.Join(base, fmt.Sprintf("case-%d", i))
		genCase(t, rng, dir, fmt.Sprintf("case-%d", i))
		writeTestCredentials(t, dir, unsignedJWT, "")
		dirs = append(dirs, dir)
	}
	runOfficialDeploys(t, pkg, api, dirs)

	for i, dir := range dirs {
		app := fmt.Sprintf("case-%d", i)
		want := api.archive(app)
		if want == nil {
			t.Fatalf("%s: the official CLI uploaded no archive", app)
		}
		got := ourArchive(t, dir)
		if diff := cmp.Diff(want, got); diff != "" {
			ignore, _ := os.ReadFile(filepath.Join(dir, ignoreFile))
			t.Errorf("%s: archive differs from the official CLI's (-official +ours):\n%s\n.dbosignore:\n%s", app, diff, ignore)
		}
	}
}

func ourArchive(t testing.TB, dir string) []zipEntry {
	t.Helper()
	e := &env{getenv: func(string) string { return "" }, stderr: &bytes.Buffer{}}
	files, err := archiveFiles(dir)
	if err != nil {
		t.Fatal(err)
	}
	config, err := os.ReadFile(filepath.Join(dir, defaultConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := writeArchive(&buf, dir, files, e.interpolate(config)); err != nil {
		t.Fatal(err)
	}
	entries, err := readZip(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

// runOfficialDeploys runs the official deployAppCode in each dir, in one node
// process. Its 100ms wait between status polls is cut to zero.
func runOfficialDeploys(t *testing.T, pkg string, api *fakeAPI, dirs []string) {
	t.Helper()
	script := `
import { deployAppCode } from ` + jsString(filepath.Join(pkg, "dist", "applications", "deploy-app-code.js")) + `;
import fs from 'fs';
const realSetTimeout = globalThis.setTimeout;
globalThis.setTimeout = (f, ms, ...a) => realSetTimeout(f, ms === 100 ? 0 : ms, ...a);
for (const dir of JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))) {
  process.chdir(dir);
  const code = await deployAppCode(process.env.DBOS_DOMAIN, false, null, false, null, undefined, 'dbos-config.yaml');
  if (code !== 0) { console.error('deploy failed in ' + dir); process.exit(1); }
}
`
	tmp := t.TempDir()
	js := filepath.Join(tmp, "deploy.mjs")
	list := filepath.Join(tmp, "dirs.json")
	b, _ := json.Marshal(dirs)
	if err := os.WriteFile(js, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(list, b, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), "node", js, list)
	cmd.Env = append(os.Environ(), "DBOS_DOMAIN="+api.domain(), "NODE_EXTRA_CA_CERTS="+api.caFile, "NO_UPDATE_NOTIFIER=1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("official deploys: %v\n%s", err, lastLines(string(out), 40))
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// names are the file and directory names trees are made of: ordinary ones,
// dot files, and every name the default ignores mention.
var names = []string{
	"a", "b", "ab", "abc", "src", "lib", "foo", "bar", "x.txt", "y.js", "z.md", "a.ts", "b1",
	".env", ".hidden", ".config", "with space", "node_modules", "dist", ".git", ".dbos", "venv", ".venv",
	".python-version", "dbos-config.yaml", ".dbosignore",
}

// genCase writes an app directory: package.json, a dbos-config.yaml (with a
// ${VAR} to interpolate), a random tree with modes and symbolic links, and a
// random .dbosignore.
func genCase(t testing.TB, rng *rand.Rand, dir, app string) {
	t.Helper()
	var paths []string // every file and directory made, relative
	var mk func(rel string, depth int)
	mk = func(rel string, depth int) {
		for range 1 + rng.IntN(5) {
			name := names[rng.IntN(len(names))]
			p := path.Join(rel, name)
			full := filepath.Join(dir, p)
			if _, err := os.Lstat(full); err == nil || rel == "" && strings.HasPrefix(name, ".dbos") || p == defaultConfigFile {
				continue // exists, or is a root file the test writes
			}
			switch r := rng.IntN(10); {
			case r < 3 && depth < 4:
				must(t, os.MkdirAll(full, 0o755))
				paths = append(paths, p)
				mk(p, depth+1)
			case r == 3 && len(paths) > 0:
				// A link to a file or directory made before (never an
				// ancestor: no cycles) or a broken link.
				target := paths[rng.IntN(len(paths))]
				if strings.HasPrefix(p, target+"/") || rng.IntN(4) == 0 {
					target = "missing"
				}
				rt, err := filepath.Rel(filepath.Dir(full), filepath.Join(dir, target))
				must(t, err)
				must(t, os.Symlink(rt, full))
			default:
				must(t, os.MkdirAll(filepath.Dir(full), 0o755))
				mode := []os.FileMode{0o644, 0o755, 0o600, 0o640, 0o700}[rng.IntN(5)]
				must(t, os.WriteFile(full, []byte(p), mode))
				must(t, os.Chmod(full, mode))
				paths = append(paths, p)
			}
		}
	}
	must(t, os.MkdirAll(dir, 0o755))
	mk("", 0)
	must(t, os.WriteFile(filepath.Join(dir, "package.json"), []byte(`{"name":"`+app+`"}`), 0o644))
	config := "name: " + app + "\nlanguage: node\nx: ${HANGAR_TEST_UNSET_VAR}\ny: '${PGPASSWORD}'\n"
	must(t, os.WriteFile(filepath.Join(dir, defaultConfigFile), []byte(config), 0o644))
	var lines []string
	for range rng.IntN(7) {
		lines = append(lines, ignoreLine(rng, paths))
	}
	sep := "\n"
	if rng.IntN(5) == 0 {
		sep = "\r\n"
	}
	must(t, os.WriteFile(filepath.Join(dir, ignoreFile), []byte(strings.Join(lines, sep)), 0o644))
}

// ignoreLine makes one .dbosignore line, mostly a pattern derived from a path
// of the tree.
func ignoreLine(rng *rand.Rand, paths []string) string {
	p := "src"
	if len(paths) > 0 {
		p = paths[rng.IntN(len(paths))]
	}
	base := path.Base(p)
	switch rng.IntN(20) {
	case 0:
		return "# " + p
	case 1:
		return ""
	case 2:
		return "  " + p + "  "
	case 3:
		return p + "/"
	case 4:
		return "**/" + base
	case 5:
		return "**/" + base + "/"
	case 6:
		return strings.Replace(p, base, "*", 1)
	case 7:
		return path.Join(path.Dir(p), "*"+path.Ext(base))
	case 8:
		return path.Join(path.Dir(p), "?"+base[min(1, len(base)):])
	case 9:
		return path.Join(path.Dir(p), "{"+base+","+names[rng.IntN(len(names))]+"}")
	case 10:
		return path.Join(path.Dir(p), "["+base[:1]+"xy]"+base[1:])
	case 11:
		return "/" + p
	case 12:
		return "./" + p
	case 13:
		return p + "/**"
	case 14:
		return "**/*.js"
	case 15:
		return ".*"
	case 16:
		return "!" + p
	case 17:
		return path.Join(path.Dir(p), "[!"+base[:1]+"]"+base[1:])
	case 18:
		return "*/" + base
	default:
		return p
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestNodeJoin(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ a, b, want string }{
		{"/c", "a/", "/c/a/"},
		{"/c", "./a", "/c/a"},
		{"/c", "/a", "/c/a"},
		{"/c", "a/../b/", "/c/b/"},
		{"/c", "../../", "/"},
		{"/c", "a/.", "/c/a"},
		{"/c/a/", "**", "/c/a/**"},
	} {
		if got := nodeJoin(c.a, c.b); got != c.want {
			t.Errorf("nodeJoin(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}
