package history

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Series is an app's history over a range, in buckets of Step from Start:
// each slice has one value per bucket, nil where nothing was sampled.
type Series struct {
	Start time.Time
	Step  time.Duration
	// Times are the buckets' starts.
	Times []time.Time
	// Requests are the requests per bucket by status class: [0] 2xx …
	// [3] 5xx.
	Requests [4][]*float64
	// P50 and P99 are latencies in milliseconds: over a bucket of several
	// minutes, the mean of the minutes' medians and the highest 99th
	// percentile.
	P50, P99 []*float64
	// Executors is the most executors serving in a bucket; Restarts and
	// OOMs count executor exits and out-of-memory kills.
	Executors, Restarts, OOMs []*float64
	// Started, Completed and Failed count workflows; QueueDepth is the
	// most workflows waiting in queues.
	Started, Completed, Failed, QueueDepth []*float64
	// ByExecutor are the executors of the range, the latest MaxExecutors.
	ByExecutor []ExecutorSeries
}

// ExecutorSeries is one executor's memory (MiB) and CPU (percent of a
// vCPU) per bucket, and its memory limit.
type ExecutorSeries struct {
	ID                  string
	MemoryMiB, LimitMiB []*float64
	CPUPercent          []*float64
	last                time.Time
}

// MaxExecutors bounds the executors a Series carries.
const MaxExecutors = 8

// Series reads the app's history in [from, to) in buckets of step.
// size: one query, then one pass filling the columns of the series.
func (s *Store) Series(ctx context.Context, appID string, from, to time.Time, step time.Duration) (Series, error) {
	from = from.Truncate(step)
	n := int((to.Sub(from) + step - 1) / step)
	out := Series{Start: from, Step: step, Times: make([]time.Time, n)}
	for i := range out.Times {
		out.Times[i] = from.Add(time.Duration(i) * step)
	}
	col := func() []*float64 { return make([]*float64, n) }
	for i := range out.Requests {
		out.Requests[i] = col()
	}
	out.P50, out.P99, out.Executors, out.Restarts, out.OOMs = col(), col(), col(), col(), col()
	out.Started, out.Completed, out.Failed, out.QueueDepth = col(), col(), col(), col()
	secs := int(step / time.Second)

	rows, err := s.pool.Query(ctx, `
		SELECT date_bin(make_interval(secs => $4), minute, $2) AS t,
			sum(req_2xx)::float8, sum(req_3xx)::float8, sum(req_4xx)::float8, sum(req_5xx)::float8,
			avg(p50_ms)::float8, max(p99_ms)::float8, max(executors)::float8, sum(restarts)::float8, sum(ooms)::float8,
			sum(wf_started)::float8, sum(wf_completed)::float8, sum(wf_failed)::float8, max(queue_depth)::float8
		FROM app_metrics WHERE app_id = $1 AND executor = '' AND minute >= $2 AND minute < $3
		GROUP BY t ORDER BY t`, appID, from, to, secs)
	if err != nil {
		return out, fmt.Errorf("read metrics history of %s: %w", appID, err)
	}
	for rows.Next() {
		var t time.Time
		v := make([]*float64, 13)
		dst := []any{&t}
		for i := range v {
			dst = append(dst, &v[i])
		}
		if err := rows.Scan(dst...); err != nil {
			rows.Close()
			return out, fmt.Errorf("read metrics history of %s: %w", appID, err)
		}
		i := int(t.Sub(from) / step)
		if i < 0 || i >= n {
			continue
		}
		for j, c := range [][]*float64{out.Requests[0], out.Requests[1], out.Requests[2], out.Requests[3],
			out.P50, out.P99, out.Executors, out.Restarts, out.OOMs, out.Started, out.Completed, out.Failed, out.QueueDepth} {
			c[i] = v[j]
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read metrics history of %s: %w", appID, err)
	}

	rows, err = s.pool.Query(ctx, `
		SELECT executor, date_bin(make_interval(secs => $4), minute, $2) AS t,
			avg(mem_bytes)::float8 / 1048576, max(mem_limit_bytes)::float8 / 1048576, avg(cpu_pct)::float8
		FROM app_metrics WHERE app_id = $1 AND executor <> '' AND minute >= $2 AND minute < $3
		GROUP BY executor, t ORDER BY executor, t`, appID, from, to, secs)
	if err != nil {
		return out, fmt.Errorf("read executor history of %s: %w", appID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var t time.Time
		var mem, limit, cpu *float64
		if err := rows.Scan(&id, &t, &mem, &limit, &cpu); err != nil {
			return out, fmt.Errorf("read executor history of %s: %w", appID, err)
		}
		i := int(t.Sub(from) / step)
		if i < 0 || i >= n {
			continue
		}
		if len(out.ByExecutor) == 0 || out.ByExecutor[len(out.ByExecutor)-1].ID != id {
			out.ByExecutor = append(out.ByExecutor, ExecutorSeries{ID: id, MemoryMiB: col(), LimitMiB: col(), CPUPercent: col()})
		}
		e := &out.ByExecutor[len(out.ByExecutor)-1]
		e.MemoryMiB[i], e.LimitMiB[i], e.CPUPercent[i], e.last = mem, limit, cpu, t
	}
	if err := rows.Err(); err != nil {
		return out, fmt.Errorf("read executor history of %s: %w", appID, err)
	}
	slices.SortStableFunc(out.ByExecutor, func(a, b ExecutorSeries) int { return b.last.Compare(a.last) })
	if len(out.ByExecutor) > MaxExecutors {
		out.ByExecutor = out.ByExecutor[:MaxExecutors]
	}
	return out, nil
}
