package deptest

import (
	"go/parser"
	"go/token"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// importersSentence is how a package doc says who may import it: "Only
// the composition roots import it", "api and cmd/hangar use it", "any
// package may import it", "Only tests import pgtest", "nothing imports
// it".
var importersSentence = regexp.MustCompile(`(?i)\b(imports?|uses?|wires?)\s+(it|\w+test)\b|\bimported\s+by\b|may\s+import\s+it\b`)

// TestPackageDocs: every package has a doc comment, and every package
// others can import says in it who may import it (its import rule above
// enforces that).
func TestPackageDocs(t *testing.T) {
	t.Parallel()
	for _, p := range modulePackages(t) {
		if len(p.GoFiles) == 0 {
			continue // tests only (e2e, deptest)
		}
		var doc strings.Builder
		fset := token.NewFileSet()
		for _, f := range p.GoFiles {
			af, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			if af.Doc != nil {
				doc.WriteString(af.Doc.Text())
			}
		}
		switch {
		case doc.Len() == 0:
			t.Errorf("package %s has no doc comment: say what it owns and who may import it", p.ImportPath)
		case p.Name == "main":
		case !importersSentence.MatchString(doc.String()):
			t.Errorf("the doc of package %s does not say who may import it (like \"Only the composition roots import it.\")", p.ImportPath)
		}
	}
}
