package build

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// pythonFixtures is testdata/python at the module root.
const pythonFixtures = "../../testdata/python"

// fixtureWheel packs testdata/python/hangar-fixture-greeting into a wheel
// and returns its file name and content.
func fixtureWheel(t testing.TB) (string, []byte) {
	t.Helper()
	const dist = "hangar_fixture_greeting-1.0.0"
	src := filepath.Join(pythonFixtures, "hangar-fixture-greeting")
	files := map[string][]byte{}
	err := filepath.WalkDir(filepath.Join(src, "hangar_fixture_greeting"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".pyc") {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)], err = os.ReadFile(p)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	metadata, err := os.ReadFile(filepath.Join(src, "METADATA"))
	if err != nil {
		t.Fatal(err)
	}
	files[dist+".dist-info/METADATA"] = metadata
	files[dist+".dist-info/WHEEL"] = []byte("Wheel-Version: 1.0\nGenerator: hangar-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	var record strings.Builder
	for _, name := range sortedKeys(files) {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(files[name]); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(files[name])
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", name, base64.RawURLEncoding.EncodeToString(sum[:]), len(files[name]))
	}
	recordName := dist + ".dist-info/RECORD"
	fmt.Fprintf(&record, "%s,,\n", recordName)
	w, err := zw.Create(recordName)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(record.String())); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return dist + "-py3-none-any.whl", buf.Bytes()
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// pyIndex is a PEP 503 simple index serving the fixture wheel; requests
// counts every request it answers.
type pyIndex struct {
	*httptest.Server
	requests atomic.Int64
}

func newPyIndex(t testing.TB) *pyIndex {
	t.Helper()
	name, wheel := fixtureWheel(t)
	sum := sha256.Sum256(wheel)
	ix := &pyIndex{}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /simple/{project}/", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("project") != "hangar-fixture-greeting" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, "<!DOCTYPE html><html><body><a href=\"/files/%s#sha256=%s\">%s</a></body></html>\n", name, hex.EncodeToString(sum[:]), name)
	})
	mux.HandleFunc("GET /files/{file}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("file") != name {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(wheel)
	})
	ix.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ix.requests.Add(1)
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ix.Close)
	return ix
}

// realPython returns the folder of a python3 that can create venvs, or
// skips the test. A pyenv shim will not do: it needs the environment the
// build does not pass on.
func realPython(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs python3 and pip; skipped with -short")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	out, err := exec.Command(py, "-c", "import sys, venv, ensurepip; print(sys.executable)").Output()
	if err != nil {
		t.Skipf("python3 cannot create venvs with pip (apt-get install python3-venv): %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// TestBuilder_InstallDeps_RealPip installs testdata/python/app with the
// real python3 and pip from a local index, without the cache, then twice
// with one: the second install must not ask the index for anything.
func TestBuilder_InstallDeps_RealPip(t *testing.T) {
	pyDir := realPython(t)
	t.Parallel()
	ix := newPyIndex(t)
	cache := t.TempDir()
	install := func(t *testing.T, cacheDir string) string {
		t.Helper()
		dir := t.TempDir()
		if err := copyTree(filepath.Join(dir, "app"), filepath.Join(pythonFixtures, "app"), nil); err != nil {
			t.Fatal(err)
		}
		dir = filepath.Join(dir, "app")
		opts := Options{
			Env:         []string{"PATH=" + pyDir + ":/usr/bin:/bin", "HOME=" + t.TempDir()},
			PipIndexURL: ix.URL + "/simple/",
			CacheDir:    cacheDir,
		}
		var log strings.Builder
		j := Job{Dir: dir, Log: &log, OrgID: "org-1"}
		j.Config.Language = hangar.LanguagePython
		if err := NewBuilder(opts, ExecRunner{}).InstallDeps(t.Context(), j); err != nil {
			t.Fatalf("InstallDeps: %v\nlog:\n%s", err, log.String())
		}
		out, err := exec.Command(filepath.Join(dir, ".venv", "bin", "python"), "-c",
			"import hangar_fixture_greeting as g; print(g.greet('hangar'))").CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != "Hello, hangar!" {
			t.Errorf("importing the package from .venv: got %q, %v; want \"Hello, hangar!\"\nlog:\n%s", got, err, log.String())
		}
		return log.String()
	}

	t.Run("NoCache", func(t *testing.T) {
		before := ix.requests.Load()
		install(t, "")
		if ix.requests.Load() == before {
			t.Error("pip did not ask the index for anything")
		}
	})
	t.Run("CacheMiss", func(t *testing.T) {
		before := ix.requests.Load()
		log := install(t, cache)
		if !strings.Contains(log, "dependencies not cached yet (cache ") {
			t.Errorf("log does not report a cache miss:\n%s", log)
		}
		if ix.requests.Load() == before {
			t.Error("pip did not ask the index for anything")
		}
		wheels, _ := filepath.Glob(filepath.Join(cache, "python", "org-1", "*", "wheels", "*.whl"))
		if len(wheels) != 1 || path.Base(wheels[0]) != "hangar_fixture_greeting-1.0.0-py3-none-any.whl" {
			t.Errorf("got cached wheels %v, want the fixture's", wheels)
		}
	})
	t.Run("CacheHit", func(t *testing.T) {
		before := ix.requests.Load()
		log := install(t, cache)
		if !strings.Contains(log, "dependencies unchanged (cache ") {
			t.Errorf("log does not report a cache hit:\n%s", log)
		}
		if n := ix.requests.Load() - before; n != 0 {
			t.Errorf("the index got %d requests on a cache hit, want 0\nlog:\n%s", n, log)
		}
	})
}
