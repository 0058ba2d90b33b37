package metrics

import (
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// fakeSource is what a deploy.Service reports, fixed.
type fakeSource struct {
	apps      []hangar.App
	appsErr   error
	executors map[string][]fleet.ExecutorStatus
	serving   map[string]int
	dbs       []hangar.DBInstance
}

func (f *fakeSource) Apps(_ context.Context, org string) ([]hangar.App, error) {
	if org != "" {
		panic("the collector lists every org's apps")
	}
	return f.apps, f.appsErr
}

func (f *fakeSource) Executors(_ context.Context, appID string) []fleet.ExecutorStatus {
	return f.executors[appID]
}

func (f *fakeSource) Health(appID string) fleet.Health {
	return fleet.Health{Executors: f.serving[appID]}
}

func (f *fakeSource) DBInstances(_ context.Context, org string) ([]hangar.DBInstance, error) {
	if org != "" {
		panic("the collector lists every org's instances")
	}
	return f.dbs, nil
}

func newSource() *fakeSource {
	return &fakeSource{
		apps: []hangar.App{
			{ID: "a1", Org: "alice", Name: "greeter", Status: hangar.StatusAvailable},
			{ID: "a2", Org: "bob", Name: "my-app", Status: hangar.StatusRegistered},
		},
		executors: map[string][]fleet.ExecutorStatus{"a1": {
			{ID: "ex-1", Version: "v1", State: fleet.ExecutorRetiring, MemoryLimitMiB: 512, CPUUse: math.NaN(), Stats: &runtime.Stats{
				MemoryBytes: 100 << 20, MemoryLimitBytes: 512 << 20, MemoryPeakBytes: 200 << 20, Pids: 12,
				CPU: 1500 * time.Millisecond, ThrottledPeriods: 3, Throttled: 250 * time.Millisecond, OOMKills: 1,
			}},
			// The driver does not account this one (netns), nor a limit
			// or peak for the one above on every kernel.
			{ID: "ex-2", Version: "v2", State: fleet.ExecutorServing, MemoryLimitMiB: 512, CPUUse: math.NaN()},
		}},
		serving: map[string]int{"a1": 1},
		dbs: []hangar.DBInstance{
			{Name: "db1", Status: hangar.DBAvailable}, {Name: "db2", Status: hangar.DBAvailable}, {Name: "db3", Status: hangar.DBProvisioning},
		},
	}
}

func TestCollector(t *testing.T) {
	t.Parallel()
	m := New(slog.New(slog.DiscardHandler))
	src := newSource()
	m.Watch(src)
	m.ExecutorEvent("a1", fleet.EventOOM)
	m.ExecutorEvent("a1", fleet.EventStarted)
	m.ExecutorEvent("a1", fleet.EventStarted)
	m.ExecutorEvent("gone", fleet.EventExited) // an app deleted since

	want := `
# HELP hangar_app_executors Executors serving an app.
# TYPE hangar_app_executors gauge
hangar_app_executors{app="greeter",org="alice"} 1
hangar_app_executors{app="my-app",org="bob"} 0
# HELP hangar_app_status An app's status (REGISTERED, DEPLOYING, AVAILABLE, …): 1 for its current one.
# TYPE hangar_app_status gauge
hangar_app_status{app="greeter",org="alice",status="AVAILABLE"} 1
hangar_app_status{app="my-app",org="bob",status="REGISTERED"} 1
# HELP hangar_database_instances Database instances by status.
# TYPE hangar_database_instances gauge
hangar_database_instances{status="available"} 2
hangar_database_instances{status="provisioning"} 1
# HELP hangar_executor_cpu_seconds_total CPU time an executor used since it started.
# TYPE hangar_executor_cpu_seconds_total counter
hangar_executor_cpu_seconds_total{app="greeter",executor="ex-1",org="alice",version="v1"} 1.5
# HELP hangar_executor_cpu_throttled_periods_total Scheduler periods in which an executor's CPU quota ran out.
# TYPE hangar_executor_cpu_throttled_periods_total counter
hangar_executor_cpu_throttled_periods_total{app="greeter",executor="ex-1",org="alice",version="v1"} 3
# HELP hangar_executor_cpu_throttled_seconds_total Time an executor was held back by its CPU quota.
# TYPE hangar_executor_cpu_throttled_seconds_total counter
hangar_executor_cpu_throttled_seconds_total{app="greeter",executor="ex-1",org="alice",version="v1"} 0.25
# HELP hangar_executor_events_total Events of an app's executors since Hangar started, by kind (EXITED, OOM, UNHEALTHY, START_FAILED, STARTED, …).
# TYPE hangar_executor_events_total counter
hangar_executor_events_total{app="greeter",kind="OOM",org="alice"} 1
hangar_executor_events_total{app="greeter",kind="STARTED",org="alice"} 2
# HELP hangar_executor_memory_bytes Memory an executor uses now, page cache included.
# TYPE hangar_executor_memory_bytes gauge
hangar_executor_memory_bytes{app="greeter",executor="ex-1",org="alice",version="v1"} 1.048576e+08
# HELP hangar_executor_memory_limit_bytes An executor's memory limit.
# TYPE hangar_executor_memory_limit_bytes gauge
hangar_executor_memory_limit_bytes{app="greeter",executor="ex-1",org="alice",version="v1"} 5.36870912e+08
# HELP hangar_executor_memory_peak_bytes The most memory an executor used at once since it started.
# TYPE hangar_executor_memory_peak_bytes gauge
hangar_executor_memory_peak_bytes{app="greeter",executor="ex-1",org="alice",version="v1"} 2.097152e+08
# HELP hangar_executor_oom_kills_total Processes of an executor the kernel killed for exceeding its memory limit.
# TYPE hangar_executor_oom_kills_total counter
hangar_executor_oom_kills_total{app="greeter",executor="ex-1",org="alice",version="v1"} 1
# HELP hangar_executor_pids Processes and threads of an executor.
# TYPE hangar_executor_pids gauge
hangar_executor_pids{app="greeter",executor="ex-1",org="alice",version="v1"} 12
# HELP hangar_executor_state A live executor's state (STARTING, SERVING, RETIRING, DRAINING, STOPPING): 1 for its current one.
# TYPE hangar_executor_state gauge
hangar_executor_state{app="greeter",executor="ex-1",org="alice",state="RETIRING",version="v1"} 1
hangar_executor_state{app="greeter",executor="ex-2",org="alice",state="SERVING",version="v2"} 1
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names(want)...); err != nil {
		t.Error(err)
	}
	m.mu.Lock()
	_, kept := m.events["gone"]
	m.mu.Unlock()
	if kept {
		t.Error("the events of an app that is gone are still kept after a scrape")
	}
}

// names returns the metric names in an exposition text's TYPE lines.
func names(text string) []string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if f := strings.Fields(line); len(f) == 4 && f[1] == "TYPE" {
			out = append(out, f[2])
		}
	}
	return out
}

func TestCollector_AppsUnreadable(t *testing.T) {
	t.Parallel()
	src := newSource()
	src.appsErr = errors.New("metadata database unreachable")
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(&collector{src: src, m: New(slog.New(slog.DiscardHandler))})
	mfs, err := reg.Gather()
	if err == nil || !strings.Contains(err.Error(), "metadata database unreachable") {
		t.Errorf("Gather error = %v, want the apps' error", err)
	}
	// The rest is still served.
	var got []string
	for _, mf := range mfs {
		got = append(got, mf.GetName())
	}
	if len(got) != 1 || got[0] != "hangar_database_instances" {
		t.Errorf("gathered %q, want hangar_database_instances only", got)
	}
}
