package pgcluster_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

func rows(tb testing.TB, conn *pgx.Conn) []int {
	tb.Helper()
	r, err := conn.Query(tb.Context(), "SELECT x FROM t ORDER BY x")
	if err != nil {
		tb.Fatal(err)
	}
	xs, err := pgx.CollectRows(r, pgx.RowTo[int])
	if err != nil {
		tb.Fatal(err)
	}
	return xs
}

func TestCluster_Recover(t *testing.T) {
	t.Parallel()
	pgtest.RequireBinaries(t)
	root := pgtest.TempDir(t)
	ctx := t.Context()
	src := startCluster(t, pgcluster.Config{
		DataDir: filepath.Join(root, "src"), Superuser: "admin", Password: "first pw",
		ArchiveDir: filepath.Join(root, "src", "wal-archive"),
	})
	conn := connect(t, src.URL("postgres"))
	exec := func(sql string) {
		t.Helper()
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE TABLE t (x int)")
	base := filepath.Join(root, "src", "base", "one")
	if err := src.BaseBackup(ctx, base); err != nil {
		t.Fatal(err)
	}
	if err := src.BaseBackup(ctx, base); err == nil {
		t.Error("BaseBackup into an existing directory succeeded, want an error")
	}
	exec("INSERT INTO t SELECT generate_series(1, 3)")
	target := time.Now()
	exec("INSERT INTO t VALUES (4), (5); DELETE FROM t WHERE x = 1")
	exec("ALTER ROLE admin PASSWORD 'second pw'")
	if err := src.SetPassword("second pw"); err != nil {
		t.Fatal(err)
	}
	if err := src.SwitchWAL(ctx); err != nil {
		t.Fatal(err)
	}

	dstCfg := pgcluster.Config{
		DataDir: filepath.Join(root, "dst"), Superuser: "admin", Password: "second pw",
		ArchiveDir: filepath.Join(root, "dst", "wal-archive"), Settings: map[string]string{"fsync": "off"},
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	dstCfg.Port = port
	dst, err := pgcluster.New(dstCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dst.Stop(context.Background()) })
	if err := dst.Recover(ctx, base, src.ArchiveDir(), target); err != nil {
		t.Fatal(err)
	}
	got := rows(t, connect(t, dst.URL("postgres")))
	if diff := cmp.Diff([]int{1, 2, 3}, got); diff != "" {
		t.Errorf("rows at the target time (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{2, 3, 4, 5}, rows(t, conn)); diff != "" {
		t.Errorf("source rows changed (-want +got):\n%s", diff)
	}

	t.Run("Writable", func(t *testing.T) {
		c := connect(t, dst.URL("postgres"))
		if _, err := c.Exec(ctx, "INSERT INTO t VALUES (9)"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("NoTrustLeft", func(t *testing.T) {
		hba, err := os.ReadFile(filepath.Join(root, "dst", "data", "pg_hba.conf"))
		if err != nil || strings.Contains(string(hba), " trust ") {
			t.Errorf("pg_hba.conf after recovery: %v\n%s\nwant no trust line", err, hba)
		}
		var n int
		c := connect(t, dst.URL("postgres"))
		if err := c.QueryRow(ctx, "SELECT count(*) FROM pg_hba_file_rules WHERE auth_method = 'trust'").Scan(&n); err != nil || n != 0 {
			t.Errorf("trust rules loaded: %d, %v; want 0", n, err)
		}
	})
	t.Run("ArchivesNewTimeline", func(t *testing.T) {
		if err := dst.SwitchWAL(ctx); err != nil {
			t.Fatal(err)
		}
		if !dst.ArchivedSegment("00000002.history") {
			t.Error("the new timeline's history file is not in the new archive")
		}
	})
	t.Run("Idempotent", func(t *testing.T) {
		if err := dst.Recover(ctx, base, src.ArchiveDir(), target); err != nil {
			t.Fatal(err)
		}
		got := rows(t, connect(t, dst.URL("postgres")))
		if diff := cmp.Diff([]int{1, 2, 3, 9}, got); diff != "" {
			t.Errorf("rows after a second Recover (-want +got):\n%s", diff)
		}
	})
}

func TestPasswordLiteral(t *testing.T) {
	t.Parallel()
	pgtest.RequireBinaries(t)
	c := startCluster(t, pgcluster.Config{DataDir: filepath.Join(pgtest.TempDir(t), "pg"), Password: "pw"})
	conn := connect(t, c.URL("postgres"))
	ctx := t.Context()
	for _, pw := range []string{"plain-pass", `q'uo"te\back`, "naïve café"} {
		if _, err := conn.Exec(ctx, "DROP ROLE IF EXISTS r; CREATE ROLE r LOGIN PASSWORD "+pgcluster.PasswordLiteral(pw)); err != nil {
			t.Fatalf("%q: %v", pw, err)
		}
		cfg, err := pgx.ParseConfig(c.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		cfg.User, cfg.Password = "r", pw
		rc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Errorf("log in with %q: %v", pw, err)
			continue
		}
		rc.Close(ctx)
	}
}
