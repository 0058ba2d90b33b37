package deptest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Size limits (issue #12): a type with more methods, a file with more
// lines or a function with more lines than these is hard to read and
// review. One over a limit carries a one-line reason, a comment beginning
// "size:" — in its doc comment for a type or a function, in the file's
// header (before the first declaration) for a file:
//
//	// size: one case per route of the official CLI, in the order it calls them.
const (
	maxMethods   = 40
	maxFileLines = 500
	maxFuncLines = 80
	sizeReason   = "size:"
)

// TestSizeLimits checks the size limits on every non-test Go file of the
// module.
func TestSizeLimits(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	methods := map[string]int{}     // "dir:Type" → methods
	typeDocs := map[string]bool{}   // "dir:Type" → has a size reason
	typeFile := map[string]string{} // "dir:Type" → file declaring it
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); name == "testdata" || name == "node_modules" || strings.HasPrefix(name, ".") && path != root {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		dir := filepath.ToSlash(filepath.Dir(rel))
		if n := fset.File(f.Pos()).LineCount(); n > maxFileLines && !fileReason(fset, f) {
			t.Errorf("%s has %d lines, over %d: split it, or give a reason (// %s …) in its header", rel, n, maxFileLines, sizeReason)
		}
		for _, decl := range f.Decls {
			switch decl := decl.(type) {
			case *ast.FuncDecl:
				n := fset.Position(decl.End()).Line - fset.Position(decl.Pos()).Line + 1
				if n > maxFuncLines && !hasReason(decl.Doc) {
					t.Errorf("%s: func %s has %d lines, over %d: split it, or give a reason (// %s …) in its doc", rel, decl.Name.Name, n, maxFuncLines, sizeReason)
				}
				if recv := receiver(decl); recv != "" {
					methods[dir+":"+recv]++
				}
			case *ast.GenDecl:
				for _, spec := range decl.Specs {
					if ts, ok := spec.(*ast.TypeSpec); ok {
						key := dir + ":" + ts.Name.Name
						typeDocs[key] = hasReason(decl.Doc) || hasReason(ts.Doc)
						typeFile[key] = rel
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for key, n := range methods {
		name := key[strings.Index(key, ":")+1:]
		if n > maxMethods && !typeDocs[key] {
			t.Errorf("%s: type %s has %d methods, over %d: split it, or give a reason (// %s …) in its doc", typeFile[key], name, n, maxMethods, sizeReason)
		}
	}
	if len(methods) < 50 {
		t.Errorf("found methods of only %d types; want the whole module", len(methods))
	}
}

// receiver returns the name of a method's receiver type, or "".
func receiver(fd *ast.FuncDecl) string {
	if fd.Recv == nil || len(fd.Recv.List) == 0 {
		return ""
	}
	t := fd.Recv.List[0].Type
	if s, ok := t.(*ast.StarExpr); ok {
		t = s.X
	}
	switch x := t.(type) {
	case *ast.IndexExpr:
		t = x.X
	case *ast.IndexListExpr:
		t = x.X
	}
	if id, ok := t.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// hasReason reports whether a doc comment gives a size reason.
func hasReason(doc *ast.CommentGroup) bool {
	if doc == nil {
		return false
	}
	for _, c := range doc.List {
		if strings.HasPrefix(strings.TrimSpace(strings.TrimPrefix(c.Text, "//")), sizeReason) {
			return true
		}
	}
	return false
}

// fileReason reports whether a file's header, the comments before its
// first declaration, gives a size reason.
func fileReason(fset *token.FileSet, f *ast.File) bool {
	end := f.End()
	if len(f.Decls) > 0 {
		end = f.Decls[0].Pos()
	}
	for _, cg := range f.Comments {
		if cg.Pos() < end && hasReason(cg) {
			return true
		}
	}
	return false
}
