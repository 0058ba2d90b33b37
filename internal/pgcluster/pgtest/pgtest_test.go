package pgtest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestURL(t *testing.T) {
	t.Parallel()
	var names []string
	t.Run("Fresh", func(t *testing.T) {
		for range 2 {
			u := pgtest.URL(t)
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(context.Background())
			var db string
			var tables int
			if err := conn.QueryRow(t.Context(), "SELECT current_database(), (SELECT count(*) FROM pg_tables WHERE schemaname = 'public')").Scan(&db, &tables); err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(db, "t_testurl_fresh_") || tables != 0 {
				t.Errorf("database %s with %d tables, want a fresh one named after the test", db, tables)
			}
			if _, err := conn.Exec(t.Context(), "CREATE TABLE t (x int)"); err != nil {
				t.Fatal(err)
			}
			names = append(names, db)
		}
		if names[0] == names[1] {
			t.Errorf("both calls returned database %s, want distinct ones", names[0])
		}
	})
	if t.Failed() {
		return
	}

	conn, err := pgx.Connect(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var left int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of the databases %q remain after their test ended, want them dropped", left, names)
	}
}
