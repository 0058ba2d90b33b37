// Package replica lets several `hangar serve` processes share one metadata
// PostgreSQL (docs/replicas.md). Registry keeps each replica's heartbeat
// and hands each dead replica to exactly one live one; Routes publishes the
// local fleet's routes, which are the apps' ownership, and applies the
// other replicas' within a second (LISTEN/NOTIFY, with a poll as fallback).
// It is a leaf: it imports nothing internal, creates its tables itself
// (CREATE TABLE IF NOT EXISTS, like internal/logs), and only the
// composition roots import it.
package replica

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrEvicted is returned by Registry.Run when another replica claimed this
// one as dead (it stalled longer than the timeout): its executors and
// workflows are no longer its own, so it must stop.
var ErrEvicted = errors.New("replica: claimed as dead by another replica")

// Replica is a replica as the others see it.
type Replica struct {
	// ID is the replica's ID, which is also its DBOS executor ID.
	ID string
	// Prefix is the network prefix of its executors.
	Prefix string
}

// Config configures a Registry.
type Config struct {
	// ID names this replica. Required.
	ID string
	// Prefix is the network prefix of this replica's executors, recorded
	// for whoever takes it over. Default "".
	Prefix string
	// Addr is the host:port of this replica's HTTPS port as the other
	// replicas reach it, recorded for requests they forward here.
	// Default "": none.
	Addr string
	// Timeout is how old a heartbeat must be for its replica to be dead;
	// heartbeats go every Timeout/5. Default 10s.
	Timeout time.Duration
	// TakeOver is called, one dead replica at a time, for each replica
	// this one claimed; the claim ends when it returns nil, and is tried
	// again at the next heartbeat when it fails. Default: nothing to do.
	TakeOver func(ctx context.Context, dead Replica) error
	// Logger receives the registry's logs. Default slog.Default().
	Logger *slog.Logger
}

// Registry is this replica's row in the replicas table.
type Registry struct {
	cfg   Config
	pool  *pgxpool.Pool
	log   *slog.Logger
	token string // this process's, so that two processes never share an ID
}

// ddlLock serializes the CREATE TABLE IF NOT EXISTS of concurrent starts.
const ddlLock = 0x6861_6e67_7270 // "hangrp"

// A replica's row: taken_by names the live replica that claimed it as dead
// and is removing what it left, until it deletes the row.
const ddl = `
CREATE TABLE IF NOT EXISTS replicas (
	id text PRIMARY KEY,
	prefix text NOT NULL,
	token text NOT NULL,
	heartbeat timestamptz NOT NULL,
	taken_by text
);
ALTER TABLE replicas ADD COLUMN IF NOT EXISTS addr text NOT NULL DEFAULT '';
CREATE TABLE IF NOT EXISTS routes (
	host text PRIMARY KEY,
	upstreams text[] NOT NULL,
	replica text NOT NULL,
	updated timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS instance_owners (
	instance text PRIMARY KEY,
	replica text NOT NULL
);
`

// Join creates the tables if missing and records this replica as alive.
// When the ID's row is being taken over by another replica (this one
// died and restarted meanwhile), it waits until that ends, so that
// nothing this process starts is removed by the takeover.
func Join(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Registry, error) {
	if cfg.ID == "" {
		return nil, errors.New("replica: ID is required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if err := createTables(ctx, pool); err != nil {
		return nil, err
	}
	// Its executors are named after the prefix: a takeover of the other
	// would remove this one's.
	var other string
	err := pool.QueryRow(ctx, `SELECT id FROM replicas WHERE prefix = $1 AND id <> $2 LIMIT 1`, cfg.Prefix, cfg.ID).Scan(&other)
	if err == nil {
		return nil, fmt.Errorf("replica %s already uses network prefix %q: give each replica its own", other, cfg.Prefix)
	} else if !errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("join replicas: %w", err)
	}
	var b [16]byte
	rand.Read(b[:])
	r := &Registry{cfg: cfg, pool: pool, log: cfg.Logger.With("component", "replica"), token: hex.EncodeToString(b[:])}
	for {
		tag, err := pool.Exec(ctx, `
INSERT INTO replicas (id, prefix, token, heartbeat, addr) VALUES ($1, $2, $3, now(), $5)
ON CONFLICT (id) DO UPDATE SET prefix = excluded.prefix, token = excluded.token, heartbeat = now(), addr = excluded.addr
WHERE replicas.taken_by IS NULL OR NOT EXISTS (
	SELECT 1 FROM replicas t WHERE t.id = replicas.taken_by AND t.heartbeat >= now() - $4::float8 * interval '1 second')`,
			cfg.ID, cfg.Prefix, r.token, cfg.Timeout.Seconds(), cfg.Addr)
		if err != nil {
			return nil, fmt.Errorf("join replicas: %w", err)
		}
		if tag.RowsAffected() == 1 {
			return r, nil
		}
		r.log.WarnContext(ctx, "another replica is taking over this replica's last run: waiting", "replica", cfg.ID)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(r.interval()):
		}
	}
}

func createTables(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(ddlLock)); err != nil {
			return fmt.Errorf("create replica tables: %w", err)
		}
		if _, err := tx.Exec(ctx, ddl); err != nil {
			return fmt.Errorf("create replica tables: %w", err)
		}
		return nil
	})
}

func (r *Registry) interval() time.Duration { return r.cfg.Timeout / 5 }

// Beat renews the heartbeat every Timeout/5 until ctx is done (nil) or
// this replica was claimed by another (ErrEvicted). Start it as soon as
// Join returns: a replica that starts its apps before its first beat
// would look dead. A failed beat is retried: only a claim evicts.
func (r *Registry) Beat(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evicted := false
	r.every(ctx, func() {
		if err := r.beat(ctx); errors.Is(err, ErrEvicted) {
			evicted = true
			cancel()
		} else if err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "heartbeat", "err", err)
		}
	})
	if evicted {
		return ErrEvicted
	}
	return nil
}

// Watch looks for dead replicas every Timeout/5 and takes over those it
// claims, until ctx is done. A takeover may last longer than the timeout
// (it starts apps): it runs apart from Beat, which it never holds back.
func (r *Registry) Watch(ctx context.Context) {
	r.every(ctx, func() { r.takeOverDead(ctx) })
}

// every calls f every Timeout/5 until ctx is done.
func (r *Registry) every(ctx context.Context, f func()) {
	t := time.NewTicker(r.interval())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// beat renews the heartbeat, unless the row is gone or claimed.
func (r *Registry) beat(ctx context.Context) error {
	tag, err := r.pool.Exec(ctx, `UPDATE replicas SET heartbeat = now() WHERE id = $1 AND token = $2 AND taken_by IS NULL`, r.cfg.ID, r.token)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrEvicted
	}
	return nil
}

// takeOverDead claims dead replicas one at a time and takes each over.
func (r *Registry) takeOverDead(ctx context.Context) {
	for ctx.Err() == nil {
		dead, ok, err := r.claim(ctx)
		if err != nil {
			r.log.ErrorContext(ctx, "look for dead replicas", "err", err)
			return
		}
		if !ok {
			return
		}
		r.log.WarnContext(ctx, "replica is dead: taking it over", "replica", dead.ID)
		if r.cfg.TakeOver != nil {
			if err := r.cfg.TakeOver(ctx, dead); err != nil {
				r.log.ErrorContext(ctx, "take over a dead replica; trying again", "replica", dead.ID, "err", err)
				return
			}
		}
		if _, err := r.pool.Exec(ctx, `DELETE FROM replicas WHERE id = $1 AND taken_by = $2`, dead.ID, r.cfg.ID); err != nil {
			r.log.ErrorContext(ctx, "end a takeover", "replica", dead.ID, "err", err)
			return
		}
		r.log.InfoContext(ctx, "took over a dead replica", "replica", dead.ID)
	}
}

// claim marks one dead replica as taken by this one: its heartbeat is
// older than the timeout and nobody alive claimed it yet (or this replica
// did, and failed).
func (r *Registry) claim(ctx context.Context) (Replica, bool, error) {
	var d Replica
	err := r.pool.QueryRow(ctx, `
UPDATE replicas SET taken_by = $1 WHERE id = (
	SELECT r.id FROM replicas r
	WHERE r.id <> $1 AND r.heartbeat < now() - $2::float8 * interval '1 second'
	AND (r.taken_by IS NULL OR r.taken_by = $1 OR NOT EXISTS (
		SELECT 1 FROM replicas t WHERE t.id = r.taken_by AND t.heartbeat >= now() - $2::float8 * interval '1 second'))
	ORDER BY r.heartbeat LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, prefix`, r.cfg.ID, r.cfg.Timeout.Seconds()).Scan(&d.ID, &d.Prefix)
	if errors.Is(err, pgx.ErrNoRows) {
		return d, false, nil
	}
	return d, err == nil, err
}

// Leave expires this replica's heartbeat, so that a live replica takes
// its apps over at once; call it after its executors stopped.
func (r *Registry) Leave(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, `UPDATE replicas SET heartbeat = '-infinity' WHERE id = $1 AND token = $2 AND taken_by IS NULL`, r.cfg.ID, r.token)
	return err
}

// Claim reports whether this replica runs the managed database instance
// id: it does when it owns it, or when nobody did (it does from now on).
// Exactly one replica runs each instance, like an app's executors.
func (r *Registry) Claim(ctx context.Context, id string) (bool, error) {
	var owner string
	err := r.pool.QueryRow(ctx, `
WITH ins AS (INSERT INTO instance_owners (instance, replica) VALUES ($1, $2) ON CONFLICT (instance) DO NOTHING RETURNING replica)
SELECT replica FROM ins UNION ALL SELECT replica FROM instance_owners WHERE instance = $1 LIMIT 1`, id, r.cfg.ID).Scan(&owner)
	if err != nil {
		return false, fmt.Errorf("claim database instance %s: %w", id, err)
	}
	return owner == r.cfg.ID, nil
}

// Take makes this replica the one that runs instance id: the replica
// running its provisioning or restore.
func (r *Registry) Take(ctx context.Context, id string) error {
	_, err := r.pool.Exec(ctx, `
INSERT INTO instance_owners (instance, replica) VALUES ($1, $2)
ON CONFLICT (instance) DO UPDATE SET replica = excluded.replica`, id, r.cfg.ID)
	if err != nil {
		return fmt.Errorf("take database instance %s: %w", id, err)
	}
	return nil
}

// Inherit makes this replica run the instances that dead ran, and
// returns their IDs.
func (r *Registry) Inherit(ctx context.Context, dead string) ([]string, error) {
	rows, err := r.pool.Query(ctx, `UPDATE instance_owners SET replica = $1 WHERE replica = $2 RETURNING instance`, r.cfg.ID, dead)
	if err != nil {
		return nil, fmt.Errorf("inherit the database instances of replica %s: %w", dead, err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("inherit the database instances of replica %s: %w", dead, err)
	}
	return ids, nil
}

// Release forgets who runs instance id, once it is destroyed.
func (r *Registry) Release(ctx context.Context, id string) error {
	if _, err := r.pool.Exec(ctx, `DELETE FROM instance_owners WHERE instance = $1`, id); err != nil {
		return fmt.Errorf("release database instance %s: %w", id, err)
	}
	return nil
}

// Owned lists the instances this replica runs.
func (r *Registry) Owned(ctx context.Context) ([]string, error) {
	rows, err := r.pool.Query(ctx, `SELECT instance FROM instance_owners WHERE replica = $1`, r.cfg.ID)
	if err != nil {
		return nil, fmt.Errorf("list owned database instances: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list owned database instances: %w", err)
	}
	return ids, nil
}

// Addr returns the HTTPS address that replica id recorded, or "" when it
// is not alive.
func (r *Registry) Addr(ctx context.Context, id string) (string, error) {
	var addr string
	err := r.pool.QueryRow(ctx, `SELECT addr FROM replicas WHERE id = $1 AND taken_by IS NULL AND heartbeat >= now() - $2::float8 * interval '1 second'`,
		id, r.cfg.Timeout.Seconds()).Scan(&addr)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return addr, err
}
