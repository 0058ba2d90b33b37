package history

import (
	"testing"
	"time"
)

// BenchmarkSeries_Week reads one app's last week (1,008 buckets of 10
// minutes) out of 14 days of history of 50 apps with one executor each,
// written minute by minute as the Sampler writes them (the apps' rows
// interleaved).
func BenchmarkSeries_Week(b *testing.B) {
	st := openStore(b)
	now := time.Now().Truncate(time.Minute)
	if _, err := st.pool.Exec(b.Context(), `
		INSERT INTO app_metrics (app_id, minute, req_2xx, req_3xx, req_4xx, req_5xx, p50_ms, p99_ms, executors, restarts, ooms,
			wf_started, wf_completed, wf_failed, queue_depth)
		SELECT 'app' || a, m, 50, 1, 2, 0, 5, 40, 1, 0, 0, 3, 3, 0, 1
		FROM generate_series($1::timestamptz - interval '14 days', $1, interval '1 minute') AS m, generate_series(1, 50) AS a
		ORDER BY m, a`, now); err != nil {
		b.Fatal(err)
	}
	if _, err := st.pool.Exec(b.Context(), `
		INSERT INTO app_metrics (app_id, minute, executor, mem_bytes, mem_limit_bytes, cpu_pct)
		SELECT 'app' || a, m, 'ex' || a, 60 << 20, 512 << 20, 10
		FROM generate_series($1::timestamptz - interval '14 days', $1, interval '1 minute') AS m, generate_series(1, 50) AS a
		ORDER BY m, a`, now); err != nil {
		b.Fatal(err)
	}
	if _, err := st.pool.Exec(b.Context(), `VACUUM ANALYZE app_metrics`); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		sr, err := st.Series(b.Context(), "app7", now.Add(-7*24*time.Hour), now, 10*time.Minute)
		if err != nil || len(sr.ByExecutor) != 1 {
			b.Fatalf("Series = %d executors, %v", len(sr.ByExecutor), err)
		}
	}
}
