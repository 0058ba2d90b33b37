package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

// TestOnlyRootsImportServer: internal/server wires everything, so only the
// other composition roots (cmd/*, internal/hangartest) may import it; the
// end-to-end suite runs the real binaries instead.
func TestOnlyRootsImportServer(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-test", "-f", `{{.ImportPath}} {{join .Imports " "}}`, mod+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	importers := 0
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		// With -test, a test variant is "pkg [pkg.test]": its path is the
		// first word.
		rel := strings.TrimPrefix(f[0], mod)
		for _, imp := range f[1:] {
			if strings.TrimPrefix(imp, mod) != "internal/server" {
				continue
			}
			importers++
			if !strings.HasPrefix(rel, "cmd/") && !strings.HasPrefix(rel, "internal/hangartest") {
				t.Errorf("%s imports internal/server: only cmd/* and internal/hangartest may", rel)
			}
		}
	}
	if importers == 0 {
		t.Error("no package imports internal/server; want cmd/hangar and internal/hangartest")
	}
}
