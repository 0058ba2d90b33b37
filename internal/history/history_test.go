package history

import (
	"context"
	"math"
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/hangar-oss/hangar/internal/runtime"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func openStore(tb testing.TB) *Store {
	tb.Helper()
	pool, err := pgxpool.New(tb.Context(), pgtest.URL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	st, err := Open(tb.Context(), pool)
	if err != nil {
		tb.Fatal(err)
	}
	return st
}

func TestCounts_Quantile(t *testing.T) {
	t.Parallel()
	var c counts
	for i := range 100 {
		c.add(200, time.Duration(i+1)*time.Millisecond)
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * time.Millisecond}, {0.99, 99 * time.Millisecond}} {
		got := c.quantile(tc.q)
		// A bucket's upper bound: at most 25 % above.
		if got < tc.want || float64(got) > 1.25*float64(tc.want) {
			t.Errorf("quantile(%v) = %v, want within [%v, 1.25×]", tc.q, got, tc.want)
		}
	}
	if c.classes != [4]int{100, 0, 0, 0} {
		t.Errorf("classes = %v, want 100 2xx", c.classes)
	}
}

// fakeSource is one app, available, with one executor.
type fakeSource struct{ app hangar.App }

func (f fakeSource) Apps(context.Context, string) ([]hangar.App, error) {
	return []hangar.App{f.app}, nil
}
func (f fakeSource) Executors(context.Context, string) []fleet.ExecutorStatus {
	return []fleet.ExecutorStatus{{ID: "ex1", State: fleet.ExecutorServing, CPUUse: 0.25,
		Stats: &runtime.Stats{MemoryBytes: 100 << 20, MemoryLimitBytes: 512 << 20}}}
}
func (f fakeSource) Health(string) fleet.Health { return fleet.Health{Executors: 1} }
func (f fakeSource) Workflows(_ context.Context, _, _ string, wf hangar.WorkflowFilter) ([]hangar.Workflow, error) {
	switch {
	case wf.QueuesOnly:
		return []hangar.Workflow{{ID: "q1"}, {ID: "q2"}}, nil
	case len(wf.Statuses) > 0:
		in := wf.StartTime.Add(time.Hour).Add(-time.Second) // just before now
		return []hangar.Workflow{{ID: "w1", Status: hangar.WorkflowSuccess, UpdatedAt: in}, {ID: "w2", Status: hangar.WorkflowError, UpdatedAt: in},
			{ID: "old", Status: hangar.WorkflowSuccess, UpdatedAt: wf.StartTime}}, nil
	}
	return []hangar.Workflow{{ID: "w1"}, {ID: "w2"}, {ID: "w3"}}, nil
}

// TestSampler samples one interval of an app with traffic, events,
// workflows and an executor, and reads it back as a chart's series.
func TestSampler(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	app := hangar.App{ID: "app1", Org: "o", Name: "a", Status: hangar.StatusAvailable}
	rec, ev := NewRecorder(), NewEvents()
	// As the router reports them: the Host header (net/http's path) or
	// its route's key (the front door's HTTP/1.1 loop).
	rec.RequestEnded("o-a.example.com:8443", true, http.StatusOK, time.Millisecond)
	rec.RequestEnded("O-A.example.com", true, http.StatusOK, time.Millisecond)
	rec.RequestEnded("o-a.example.com", true, http.StatusNotFound, time.Millisecond)
	rec.RequestEnded("made-up.example.com", false, http.StatusNotFound, time.Millisecond) // not routed: not counted
	obs := ev.Tee(nopObserver{})
	obs.ExecutorEvent("app1", fleet.EventOOM)
	obs.ExecutorEvent("app1", fleet.EventExited)
	obs.ExecutorEvent("app1", fleet.EventScaledUp)

	now := time.Date(2026, 1, 2, 3, 4, 30, 0, time.UTC)
	s := NewSampler(Config{Domain: "example.com:8443"}, st, fakeSource{app}, rec, ev)
	if err := s.Sample(t.Context(), now.Add(-time.Minute), now); err != nil {
		t.Fatal(err)
	}
	sr, err := st.Series(t.Context(), "app1", now.Add(-time.Hour), now, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// From 02:04:30, truncated to the minute: 03:04 the day
	// before to 03:04 now, 61 minutes.
	if len(sr.Times) != 61 {
		t.Fatalf("%d buckets, want 61", len(sr.Times))
	}
	i := int(now.Add(-time.Minute).Truncate(time.Minute).Sub(sr.Start) / time.Minute)
	got := map[string]float64{}
	for name, c := range map[string][]*float64{"2xx": sr.Requests[0], "4xx": sr.Requests[2], "executors": sr.Executors,
		"restarts": sr.Restarts, "ooms": sr.OOMs, "started": sr.Started, "completed": sr.Completed, "failed": sr.Failed, "queue": sr.QueueDepth} {
		if c[i] == nil {
			t.Fatalf("%s at bucket %d is null", name, i)
		}
		got[name] = *c[i]
	}
	want := map[string]float64{"2xx": 2, "4xx": 1, "executors": 1, "restarts": 1, "ooms": 1, "started": 3, "completed": 1, "failed": 1, "queue": 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("app row (-want +got):\n%s", diff)
	}
	if sr.P99[i] == nil || sr.P50[i] == nil {
		t.Errorf("latency percentiles are null")
	}
	if len(sr.ByExecutor) != 1 || sr.ByExecutor[0].ID != "ex1" || *sr.ByExecutor[0].MemoryMiB[i] != 100 ||
		*sr.ByExecutor[0].LimitMiB[i] != 512 || math.Abs(*sr.ByExecutor[0].CPUPercent[i]-25) > 0.01 {
		t.Errorf("executors = %+v, want ex1 at 100 of 512 MiB, 25 %% CPU", sr.ByExecutor)
	}
	if sr.Requests[0][i-1] != nil {
		t.Errorf("a bucket with no sample holds %v, want null", *sr.Requests[0][i-1])
	}

	// A day's buckets of 10 minutes sum the minute's requests.
	day, err := st.Series(t.Context(), "app1", now.Add(-24*time.Hour), now, 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, v := range day.Requests[0] {
		if v != nil {
			total += *v
		}
	}
	if total != 2 {
		t.Errorf("day total 2xx = %v, want 2", total)
	}

	if n, err := st.Prune(t.Context(), now); err != nil || n != 2 {
		t.Errorf("Prune = %d, %v; want the 2 rows", n, err)
	}
}

type nopObserver struct{}

func (nopObserver) DeployEnded(bool)                      {}
func (nopObserver) StepEnded(string, time.Duration)       {}
func (nopObserver) ExecutorEvent(string, fleet.EventKind) {}
