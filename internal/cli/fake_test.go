package cli

import (
	"archive/zip"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// fakeAPI is a thin TLS fake of the API endpoints Hangar does not serve yet
// or that a test needs to observe. Its base serves a profile (user u in org
// o) and deploys that capture the archive and are AVAILABLE at once; tests
// add or override handlers in mux.
type fakeAPI struct {
	*httptest.Server
	mux, base *http.ServeMux
	// caFile is the server certificate as PEM, for NODE_EXTRA_CA_CERTS.
	caFile string

	mu       sync.Mutex
	archives map[string][]zipEntry // uploaded archives by app
	requests []string              // "METHOD path?query" of every request
}

// zipEntry is what the tests compare of an archive entry.
type zipEntry struct {
	Name    string
	Mode    uint32 // the high 16 bits of the external attributes
	Creator uint16 // the high byte of "version made by"
	Body    string // the content of dbos-config.yaml only
}

// newFakeAPI starts a fake for user u in org o with one deployable,
// immediately AVAILABLE app per deploy.
func newFakeAPI(t testing.TB) *fakeAPI {
	t.Helper()
	f := &fakeAPI{mux: http.NewServeMux(), base: http.NewServeMux(), archives: map[string][]zipEntry{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())
		f.mu.Unlock()
		if _, pattern := f.mux.Handler(r); pattern != "" {
			f.mux.ServeHTTP(w, r)
			return
		}
		f.base.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(f.caFile, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	f.base.HandleFunc("GET /v1alpha1/user/profile", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, apiclient.Profile{Name: "u", Email: "u@example.com", Organization: "o", SubscriptionPlan: "pro"})
	})
	f.base.HandleFunc("GET /v1alpha1/o/applications/{app}", func(w http.ResponseWriter, r *http.Request) {
		writeTestJSON(w, 200, apiclient.Application{Name: r.PathValue("app"), PostgresInstanceName: "db", Status: "AVAILABLE"})
	})
	f.base.HandleFunc("POST /v1alpha1/o/applications/{app}", func(w http.ResponseWriter, r *http.Request) {
		var req apiclient.DeployRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeTestJSON(w, 400, apiclient.Error{Message: err.Error(), StatusCode: 400, RequestID: "r1"})
			return
		}
		b, err := base64.StdEncoding.DecodeString(req.ApplicationArchive)
		if err != nil {
			writeTestJSON(w, 400, apiclient.Error{Message: err.Error(), StatusCode: 400, RequestID: "r1"})
			return
		}
		entries, err := readZip(b)
		if err != nil {
			writeTestJSON(w, 400, apiclient.Error{Message: err.Error(), StatusCode: 400, RequestID: "r1"})
			return
		}
		f.mu.Lock()
		f.archives[r.PathValue("app")] = entries
		f.mu.Unlock()
		writeTestJSON(w, 200, apiclient.DeployResponse{ApplicationName: r.PathValue("app"), ApplicationVersion: "v1"})
	})
	f.base.HandleFunc("GET /v1alpha1/o/applications", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		defer f.mu.Unlock()
		apps := []apiclient.Application{}
		for name := range f.archives {
			apps = append(apps, apiclient.Application{Name: name, Status: "AVAILABLE"})
		}
		writeTestJSON(w, 200, apps)
	})
	return f
}

func (f *fakeAPI) archive(app string) []zipEntry {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.archives[app]
}

func (f *fakeAPI) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.requests)
}

// domain is the fake's host:port, for DBOS_DOMAIN.
func (f *fakeAPI) domain() string { return strings.TrimPrefix(f.URL, "https://") }

func writeTestJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// readZip lists a zip's entries sorted by name.
func readZip(b []byte) ([]zipEntry, error) {
	zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	var out []zipEntry
	for _, f := range zr.File {
		e := zipEntry{Name: f.Name, Mode: f.ExternalAttrs >> 16, Creator: f.CreatorVersion >> 8}
		if f.Name == defaultConfigFile {
			rc, err := f.Open()
			if err != nil {
				return nil, err
			}
			body, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return nil, err
			}
			e.Body = string(body)
		}
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b zipEntry) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// unsignedJWT is a token the official CLI accepts: decodable, without exp.
const unsignedJWT = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1In0."

// writeTestCredentials logs dir in as u/o with token.
func writeTestCredentials(t testing.TB, dir, token, refresh string) {
	t.Helper()
	e := &env{dir: dir}
	if err := e.writeCredentials(apiclient.Credentials{Token: token, RefreshToken: refresh, UserName: "u", Organization: "o"}); err != nil {
		t.Fatal(err)
	}
}
