// Package sysdb reads and writes apps' DBOS system databases (schema dbos,
// the same tables in the Go and TypeScript SDKs) as the platform: the
// workflow and queue reads of draining, scaling and recovery, the
// re-enqueueing of a dead executor's workflows, and what the DBOS admin
// server served (list, get, steps, cancel, resume, restart, fork).
//
// It owns the SQL, not the connections: those come from the database
// instance's pools (dbinstance.Manager.WithConn), through Conns. It is a
// leaf: it imports only internal/hangar. Only the composition roots import
// it; the orchestration uses it through interfaces of its own.
package sysdb

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Conns lends connections to the databases of an instance;
// *dbinstance.Manager satisfies it.
type Conns interface {
	// WithConn runs f on a connection, as a superuser, to database db of
	// inst, and returns f's error or the connection's.
	WithConn(ctx context.Context, inst hangar.DBInstance, db string, f func(*pgx.Conn) error) error
}

// DB reads and writes the DBOS system databases of apps; each method
// names the instance and the system database it acts on. It holds no state
// of its own and is safe for concurrent use.
type DB struct {
	conns Conns
}

// New returns a DB that connects through conns.
func New(conns Conns) *DB { return &DB{conns: conns} }

// withSysDB runs f on a pooled superuser connection to the system database
// sysDB; a database without the dbos schema or its tables makes f's error
// nil.
func (d *DB) withSysDB(ctx context.Context, inst hangar.DBInstance, sysDB string, f func(*pgx.Conn) error) error {
	if err := hangar.ValidatePGIdent("database name", sysDB); err != nil {
		return err
	}
	err := d.conns.WithConn(ctx, inst, sysDB, f)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") { // no table / no schema yet
		return nil
	}
	return err
}
