// Package logs is Hangar's store for app logs: executor stdout/stderr and the
// output of each deploy step. Lines are timestamped on arrival, buffered in
// memory, batch-inserted into the metadata PostgreSQL (so several Hangar
// processes share them), queried with the API's since/upto/last/limit
// pagination, followed live, and pruned by age and by count per app.
//
// It is a leaf: it imports only the standard library, pgx and
// internal/hangar. The composition root wires it; api, console, build and
// deploy use it through small interfaces of their own.
//
// # Ordering and cursors
//
// Each app's lines have distinct microsecond timestamps, in commit order:
// every flush locks the app's row in app_log_state, assigns each line
// max(arrival, previous+1µs) and commits before the next flush of that app,
// from any process, can read the row. So a timestamp is a complete cursor:
// "since T" (inclusive) continues exactly after the line before T, a page
// boundary never splits lines that share a timestamp (none do), and a poller
// that has seen every line up to T never misses a line committed later. The
// cost is one row lock per app per flush, and a line's timestamp may be
// pushed past its arrival by a few microseconds under bursts, or by the skew
// between hosts' clocks when several hosts write one app.
//
// # Schema
//
// Open creates the package's two tables with CREATE TABLE IF NOT EXISTS
// rather than through the store package's migrations: the tables belong to
// this package alone, nothing joins them, and keeping the DDL here keeps the
// package self-contained and testable on an empty database. A future change
// of these tables needs a versioned step here too (see ddl).
package logs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Sources of log lines.
const (
	SourceDeploy   = "deploy"
	SourceExecutor = "executor"
)

// Query limits.
const (
	// DefaultLimit is the page size when Query.Limit is 0.
	DefaultLimit = 1000
	// MaxLimit caps Query.Limit.
	MaxLimit = 10000
)

// Line is one log line.
type Line struct {
	// Time is when the line arrived, in UTC with microsecond precision,
	// unique among the lines of its app.
	Time time.Time
	// AppID is the app the line belongs to.
	AppID string
	// Source is SourceDeploy or SourceExecutor.
	Source string
	// Version is the ID of the app version that produced the line.
	Version string
	// Executor is the executor ID for executor lines and the step name for
	// deploy lines.
	Executor string
	// Text is the line without its line ending: valid UTF-8, no NUL bytes.
	Text string
}

// Config configures a Store. The zero value of each field means its default.
type Config struct {
	// MaxAge is how long lines are kept. Default 7 days.
	MaxAge time.Duration
	// MaxLinesPerApp is how many of an app's newest lines are kept.
	// Default 1,000,000, like DBOS Cloud's retention.
	MaxLinesPerApp int
	// MaxBytesPerApp bounds the text of an app's stored lines: past it,
	// the app's oldest lines are deleted at the flush that went over, so
	// one app's output cannot fill the metadata database. Default 256 MiB.
	MaxBytesPerApp int64
	// FlushInterval is the longest a written line waits in memory before
	// it is inserted, while Run runs. Default 200ms.
	FlushInterval time.Duration
	// PollInterval is how often Follow looks for new lines. Default 500ms.
	PollInterval time.Duration
	// PruneInterval is how often Run applies retention. Default 1 minute.
	PruneInterval time.Duration
	// BufferBytes bounds the lines held in memory while the database is
	// slow or down; past it the oldest lines of the app that holds the
	// most are dropped, so one app's flood never drops another app's
	// lines. Default 32 MiB.
	BufferBytes int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives flush failures, drops and recoveries. Default: discard.
	Logger *slog.Logger
}

func (c Config) withDefaults() (Config, error) {
	if c.MaxAge < 0 || c.MaxLinesPerApp < 0 || c.FlushInterval < 0 || c.PollInterval < 0 ||
		c.PruneInterval < 0 || c.BufferBytes < 0 || c.MaxBytesPerApp < 0 {
		return c, errors.New("logs config: negative value")
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.MaxLinesPerApp == 0 {
		c.MaxLinesPerApp = 1_000_000
	}
	if c.MaxBytesPerApp == 0 {
		c.MaxBytesPerApp = 256 << 20
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 200 * time.Millisecond
	}
	if c.PollInterval == 0 {
		c.PollInterval = 500 * time.Millisecond
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = time.Minute
	}
	if c.BufferBytes == 0 {
		c.BufferBytes = 32 << 20
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c, nil
}

// Store is the log store. Its methods are safe for concurrent use.
type Store struct {
	cfg  Config
	pool *pgxpool.Pool
	log  *slog.Logger
	kick chan struct{} // asks Run to flush before the next tick

	flushMu sync.Mutex // serializes flushes, so each app's lines commit in order

	mu          sync.Mutex
	queues      map[string]*appQueue // buffered lines by app ID
	queuedLines int
	queuedBytes int
	dropLogged  bool // a drop was logged since the last successful flush
	failing     bool // the last flush failed
	dropped     atomic.Int64
}

// ddl creates the tables. app_log_state holds, per app, the last timestamp
// handed out (the row whose lock orders the app's flushes) and the exact
// number and text size of its stored lines (so pruning by count or size
// touches only the excess). The DO block is the versioned step that added
// the size, counting the lines stored before.
const ddl = `
CREATE TABLE IF NOT EXISTS app_logs (
    app_id    text        NOT NULL,
    ts        timestamptz NOT NULL,
    source    text        NOT NULL,
    version   text        NOT NULL DEFAULT '',
    executor  text        NOT NULL DEFAULT '',
    line      text        NOT NULL,
    PRIMARY KEY (app_id, ts)
);
CREATE TABLE IF NOT EXISTS app_log_state (
    app_id   text        PRIMARY KEY,
    last_ts  timestamptz NOT NULL,
    lines    bigint      NOT NULL DEFAULT 0
);
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM information_schema.columns
                   WHERE table_schema = current_schema() AND table_name = 'app_log_state' AND column_name = 'bytes') THEN
        ALTER TABLE app_log_state ADD COLUMN bytes bigint NOT NULL DEFAULT 0;
        UPDATE app_log_state s SET bytes = coalesce(
            (SELECT sum(octet_length(l.line)) FROM app_logs l WHERE l.app_id = s.app_id), 0);
    END IF;
END $$;
`

// Advisory lock keys: DDL from concurrent Opens, and one pruner at a time
// across processes.
const (
	ddlLock   = 0x68676c6f677301 // "hglogs" 1
	pruneLock = 0x68676c6f677302 // "hglogs" 2
)

// Open returns a Store on pool, creating its tables if they do not exist.
// Lines reach the database while Run runs, and when a Writer is closed.
func Open(ctx context.Context, pool *pgxpool.Pool, cfg Config) (*Store, error) {
	if pool == nil {
		return nil, errors.New("open log store: nil pool")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("create log tables: %w", err)
	}
	defer tx.Rollback(ctx)
	// CREATE TABLE IF NOT EXISTS races with itself across sessions.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", int64(ddlLock)); err != nil {
		return nil, fmt.Errorf("create log tables: %w", err)
	}
	if _, err := tx.Exec(ctx, ddl); err != nil {
		return nil, fmt.Errorf("create log tables: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("create log tables: %w", err)
	}
	return &Store{
		cfg:    cfg,
		pool:   pool,
		log:    cfg.Logger.With("component", "logs"),
		kick:   make(chan struct{}, 1),
		queues: map[string]*appQueue{},
	}, nil
}

// Run flushes written lines every FlushInterval and prunes every
// PruneInterval until ctx is done, then flushes once more. Call it once.
func (s *Store) Run(ctx context.Context) {
	flushT := time.NewTicker(s.cfg.FlushInterval)
	defer flushT.Stop()
	pruneT := time.NewTicker(s.cfg.PruneInterval)
	defer pruneT.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			s.flushAndReport(fctx)
			cancel()
			return
		case <-flushT.C:
			s.flushAndReport(ctx)
		case <-s.kick:
			s.flushAndReport(ctx)
		case <-pruneT.C:
			if _, err := s.Prune(ctx); err != nil && ctx.Err() == nil {
				s.log.ErrorContext(ctx, "prune logs", "err", err)
			}
		}
	}
}

// Dropped returns how many lines were dropped because the buffer was full
// while the database was slow or down.
func (s *Store) Dropped() int64 { return s.dropped.Load() }

// DeleteApp removes every line of appID, stored or still buffered.
func (s *Store) DeleteApp(ctx context.Context, appID string) error {
	// Holding flushMu keeps this process from inserting the app's
	// buffered lines after they are deleted.
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	if q := s.queues[appID]; q != nil {
		s.queuedLines -= len(q.lines)
		s.queuedBytes -= q.bytes
		delete(s.queues, appID)
	}
	s.mu.Unlock()

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("delete logs of app %s: %w", appID, err)
	}
	defer tx.Rollback(ctx)
	// The state row first: every writer of the table locks it first, so
	// there is no deadlock, and flushes from other processes wait.
	if _, err := tx.Exec(ctx, "DELETE FROM app_log_state WHERE app_id = $1", appID); err != nil {
		return fmt.Errorf("delete logs of app %s: %w", appID, err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM app_logs WHERE app_id = $1", appID); err != nil {
		return fmt.Errorf("delete logs of app %s: %w", appID, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("delete logs of app %s: %w", appID, err)
	}
	return nil
}

// pruneBatch bounds the rows one prune transaction deletes, so the app's
// state row (and with it the app's flushes) is never locked for long.
const pruneBatch = 50_000

// Prune deletes lines older than MaxAge and each app's oldest lines beyond
// MaxLinesPerApp or MaxBytesPerApp, and returns how many it deleted. When another
// process is pruning the same database, it returns 0 at once.
func (s *Store) Prune(ctx context.Context) (int64, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return 0, fmt.Errorf("prune logs: %w", err)
	}
	defer conn.Release()
	var locked bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", int64(pruneLock)).Scan(&locked); err != nil {
		return 0, fmt.Errorf("prune logs: %w", err)
	}
	if !locked {
		return 0, nil
	}
	defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(pruneLock))

	rows, err := conn.Query(ctx, "SELECT app_id FROM app_log_state ORDER BY app_id")
	if err != nil {
		return 0, fmt.Errorf("prune logs: %w", err)
	}
	var apps []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return 0, fmt.Errorf("prune logs: %w", err)
		}
		apps = append(apps, a)
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("prune logs: %w", err)
	}
	cutoff := s.cfg.Now().Add(-s.cfg.MaxAge)
	var total int64
	for _, app := range apps {
		n, err := s.pruneAll(ctx, app, cutoff)
		total += n
		if err != nil {
			return total, fmt.Errorf("prune logs of app %s: %w", app, err)
		}
	}
	return total, nil
}

// pruneApp deletes up to pruneBatch of app's oldest lines that are older
// than cutoff or beyond the count or size limits.
func (s *Store) pruneApp(ctx context.Context, app string, cutoff time.Time) (int64, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback(ctx)
	var lines, bytes int64
	err = tx.QueryRow(ctx, "SELECT lines, bytes FROM app_log_state WHERE app_id = $1 FOR UPDATE", app).Scan(&lines, &bytes)
	if err != nil {
		if isNoRows(err) { // deleted meanwhile
			return 0, nil
		}
		return 0, err
	}
	var n, nb int64 // lines and bytes deleted
	del := func(query string, args ...any) error {
		var dn, dnb int64
		err := tx.QueryRow(ctx, "WITH d AS ("+query+" RETURNING octet_length(line) AS n) SELECT count(*), coalesce(sum(n), 0) FROM d", args...).Scan(&dn, &dnb)
		n, nb = n+dn, nb+dnb
		return err
	}
	err = del(`DELETE FROM app_logs WHERE app_id = $1 AND ts IN (
		    SELECT ts FROM app_logs WHERE app_id = $1 AND ts < $2 ORDER BY ts LIMIT $3)`,
		app, cutoff, pruneBatch)
	if err != nil {
		return 0, err
	}
	if excess := lines - n - int64(s.cfg.MaxLinesPerApp); excess > 0 && n < pruneBatch {
		err := del(`DELETE FROM app_logs WHERE app_id = $1 AND ts IN (
			    SELECT ts FROM app_logs WHERE app_id = $1 ORDER BY ts LIMIT $2)`,
			app, min(excess, pruneBatch-n))
		if err != nil {
			return 0, err
		}
	}
	if excess := bytes - nb - s.cfg.MaxBytesPerApp; excess > 0 && n < pruneBatch {
		// The shortest run of oldest lines whose text makes up the excess,
		// looked for among the next lines only, so that the index bounds
		// the scan.
		err := del(`DELETE FROM app_logs WHERE app_id = $1 AND ts IN (
			    SELECT ts FROM (
			        SELECT ts, sum(octet_length(line)) OVER (ORDER BY ts) - octet_length(line) AS before
			        FROM (SELECT ts, line FROM app_logs WHERE app_id = $1 ORDER BY ts LIMIT $2) head
			    ) h WHERE before < $3)`,
			app, pruneBatch-n, excess)
		if err != nil {
			return 0, err
		}
	}
	if n == 0 {
		return 0, nil
	}
	if _, err := tx.Exec(ctx, "UPDATE app_log_state SET lines = greatest(lines - $2, 0), bytes = greatest(bytes - $3, 0) WHERE app_id = $1", app, n, nb); err != nil {
		return 0, err
	}
	return n, tx.Commit(ctx)
}

// pruneAll runs pruneApp on app until it has nothing left to delete.
func (s *Store) pruneAll(ctx context.Context, app string, cutoff time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.pruneApp(ctx, app, cutoff)
		total += n
		if err != nil || n < pruneBatch {
			return total, err
		}
	}
}

// sortedApps returns the distinct app IDs of lines, sorted: every
// transaction locks state rows in this order, so they never deadlock.
func sortedApps(lines []Line) []string {
	seen := map[string]bool{}
	var apps []string
	for _, l := range lines {
		if !seen[l.AppID] {
			seen[l.AppID] = true
			apps = append(apps, l.AppID)
		}
	}
	sort.Strings(apps)
	return apps
}
