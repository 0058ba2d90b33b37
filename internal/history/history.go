// Package history keeps each app's monitoring history at one-minute
// resolution in the metadata PostgreSQL, for the console's dashboards:
// requests by status class and their latency (counted by a wrapper around
// the router), executors' memory and CPU against their limits, executor
// count, restarts and OOM kills (from the deploy service), and workflows
// started, completed and failed and the queue depth (from the app's system
// database). A Sampler writes one row per app and one per executor each
// interval; Store.Series reads them back bucketed for a chart.
//
// Like internal/logs, it creates its table itself (CREATE TABLE IF NOT
// EXISTS): the table is this package's alone. It may import internal/hangar,
// internal/deploy and internal/runtime; only composition roots import it,
// and internal/api reads through Store.
package history

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store reads and writes the history table.
type Store struct {
	pool *pgxpool.Pool
}

// Open creates the history table if missing and returns its store.
func Open(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if _, err := pool.Exec(ctx, ddl); err != nil {
		return nil, fmt.Errorf("create metrics history table: %w", err)
	}
	return &Store{pool: pool}, nil
}

// The table has one row per app, minute and executor: executor ” is the
// app's own row (requests, latency, workflows, executor count), any other
// the row of that executor (memory, CPU). Columns that do not apply to a
// row are NULL. The primary key serves the reads, which are the app's own
// rows, or its executors', over a time range; it includes the values, so
// that a week of one app is read from the index alone rather than from
// heap pages shared with every other app's rows of the same minutes
// (BenchmarkSeries_Week: 112 → 56 ms). The index on minute serves the
// pruning.
const ddl = `
CREATE TABLE IF NOT EXISTS app_metrics (
	app_id text NOT NULL,
	minute timestamptz NOT NULL,
	executor text NOT NULL DEFAULT '',
	req_2xx integer, req_3xx integer, req_4xx integer, req_5xx integer,
	p50_ms real, p99_ms real,
	executors integer, restarts integer, ooms integer,
	wf_started integer, wf_completed integer, wf_failed integer, queue_depth integer,
	mem_bytes bigint, mem_limit_bytes bigint, cpu_pct real,
	PRIMARY KEY (app_id, executor, minute) INCLUDE (req_2xx, req_3xx, req_4xx, req_5xx, p50_ms, p99_ms,
		executors, restarts, ooms, wf_started, wf_completed, wf_failed, queue_depth, mem_bytes, mem_limit_bytes, cpu_pct)
);
CREATE INDEX IF NOT EXISTS app_metrics_minute ON app_metrics (minute)`

// AppSample is an app's row of one minute.
type AppSample struct {
	AppID  string
	Minute time.Time
	// Requests counts requests by status class: [0] 2xx … [3] 5xx (1xx
	// count as 2xx).
	Requests [4]int
	// P50 and P99 are the latency percentiles; NaN without requests.
	P50, P99                   time.Duration
	Executors, Restarts, OOMs  int
	Started, Completed, Failed int
	QueueDepth                 int
	// NoWorkflows is set when the app's system database was not read
	// (the app does not serve yet): the workflow columns stay NULL.
	NoWorkflows bool
}

// ExecutorSample is an executor's row of one minute.
type ExecutorSample struct {
	AppID, Executor         string
	Minute                  time.Time
	MemoryBytes, LimitBytes uint64
	// CPUPercent is its use, in percent of one vCPU; NaN when unknown.
	CPUPercent float64
}

// Write stores one interval's rows; a row already there for the same
// minute is replaced.
func (s *Store) Write(ctx context.Context, apps []AppSample, execs []ExecutorSample) error {
	var b pgx.Batch
	for _, a := range apps {
		var p50, p99 *float64
		if a.Requests != [4]int{} {
			p50, p99 = ms(a.P50), ms(a.P99)
		}
		wf := func(n int) *int {
			if a.NoWorkflows {
				return nil
			}
			return &n
		}
		b.Queue(`INSERT INTO app_metrics (app_id, minute, req_2xx, req_3xx, req_4xx, req_5xx, p50_ms, p99_ms,
			executors, restarts, ooms, wf_started, wf_completed, wf_failed, queue_depth)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13,$14,$15)
			ON CONFLICT (app_id, executor, minute) DO UPDATE SET req_2xx=EXCLUDED.req_2xx, req_3xx=EXCLUDED.req_3xx,
			req_4xx=EXCLUDED.req_4xx, req_5xx=EXCLUDED.req_5xx, p50_ms=EXCLUDED.p50_ms, p99_ms=EXCLUDED.p99_ms,
			executors=EXCLUDED.executors, restarts=EXCLUDED.restarts, ooms=EXCLUDED.ooms, wf_started=EXCLUDED.wf_started,
			wf_completed=EXCLUDED.wf_completed, wf_failed=EXCLUDED.wf_failed, queue_depth=EXCLUDED.queue_depth`,
			a.AppID, a.Minute, a.Requests[0], a.Requests[1], a.Requests[2], a.Requests[3], p50, p99,
			a.Executors, a.Restarts, a.OOMs, wf(a.Started), wf(a.Completed), wf(a.Failed), wf(a.QueueDepth))
	}
	for _, e := range execs {
		var cpu *float64
		if !math.IsNaN(e.CPUPercent) {
			cpu = &e.CPUPercent
		}
		b.Queue(`INSERT INTO app_metrics (app_id, minute, executor, mem_bytes, mem_limit_bytes, cpu_pct)
			VALUES ($1,$2,$3,$4,$5,$6)
			ON CONFLICT (app_id, executor, minute) DO UPDATE SET mem_bytes=EXCLUDED.mem_bytes,
			mem_limit_bytes=EXCLUDED.mem_limit_bytes, cpu_pct=EXCLUDED.cpu_pct`,
			e.AppID, e.Minute, e.Executor, int64(e.MemoryBytes), int64(e.LimitBytes), cpu)
	}
	if b.Len() == 0 {
		return nil
	}
	if err := s.pool.SendBatch(ctx, &b).Close(); err != nil {
		return fmt.Errorf("write metrics history: %w", err)
	}
	return nil
}

// Prune deletes the rows older than before.
func (s *Store) Prune(ctx context.Context, before time.Time) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM app_metrics WHERE minute < $1`, before)
	if err != nil {
		return 0, fmt.Errorf("prune metrics history: %w", err)
	}
	return tag.RowsAffected(), nil
}

func ms(d time.Duration) *float64 {
	v := float64(d) / float64(time.Millisecond)
	return &v
}
