package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/pgcluster"
)

// embeddedState is what Hangar remembers about its embedded cluster.
type embeddedState struct {
	Port     int    `json:"port"`
	Password string `json:"password"`
}

// Metadata is the metadata database: a URL, and for the embedded cluster,
// the cluster itself.
type Metadata struct {
	// URL is the metadata database's connection URL.
	URL     string
	cluster *pgcluster.Cluster // nil with --database-url
}

// Stop stops the embedded cluster; OpenMetadata tells whether the caller
// must.
func (m Metadata) Stop(ctx context.Context) error {
	if m.cluster == nil {
		return nil
	}
	return m.cluster.Stop(ctx)
}

// OpenMetadata returns the configured metadata database, or the embedded
// cluster in <data-dir>/postgres. The server owns the embedded cluster: it
// starts it, or adopts one a killed server left running, and stops it.
// Operator commands use a running cluster as it is and start one only for
// themselves. started reports whether the caller must stop it.
func OpenMetadata(ctx context.Context, cfg config.Config, own bool, log *slog.Logger) (db Metadata, started bool, err error) {
	if cfg.DatabaseURL != "" {
		return Metadata{URL: cfg.DatabaseURL}, false, nil
	}
	dir := filepath.Join(cfg.DataDir, "postgres")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return db, false, err
	}
	st, err := loadEmbeddedState(filepath.Join(cfg.DataDir, "postgres.json"))
	if err != nil {
		return db, false, err
	}
	cl, err := pgcluster.New(pgcluster.Config{
		DataDir: dir, Port: st.Port, Password: st.Password, Settings: cfg.PGSettings,
		Logger: log.With("component", "metadata-postgres"),
	})
	if err != nil {
		return db, false, err
	}
	db = Metadata{URL: cl.URL("hangar"), cluster: cl}
	if !own && reachable(ctx, cl.URL("postgres")) {
		return db, false, ensureDatabase(ctx, cl.URL("postgres"), "hangar")
	}
	if err := cl.Start(ctx); err != nil {
		return db, false, fmt.Errorf("start embedded metadata PostgreSQL: %w", err)
	}
	return db, true, ensureDatabase(ctx, cl.URL("postgres"), "hangar")
}

// loadEmbeddedState reads the embedded cluster's port and password, choosing
// them on first start.
func loadEmbeddedState(path string) (embeddedState, error) {
	var st embeddedState
	b, err := os.ReadFile(path)
	if err == nil {
		if err := json.Unmarshal(b, &st); err != nil {
			return st, fmt.Errorf("read %s: %w", path, err)
		}
		return st, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return st, err
	}
	port, err := pgcluster.FreePort()
	if err != nil {
		return st, err
	}
	st = embeddedState{Port: port, Password: auth.NewSecret(24)}
	b, _ = json.Marshal(st)
	return st, os.WriteFile(path, b, 0o600)
}

func reachable(ctx context.Context, url string) bool {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return false
	}
	c.Close(ctx)
	return true
}

// ensureDatabase creates database name when missing.
func ensureDatabase(ctx context.Context, adminURL, name string) error {
	c, err := pgx.Connect(ctx, adminURL)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname=$1)", name).Scan(&ok); err != nil || ok {
		return err
	}
	_, err = c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	return err
}
