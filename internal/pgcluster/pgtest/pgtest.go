// Package pgtest gives tests real PostgreSQL. URL returns a fresh, empty
// database on a server shared by the whole test binary: the server named by
// HANGAR_TEST_PG (a superuser URL), or else a throwaway cluster started on
// first use from the machine's PostgreSQL binaries. Without either, tests
// skip with the reason; with CI=true they fail instead.
//
// A package whose tests call URL must run them through Main, which stops the
// throwaway cluster and removes its files at exit:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// Only tests import pgtest.
package pgtest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// A test binary has one shared server, so this package keeps it in package
// state (the one exception to the house rule): it lives from the first URL
// call until Main returns.
var (
	mainCalled atomic.Bool
	mu         sync.Mutex
	shared     *server
)

type server struct {
	adminURL string             // superuser URL
	cluster  *pgcluster.Cluster // nil when HANGAR_TEST_PG names the server
	dir      string
	skip     string // why there is no server, when there is none
	err      error
}

// Main runs the tests of m, then stops the cluster URL started (if any),
// removes its files and exits with the tests' status. Call it from TestMain.
func Main(m *testing.M) {
	mainCalled.Store(true)
	code := m.Run()
	mu.Lock()
	s := shared
	mu.Unlock()
	if s != nil && s.cluster != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := s.cluster.Stop(ctx); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
			code = max(code, 1)
		}
		cancel()
	}
	if s != nil && s.dir != "" {
		os.RemoveAll(s.dir)
	}
	os.Exit(code)
}

// URL returns a superuser URL to a new, empty database whose name is unique
// to this call; the database is dropped when the test ends.
func URL(tb testing.TB) string {
	tb.Helper()
	if !mainCalled.Load() {
		tb.Fatal("pgtest: call pgtest.Main(m) from TestMain in this package")
	}
	mu.Lock()
	if shared == nil {
		shared = start()
	}
	s := shared
	mu.Unlock()
	if s.skip != "" {
		skip(tb, s.skip)
	}
	if s.err != nil {
		tb.Fatalf("pgtest: %v", s.err)
	}

	name := dbName(tb.Name())
	ident := pgx.Identifier{name}.Sanitize()
	if err := execSQL(tb.Context(), s.adminURL, "CREATE DATABASE "+ident); err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := execSQL(ctx, s.adminURL, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)"); err != nil {
			tb.Errorf("pgtest: %v", err)
		}
	})
	u, err := url.Parse(s.adminURL)
	if err != nil {
		tb.Fatalf("pgtest: parse server URL: %v", err)
	}
	u.Path = "/" + name
	return u.String()
}

// RequireBinaries skips the test (or fails it with CI=true) when the
// machine has no PostgreSQL binaries, for tests that run clusters of their own.
func RequireBinaries(tb testing.TB) {
	tb.Helper()
	if _, err := pgcluster.DefaultBinDir(); err != nil {
		skip(tb, err.Error())
	}
}

// TempDir returns a new directory that the OS user PostgreSQL runs as can
// reach (the parents of t.TempDir are private to the current user), removed
// when the test ends. Register cleanups that stop clusters in it afterwards,
// so that they run first.
func TempDir(tb testing.TB) string {
	tb.Helper()
	dir, err := tempDir()
	if err != nil {
		tb.Fatalf("pgtest: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func tempDir() (string, error) {
	dir, err := os.MkdirTemp("", "hangar-pg-")
	if err == nil {
		err = os.Chmod(dir, 0o755)
	}
	return dir, err
}

func skip(tb testing.TB, reason string) {
	tb.Helper()
	if os.Getenv("CI") == "true" {
		tb.Fatalf("pgtest: %s; CI=true requires PostgreSQL (install it or set HANGAR_TEST_PG)", reason)
	}
	tb.Skipf("pgtest: %s; install PostgreSQL or set HANGAR_TEST_PG to a superuser URL", reason)
}

// start finds or starts the shared server.
func start() *server {
	if u := os.Getenv("HANGAR_TEST_PG"); u != "" {
		return &server{adminURL: u}
	}
	if _, err := pgcluster.DefaultBinDir(); err != nil {
		return &server{skip: err.Error()}
	}
	dir, err := tempDir()
	if err != nil {
		return &server{err: err}
	}
	s := &server{dir: dir}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// A free port can be taken by another test binary before postgres binds
	// it, so try a few.
	for range 3 {
		var port int
		if port, err = pgcluster.FreePort(); err != nil {
			break
		}
		s.cluster, err = pgcluster.New(pgcluster.Config{
			DataDir:  dir,
			Port:     port,
			Password: rand.Text(),
			Settings: map[string]string{"fsync": "off", "max_connections": "200"},
		})
		if err != nil {
			break
		}
		if err = s.cluster.Start(ctx); err == nil {
			s.adminURL = s.cluster.URL("postgres")
			return s
		}
	}
	s.err = fmt.Errorf("start shared cluster: %w", err)
	return s
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// dbName returns a database name unique to this call (and to every other
// test binary on the same server) that tells which test made it.
func dbName(test string) string {
	prefix := nonIdent.ReplaceAllString(strings.ToLower(test), "_")
	if len(prefix) > 40 {
		prefix = prefix[:40]
	}
	return "t_" + prefix + "_" + strings.ToLower(rand.Text()[:12])
}

func execSQL(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	_, err = conn.Exec(ctx, sql)
	return errors.Join(err, conn.Close(ctx))
}
