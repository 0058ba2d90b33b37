// Package deptest enforces the import direction of STYLE.md: the domain
// imports nothing internal, leaves import only the domain, orchestration
// imports the domain and runtime, the CLI only the wire types, and only the
// composition roots wire everything.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/hangar-oss/hangar/"

// allowed maps a package (relative to the module, prefix match on the
// package's own path) to the internal packages it may import.
var allowed = []struct {
	pkg   string
	deps  []string
	exact bool
}{
	{pkg: "internal/hangar", deps: nil},
	{pkg: "internal/apiclient", deps: nil},
	{pkg: "internal/store", deps: []string{"internal/hangar"}},
	{pkg: "internal/runtime/runtimetest", deps: []string{"internal/hangar", "internal/runtime"}},
	{pkg: "internal/runtime/", deps: []string{"internal/hangar", "internal/runtime", "internal/runtime/internal/vnet", "internal/runtime/internal/table", "internal/image", "internal/seccomp", "internal/relay"}},
	{pkg: "internal/runtime", deps: []string{"internal/hangar"}, exact: true},
	{pkg: "internal/router", deps: []string{"internal/hangar"}},
	{pkg: "internal/frontdoor", deps: nil},
	{pkg: "internal/image", deps: []string{"internal/hangar", "internal/image"}},
	{pkg: "internal/dbinstance", deps: []string{"internal/hangar", "internal/pgcluster", "internal/relay"}},
	{pkg: "internal/sysdb", deps: []string{"internal/hangar"}},
	{pkg: "internal/pgcluster", deps: []string{"internal/hangar", "internal/pgcluster", "internal/seccomp", "internal/relay"}},
	{pkg: "internal/relay", deps: nil},
	{pkg: "internal/seccomp", deps: nil},
	{pkg: "internal/auth", deps: []string{"internal/hangar"}},
	{pkg: "internal/config", deps: []string{"internal/hangar"}},
	{pkg: "internal/tlsca", deps: []string{"internal/hangar"}},
	{pkg: "internal/upload", deps: []string{"internal/hangar"}},
	{pkg: "internal/golden", deps: nil},
	{pkg: "internal/logs", deps: []string{"internal/hangar", "internal/pgcluster/pgtest"}},
	{pkg: "internal/build", deps: []string{"internal/hangar", "internal/runtime"}},
	{pkg: "internal/secretbox", deps: nil},
	{pkg: "internal/backoff", deps: nil},
	{pkg: "internal/accounts", deps: []string{"internal/hangar", "internal/auth"}},
	{pkg: "internal/fleet", deps: []string{"internal/hangar", "internal/runtime", "internal/backoff"}},
	{pkg: "internal/deploy", deps: []string{"internal/hangar", "internal/runtime", "internal/build", "internal/backoff"}},
	{pkg: "internal/cli", deps: []string{"internal/apiclient"}},
	// The console is a client of the API, in process: wire types only.
	{pkg: "internal/console", deps: []string{"internal/apiclient"}},
	{pkg: "internal/metrics", deps: []string{"internal/hangar", "internal/deploy", "internal/fleet"}},
	{pkg: "internal/api", deps: []string{"internal/hangar", "internal/apiclient", "internal/auth", "internal/deploy", "internal/fleet", "internal/upload", "internal/logs", "internal/history"}},
	{pkg: "internal/history", deps: []string{"internal/hangar", "internal/deploy", "internal/fleet"}},
}

type pkg struct {
	ImportPath string
	Imports    []string
}

func TestImportDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-json", mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	checked := 0
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		rel := strings.TrimPrefix(p.ImportPath, mod)
		if strings.HasPrefix(rel, "cmd/") || rel == "e2e" || rel == "internal/deptest" || rel == "internal/server" || strings.HasPrefix(rel, "internal/hangartest") {
			continue // composition roots wire everything
		}
		rule := -1
		for i, a := range allowed {
			if (a.exact && rel == a.pkg) || (!a.exact && (rel == a.pkg || strings.HasPrefix(rel, a.pkg+"/") || strings.HasSuffix(a.pkg, "/") && strings.HasPrefix(rel, a.pkg))) {
				rule = i
				break
			}
		}
		if rule < 0 {
			t.Errorf("package %s has no import rule: add one to deptest", rel)
			continue
		}
		checked++
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, mod) {
				continue
			}
			dep := strings.TrimPrefix(imp, mod)
			ok := false
			for _, d := range allowed[rule].deps {
				if dep == d || strings.HasPrefix(dep, allowed[rule].pkg+"/") || dep == allowed[rule].pkg {
					ok = true
					break
				}
			}
			if !ok {
				t.Errorf("%s imports %s: not allowed by the layering rules (STYLE.md)", rel, dep)
			}
		}
	}
	if checked < 10 {
		t.Errorf("checked only %d packages; want the whole module", checked)
	}
}
