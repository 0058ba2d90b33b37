// Package deptest enforces the layout of STYLE.md. Its import rules state,
// for each package, what it may import (the domain imports nothing
// internal, leaves import only the domain, orchestration imports the domain
// and runtime, the CLI only the wire types) and, for those consumed through
// interfaces or wired only by the composition roots, who may import it.
// It also checks that every package doc says what the package owns and who
// imports it (docs_test.go), and the size limits of types, files and
// functions (size_test.go). Nothing imports it: it has tests only.
package deptest

import (
	"encoding/json"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const mod = "github.com/hangar-oss/hangar/"

// roots are the composition roots: the only packages that wire.
var roots = []string{"cmd/", "internal/server", "internal/hangartest"}

// testsOnly, as importers, lets only tests import a package.
var testsOnly = []string{}

// allowed maps a package (relative to the module, prefix match on the
// package's own path) to the internal packages it may import and, when
// importers is not nil, the only packages that may import it besides its
// own subpackages and tests (prefixes ending in "/" match a tree).
var allowed = []struct {
	pkg       string
	deps      []string
	exact     bool
	importers []string
}{
	{pkg: "internal/hangar", deps: nil},
	{pkg: "internal/apiclient", deps: nil},
	{pkg: "internal/store", deps: []string{"internal/hangar"}, importers: roots},
	// hangartest runs its fake driver.
	{pkg: "internal/runtime/runtimetest", deps: []string{"internal/hangar", "internal/runtime"}, importers: []string{"internal/hangartest"}},
	{pkg: "internal/runtime/", deps: []string{"internal/hangar", "internal/runtime", "internal/runtime/internal/vnet", "internal/runtime/internal/table", "internal/image", "internal/seccomp", "internal/relay"}},
	{pkg: "internal/runtime", deps: []string{"internal/hangar"}, exact: true},
	{pkg: "internal/router", deps: []string{"internal/hangar", "internal/rawconn", "internal/evloop"}, importers: roots},
	{pkg: "internal/frontdoor", deps: []string{"internal/rawconn", "internal/evloop"}, importers: append([]string{"internal/dbinstance"}, roots...)},
	{pkg: "internal/image", deps: []string{"internal/hangar", "internal/image"}},
	{pkg: "internal/dbinstance", deps: []string{"internal/frontdoor", "internal/hangar", "internal/pgcluster", "internal/relay"}, importers: roots},
	{pkg: "internal/sysdb", deps: []string{"internal/hangar"}, importers: roots},
	{pkg: "internal/pgcluster", deps: []string{"internal/hangar", "internal/pgcluster", "internal/seccomp", "internal/relay"}},
	{pkg: "internal/relay", deps: nil},
	{pkg: "internal/rawconn", deps: nil, importers: []string{"internal/frontdoor", "internal/router"}},
	{pkg: "internal/evloop", deps: nil, importers: []string{"internal/frontdoor", "internal/router"}},
	{pkg: "internal/replica", deps: []string{"internal/pgcluster/pgtest"}, importers: roots},
	{pkg: "internal/seccomp", deps: nil},
	// Benchmarks' own programs stand outside: they import nothing of Hangar.
	{pkg: "bench/", deps: nil},
	{pkg: "internal/auth", deps: []string{"internal/hangar"}, importers: append([]string{"internal/accounts", "internal/api"}, roots...)},
	{pkg: "internal/config", deps: []string{"internal/hangar"}, importers: roots},
	{pkg: "internal/tlsca", deps: []string{"internal/hangar"}, importers: roots},
	{pkg: "internal/upload", deps: []string{"internal/hangar"}, importers: []string{"internal/api"}},
	// The API receives archives into it; deploy opens them through an
	// interface of its own.
	{pkg: "internal/archive", deps: []string{"internal/hangar"}, importers: append([]string{"internal/api"}, roots...)},
	{pkg: "internal/golden", deps: nil, importers: testsOnly},
	{pkg: "internal/logs", deps: []string{"internal/hangar", "internal/pgcluster/pgtest"}},
	{pkg: "internal/build", deps: []string{"internal/hangar", "internal/runtime"}},
	{pkg: "internal/secretbox", deps: nil, importers: roots},
	{pkg: "internal/backoff", deps: nil},
	{pkg: "internal/accounts", deps: []string{"internal/hangar", "internal/auth"}, importers: roots},
	{pkg: "internal/databases", deps: []string{"internal/hangar", "internal/backoff"}},
	{pkg: "internal/fleet", deps: []string{"internal/hangar", "internal/runtime", "internal/backoff"}},
	{pkg: "internal/deploy", deps: []string{"internal/hangar", "internal/runtime", "internal/build", "internal/backoff"}},
	{pkg: "internal/cli", deps: []string{"internal/apiclient"}, importers: []string{"cmd/dbos-cloud"}},
	// The console is a client of the API, in process: wire types only.
	{pkg: "internal/console", deps: []string{"internal/apiclient"}, importers: roots},
	{pkg: "internal/metrics", deps: []string{"internal/hangar", "internal/deploy", "internal/fleet"}, importers: roots},
	// Only the composition roots wire the transport.
	{pkg: "internal/api", deps: []string{"internal/hangar", "internal/apiclient", "internal/archive", "internal/auth", "internal/deploy", "internal/fleet", "internal/databases", "internal/upload", "internal/logs", "internal/history"}, importers: roots},
	{pkg: "internal/server", importers: []string{"cmd/", "internal/hangartest"}},
	{pkg: "internal/hangartest", importers: testsOnly},
	// Build tools: programs the Makefile runs, importing nothing internal.
	{pkg: "tools/", deps: nil},
	{pkg: "internal/history", deps: []string{"internal/hangar", "internal/deploy", "internal/fleet"}, importers: append([]string{"internal/api"}, roots...)},
}

type pkg struct {
	ImportPath string
	Name       string
	Dir        string
	GoFiles    []string
	Imports    []string
}

// modulePackages lists the module's packages, by path relative to the
// module.
func modulePackages(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		p.ImportPath = strings.TrimPrefix(p.ImportPath, mod)
		for i, imp := range p.Imports {
			p.Imports[i] = strings.TrimPrefix(imp, mod)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// isRoot reports whether rel is a composition root, which wires
// everything, or a package of tests only.
func isRoot(rel string) bool {
	return strings.HasPrefix(rel, "cmd/") || rel == "e2e" || rel == "internal/deptest" || rel == "internal/server" || strings.HasPrefix(rel, "internal/hangartest")
}

// ruleOf returns the index of rel's rule, or -1.
func ruleOf(rel string) int {
	for i, a := range allowed {
		if (a.exact && rel == a.pkg) || (!a.exact && (rel == a.pkg || strings.HasPrefix(rel, a.pkg+"/") || strings.HasSuffix(a.pkg, "/") && strings.HasPrefix(rel, a.pkg))) {
			return i
		}
	}
	return -1
}

// under reports whether rel is prefix or, for a prefix ending in "/", in
// its tree, or a subpackage of it.
func under(rel, prefix string) bool {
	if strings.HasSuffix(prefix, "/") {
		return strings.HasPrefix(rel, prefix)
	}
	return rel == prefix || strings.HasPrefix(rel, prefix+"/")
}

func TestImportDirection(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, p := range modulePackages(t) {
		rel := p.ImportPath
		if !isRoot(rel) {
			if ruleOf(rel) < 0 {
				t.Errorf("package %s has no import rule: add one to deptest", rel)
				continue
			}
			checked++
		}
		for _, dep := range p.Imports {
			if !strings.HasPrefix(dep, "internal/") && !strings.HasPrefix(dep, "cmd/") {
				continue // the standard library and other modules
			}
			if !isRoot(rel) {
				r := allowed[ruleOf(rel)]
				if !slices.Contains(r.deps, dep) && (strings.HasSuffix(r.pkg, "/") || !under(dep, r.pkg)) {
					t.Errorf("%s imports %s: not allowed by the layering rules (STYLE.md)", rel, dep)
				}
			}
			if i := ruleOf(dep); i >= 0 && allowed[i].importers != nil && !under(rel, allowed[i].pkg) &&
				!slices.ContainsFunc(allowed[i].importers, func(imp string) bool { return under(rel, imp) }) {
				t.Errorf("%s imports %s, which only %v may import (deptest)", rel, dep, allowed[i].importers)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d packages; want the whole module", checked)
	}
}
