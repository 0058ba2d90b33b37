package pgcluster_test

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// startCluster starts a cluster in dataDir on a free port, stopped when the
// test ends.
func startCluster(tb testing.TB, cfg pgcluster.Config) *pgcluster.Cluster {
	tb.Helper()
	if cfg.Port == 0 {
		port, err := pgcluster.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		cfg.Port = port
	}
	if cfg.Settings == nil {
		cfg.Settings = map[string]string{"fsync": "off"}
	}
	c, err := pgcluster.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	if err := c.Start(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			tb.Error(err)
		}
	})
	return c
}

func connect(tb testing.TB, connURL string) *pgx.Conn {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), connURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryString(tb testing.TB, conn *pgx.Conn, sql string) string {
	tb.Helper()
	var s string
	if err := conn.QueryRow(tb.Context(), sql).Scan(&s); err != nil {
		tb.Fatalf("%s: %v", sql, err)
	}
	return s
}

// startTime returns the server's start time, which tells restarts from adoptions.
func startTime(tb testing.TB, c *pgcluster.Cluster) string {
	tb.Helper()
	return queryString(tb, connect(tb, c.URL("postgres")), "SELECT pg_postmaster_start_time()::text")
}

func TestCluster_Lifecycle(t *testing.T) {
	t.Parallel()
	pgtest.RequireBinaries(t)
	cfg := pgcluster.Config{
		DataDir:  filepath.Join(pgtest.TempDir(t), "pg"),
		Password: `pa'ss"w@rd`,
		Settings: map[string]string{"fsync": "off", "cluster_name": "hangar's test"},
	}
	c := startCluster(t, cfg)
	ctx := t.Context()
	conn := connect(t, c.URL("postgres"))
	if got, want := queryString(t, conn, "SHOW cluster_name"), "hangar's test"; got != want {
		t.Errorf("cluster_name = %q, want %q", got, want)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)"); err != nil {
		t.Fatal(err)
	}
	started := startTime(t, c)

	t.Run("StartAgainIsNoop", func(t *testing.T) {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := startTime(t, c); got != started {
			t.Errorf("start time = %s, want %s (no restart)", got, started)
		}
	})

	cfg.Port = c.Port()
	t.Run("AdoptOnSamePort", func(t *testing.T) {
		c2, err := pgcluster.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if err := c2.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := startTime(t, c2); got != started {
			t.Errorf("start time = %s, want %s (adopted, not restarted)", got, started)
		}
	})

	t.Run("RestartOnOtherPort", func(t *testing.T) {
		cfg3 := cfg
		cfg3.Port = 0
		c3 := startCluster(t, cfg3)
		if got := startTime(t, c3); got == started {
			t.Errorf("start time = %s, want a restart", got)
		}
		if got := queryString(t, connect(t, c3.URL("postgres")), "SELECT x::text FROM kept"); got != "42" {
			t.Errorf("kept row = %s, want 42: data lost", got)
		}
		if _, err := pgx.Connect(ctx, c.URL("postgres")); err == nil {
			t.Errorf("old port %d still accepts connections", c.Port())
		}
		if err := c3.Stop(ctx); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("StopWhenStopped", func(t *testing.T) {
		if err := c.Stop(ctx); err != nil {
			t.Errorf("Stop() = %v, want nil when not running", err)
		}
	})

	t.Run("StartAfterStop", func(t *testing.T) {
		if err := c.Start(ctx); err != nil {
			t.Fatal(err)
		}
		if got := queryString(t, connect(t, c.URL("postgres")), "SELECT x::text FROM kept"); got != "42" {
			t.Errorf("kept row = %s, want 42: data lost", got)
		}
	})
}

func TestCluster_Auth(t *testing.T) {
	t.Parallel()
	pgtest.RequireBinaries(t)
	dir := filepath.Join(pgtest.TempDir(t), "pg")
	c := startCluster(t, pgcluster.Config{DataDir: dir, Superuser: "admin", Password: "right"})
	ctx := t.Context()

	conn := connect(t, c.URL("postgres"))
	if got := queryString(t, conn, "SELECT string_agg(DISTINCT auth_method, ',') FROM pg_hba_file_rules"); got != "scram-sha-256" {
		t.Errorf("pg_hba auth methods = %s, want only scram-sha-256", got)
	}

	socket := "host=" + dir + " port=" + strconv.Itoa(c.Port()) + " user=admin dbname=postgres"
	tests := []struct {
		name    string
		connStr string
		wantErr bool
	}{
		{"TCP/Right", c.URL("postgres"), false},
		{"TCP/Wrong", strings.Replace(c.URL("postgres"), ":right@", ":wrong@", 1), true},
		{"TCP/None", "postgres://admin@" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.Port())) + "/postgres?sslmode=disable", true},
		{"Socket/Right", socket + " password=right", false},
		{"Socket/Wrong", socket + " password=wrong", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := pgx.ParseConfig(tt.connStr)
			if err != nil {
				t.Fatal(err)
			}
			cfg.ConnectTimeout = 10 * time.Second
			conn, err := pgx.ConnectConfig(ctx, cfg)
			if err == nil {
				conn.Close(ctx)
			}
			var pgErr *pgconn.PgError
			switch {
			case !tt.wantErr && err != nil:
				t.Errorf("connect: %v, want success", err)
			case tt.wantErr && !(errors.As(err, &pgErr) && pgErr.Code == "28P01"):
				t.Errorf("connect error = %v, want SQLSTATE 28P01 (invalid_password)", err)
			}
		})
	}
}
