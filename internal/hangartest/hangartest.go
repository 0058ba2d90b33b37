// Package hangartest runs a whole Hangar server in the test process: the
// composition root of `hangar serve` (internal/server) on a port of its own
// on 127.0.0.1, behind the real HTTPS front door and local CA, with the
// real API, console, router, deploy workflows (DBOS), logs and accounts. A
// test drives it with apiclient, as Hangar's CLI does.
//
// What it replaces, and why:
//
//   - Metadata: a fresh database from pgtest on the shared test server
//     (with its DBOS system database beside it, dropped at the end), not an
//     embedded cluster. The package's TestMain must call pgtest.Main.
//   - Executors: runtimetest.Fake by default, an HTTP server per executor in
//     the test process that answers with its ID, so deploys, routing,
//     scaling and the supervisor run without root or the app's runtime.
//     Build commands then run on the host, as with the netns driver. A test
//     that needs the app itself passes a real driver in Options.Driver
//     (sandbox or netns, as root).
//   - Database instances: real PostgreSQL clusters from the machine's
//     binaries (pgtest.RequireBinaries), run without their runc sandbox
//     (server.Config.UnsandboxedDatabases): as the postgres user on
//     loopback when the test runs as root, as the test's own user
//     otherwise, exactly as `hangar serve` runs them when it is not root.
//     A fake instance manager would skip the SQL Hangar runs on them
//     (databases, roles, DBOS system tables), which is what these tests
//     are for; the sandbox itself is covered by dbinstance's and the
//     end-to-end tests.
//
// The end-to-end suite (e2e/) still runs the real binaries, the sandbox
// and the official CLI. Only tests import it.
package hangartest

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
	"github.com/hangar-oss/hangar/internal/server"
	"github.com/hangar-oss/hangar/internal/store"
)

// Options changes the server New starts.
type Options struct {
	// Driver runs executors. Default a runtimetest.Fake.
	Driver server.Driver
	// Config, when set, edits the server's configuration before it
	// starts. Default none.
	Config func(*config.Config)
	// Now, when set, is the clock of tokens, logins and sign-ins
	// (server.Config.Now). Default time.Now.
	Now func() time.Time
	// Hasher, when set, checks passwords (server.Config.Hasher). Default
	// the server's own.
	Hasher accounts.Hasher
}

// Server is a running in-process Hangar.
type Server struct {
	// URL is the API's base URL, https://localhost:<port>.
	URL string
	// Domain is the server's domain, localhost:<port>: apps are served at
	// <org>-<app>.<Domain>.
	Domain string
	// CACert is the path of the PEM certificate of the CA to trust.
	CACert string
	// HTTP trusts the CA and sends every host, apps' included, to the
	// server's port.
	HTTP *http.Client
	// Driver is the executor driver: the Fake unless Options.Driver.
	Driver server.Driver
	// DataDir is the server's data dir.
	DataDir string

	dbURL string
}

// New starts a server that stops when the test ends. It skips the test
// (or fails it with CI=true) when there is no PostgreSQL.
func New(tb testing.TB, opts Options) *Server {
	tb.Helper()
	pgtest.RequireBinaries(tb)
	dbURL := pgtest.URL(tb)
	cfg := config.Defaults(func(string) string { return "" }) // not the test runner's HANGAR_*
	cfg.DataDir = pgtest.TempDir(tb)                          // database instances run as postgres when root
	cfg.DatabaseURL = dbURL
	cfg.DBPorts = "0"
	cfg.PGSettings = map[string]string{"fsync": "off"}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Domain = "localhost:" + port(ln.Addr())
	cfg.Listen = ln.Addr().String()
	if opts.Config != nil {
		opts.Config(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		ln.Close()
		tb.Fatal(err)
	}
	drv := opts.Driver
	if drv == nil {
		drv = runtimetest.NewFake()
	}
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.WithoutCancel(tb.Context()))
	srv, err := server.New(ctx, server.Config{
		Config: cfg, Listener: ln, Driver: drv, UnsandboxedDatabases: true, Now: opts.Now, Hasher: opts.Hasher,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		cancel()
		tb.Fatalf("hangartest: start server: %v\n%s", err, logs)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	tb.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("hangartest: server: %v", err)
		}
		if tb.Failed() {
			tb.Logf("hangartest: server log:\n%s", logs)
		}
		dropSysDB(tb, dbURL)
	})
	s := &Server{
		URL: "https://" + cfg.Domain, Domain: cfg.Domain, CACert: srv.CACertPath(), Driver: drv, DataDir: cfg.DataDir, dbURL: dbURL,
	}
	s.HTTP = httpClient(tb, s.CACert, srv.Addr().String())
	return s
}

// dropSysDB drops the DBOS system database the server created beside the
// metadata database (pgtest drops the metadata database itself).
func dropSysDB(tb testing.TB, dbURL string) {
	u, err := url.Parse(dbURL)
	if err != nil {
		tb.Error(err)
		return
	}
	sys := strings.TrimPrefix(u.Path, "/") + "_dbos_sys"
	u.Path = "/postgres"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, u.String())
	if err != nil {
		tb.Errorf("hangartest: %v", err)
		return
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{sys}.Sanitize()+" WITH (FORCE)"); err != nil {
		tb.Errorf("hangartest: drop %s: %v", sys, err)
	}
}

// httpClient returns a client that trusts the CA at caPath and dials addr
// whatever the host.
func httpClient(tb testing.TB, caPath, addr string) *http.Client {
	pem, err := os.ReadFile(caPath)
	if err != nil {
		tb.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		tb.Fatalf("hangartest: %s holds no certificate", caPath)
	}
	var d net.Dialer
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		},
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

// Client returns an API client that sends token (empty: none).
func (s *Server) Client(token string) *apiclient.Client {
	return &apiclient.Client{BaseURL: s.URL, Token: token, HTTP: s.HTTP}
}

// AddUser creates user name with an organization of its own, named after
// it, as `hangar users add name` does, and returns a client logged in as
// it and its refresh token.
func (s *Server) AddUser(tb testing.TB, name string) (*apiclient.Client, string) {
	tb.Helper()
	ctx := tb.Context()
	st := s.Store(tb)
	u := hangar.User{ID: uuid.NewString(), Name: name, Org: name}
	if err := st.CreateUserWithOrg(ctx, u); err != nil {
		tb.Fatalf("hangartest: add user %s: %v", name, err)
	}
	refresh := auth.NewRefreshToken()
	if err := st.AddRefreshToken(ctx, uuid.NewString(), u.ID, refresh); err != nil {
		tb.Fatal(err)
	}
	tok, err := s.Client("").Exchange(ctx, refresh)
	if err != nil {
		tb.Fatalf("hangartest: log in as %s: %v", name, err)
	}
	return s.Client(tok.AccessToken), refresh
}

// Store opens the server's metadata store, closed when the test ends, for
// what only the operator does (hangar users …).
func (s *Server) Store(tb testing.TB) *store.DB {
	tb.Helper()
	st, err := store.Open(tb.Context(), s.dbURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	return st
}

// ProvisionDB provisions org's database instance name through c and
// returns when it is available.
func (s *Server) ProvisionDB(tb testing.TB, c *apiclient.Client, org, name string) apiclient.UserDBInstance {
	tb.Helper()
	ctx := tb.Context()
	if err := c.ProvisionDB(ctx, org, apiclient.ProvisionDBRequest{Name: name, AdminName: "dbos_admin", AdminPassword: "a-password-1"}); err != nil {
		tb.Fatalf("hangartest: provision %s: %v", name, err)
	}
	var db apiclient.UserDBInstance
	Eventually(tb, 2*time.Minute, func() (bool, string) {
		var err error
		db, err = c.DB(ctx, org, name)
		return err == nil && db.Status == string(hangar.DBAvailable), fmt.Sprintf("instance %s: %+v, %v", name, db, err)
	})
	return db
}

// Deploy deploys files (path → content) as app's new version through c.
func (s *Server) Deploy(tb testing.TB, c *apiclient.Client, org, app string, files map[string]string) (apiclient.DeployResponse, error) {
	tb.Helper()
	zipped := Zip(tb, files)
	return c.DeployZip(tb.Context(), org, app, bytes.NewReader(zipped), int64(len(zipped)))
}

// Zip returns a zip archive of files (path → content); a file whose
// content starts with #! is executable.
func Zip(tb testing.TB, files map[string]string) []byte {
	tb.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, content := range files {
		h := &zip.FileHeader{Name: name, Method: zip.Deflate}
		h.SetMode(0o644)
		if strings.HasPrefix(content, "#!") {
			h.SetMode(0o755)
		}
		w, err := zw.CreateHeader(h)
		if err == nil {
			_, err = io.WriteString(w, content)
		}
		if err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return b.Bytes()
}

// App is the smallest app a deploy accepts: a Go app with a prebuilt
// ./main, so the build runs no command; the Fake driver "runs" it without
// running it. Register it with language "go".
func App(name string) map[string]string {
	return map[string]string{
		"dbos-config.yaml": "name: " + name + "\nlanguage: go\n",
		"main":             "#!/bin/sh\nexit 0\n",
	}
}

// Get sends GET path to host (an app's <org>-<app>.<Domain>, or the
// domain) and returns the status and body.
func (s *Server) Get(tb testing.TB, host, path string) (int, string) {
	tb.Helper()
	req, err := http.NewRequestWithContext(tb.Context(), http.MethodGet, "https://"+host+path, nil)
	if err != nil {
		tb.Fatal(err)
	}
	resp, err := s.HTTP.Do(req)
	if err != nil {
		tb.Fatalf("GET https://%s%s: %v", host, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// Eventually polls cond until it holds, failing the test with cond's last
// message after timeout.
func Eventually(tb testing.TB, timeout time.Duration, cond func() (bool, string)) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("after %s: %s", timeout, msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func port(a net.Addr) string {
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// syncBuffer collects the server's log for a failing test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}
