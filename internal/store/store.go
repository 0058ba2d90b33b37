// Package store keeps Hangar's metadata in PostgreSQL: users and their
// tokens, organizations, database instances, apps and versions. The schema
// comes from embedded, versioned migrations applied by Open. It is a leaf: it
// imports only internal/hangar. Only the composition roots import it; the
// packages that read and write metadata declare the small interfaces it
// satisfies.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// DB is the metadata store.
// size: one method per query, one file per aggregate; each consumer sees the few it needs through an interface of its own.
type DB struct {
	pool   *pgxpool.Pool
	sealer Sealer // nil: passwords in clear
}

// Open connects to the metadata database at url and migrates its schema.
func Open(ctx context.Context, url string, opts ...Option) (*DB, error) {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("open metadata database: %w", err)
	}
	db := &DB{pool: pool}
	for _, o := range opts {
		o(db)
	}
	if err := errors.Join(db.migrate(ctx), db.sealClearPasswords(ctx)); err != nil {
		pool.Close()
		return nil, fmt.Errorf("migrate metadata database: %w", err)
	}
	return db, nil
}

// Close closes the connection pool.
func (db *DB) Close() { db.pool.Close() }

// Pool exposes the connection pool, for components that share the metadata
// database (the DBOS system database lives beside it).
func (db *DB) Pool() *pgxpool.Pool { return db.pool }

// isUniqueViolation reports whether err is a unique-constraint violation.
func isUniqueViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505"
}

// notFoundIf maps pgx.ErrNoRows to the given domain error.
func notFoundIf(err error, nf error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nf
	}
	return err
}
