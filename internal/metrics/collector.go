package metrics

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Source is what the collector reads at each scrape: the fleet's
// executors and the store's apps and instances, which the composition
// root combines.
type Source interface {
	// Apps lists every org's apps when org is "".
	Apps(ctx context.Context, org string) ([]hangar.App, error)
	// Executors returns the app's live executors with their resource use.
	Executors(ctx context.Context, appID string) []fleet.ExecutorStatus
	// Health says how many executors serve the app.
	Health(appID string) fleet.Health
	// DBInstances lists every org's database instances when org is "".
	DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error)
}

// scrapeTimeout bounds the reads of one scrape; Prometheus' own default
// scrape timeout is 10 s.
const scrapeTimeout = 8 * time.Second

// Descriptions of the metrics read at scrape time.
var (
	executorLabels = []string{"org", "app", "executor", "version"}

	descExecutorState = desc("executor_state", "A live executor's state (STARTING, SERVING, RETIRING, DRAINING, STOPPING): 1 for its current one.",
		append(executorLabels, "state"))
	descMemory      = desc("executor_memory_bytes", "Memory an executor uses now, page cache included.", executorLabels)
	descMemoryLimit = desc("executor_memory_limit_bytes", "An executor's memory limit.", executorLabels)
	descMemoryPeak  = desc("executor_memory_peak_bytes", "The most memory an executor used at once since it started.", executorLabels)
	descCPU         = desc("executor_cpu_seconds_total", "CPU time an executor used since it started.", executorLabels)
	descThrottledN  = desc("executor_cpu_throttled_periods_total", "Scheduler periods in which an executor's CPU quota ran out.", executorLabels)
	descThrottled   = desc("executor_cpu_throttled_seconds_total", "Time an executor was held back by its CPU quota.", executorLabels)
	descOOMKills    = desc("executor_oom_kills_total", "Processes of an executor the kernel killed for exceeding its memory limit.", executorLabels)
	descPids        = desc("executor_pids", "Processes and threads of an executor.", executorLabels)

	descAppStatus    = desc("app_status", "An app's status (REGISTERED, DEPLOYING, AVAILABLE, …): 1 for its current one.", []string{"org", "app", "status"})
	descAppExecutors = desc("app_executors", "Executors serving an app.", []string{"org", "app"})
	descEvents       = desc("executor_events_total", "Events of an app's executors since Hangar started, by kind (EXITED, OOM, UNHEALTHY, START_FAILED, STARTED, …).", []string{"org", "app", "kind"})
	descDBInstances  = desc("database_instances", "Database instances by status.", []string{"status"})
)

func desc(name, help string, labels []string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName(namespace, "", name), help, labels, nil)
}

// collector reads the apps, their executors and the database instances at
// each scrape, so that nothing is kept for executors that are gone.
type collector struct {
	src Source
	m   *Metrics
}

var _ prometheus.Collector = (*collector)(nil)

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		descExecutorState, descMemory, descMemoryLimit, descMemoryPeak, descCPU, descThrottledN, descThrottled,
		descOOMKills, descPids, descAppStatus, descAppExecutors, descEvents, descDBInstances,
	} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	c.collectApps(ctx, ch)
	c.collectDBInstances(ctx, ch)
}

func (c *collector) collectApps(ctx context.Context, ch chan<- prometheus.Metric) {
	apps, err := c.src.Apps(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descAppStatus, fmt.Errorf("list apps: %w", err))
		return
	}
	events := c.m.appEvents(apps)
	for _, a := range apps {
		ch <- prometheus.MustNewConstMetric(descAppStatus, prometheus.GaugeValue, 1, a.Org, a.Name, string(a.Status))
		ch <- prometheus.MustNewConstMetric(descAppExecutors, prometheus.GaugeValue, float64(c.src.Health(a.ID).Executors), a.Org, a.Name)
		for kind, n := range events[a.ID] {
			ch <- prometheus.MustNewConstMetric(descEvents, prometheus.CounterValue, float64(n), a.Org, a.Name, string(kind))
		}
		for _, ex := range c.src.Executors(ctx, a.ID) {
			collectExecutor(ch, a, ex)
		}
	}
}

// collectExecutor sends the metrics of one executor. Those the driver does
// not account (no Stats), or reports as unknown (0 for a limit or a peak),
// are left out.
func collectExecutor(ch chan<- prometheus.Metric, a hangar.App, ex fleet.ExecutorStatus) {
	labels := []string{a.Org, a.Name, ex.ID, ex.Version}
	ch <- prometheus.MustNewConstMetric(descExecutorState, prometheus.GaugeValue, 1, append(labels, string(ex.State))...)
	st := ex.Stats
	if st == nil {
		return
	}
	send := func(d *prometheus.Desc, t prometheus.ValueType, v float64) {
		ch <- prometheus.MustNewConstMetric(d, t, v, labels...)
	}
	send(descMemory, prometheus.GaugeValue, float64(st.MemoryBytes))
	if st.MemoryLimitBytes > 0 {
		send(descMemoryLimit, prometheus.GaugeValue, float64(st.MemoryLimitBytes))
	}
	if st.MemoryPeakBytes > 0 {
		send(descMemoryPeak, prometheus.GaugeValue, float64(st.MemoryPeakBytes))
	}
	send(descCPU, prometheus.CounterValue, st.CPU.Seconds())
	send(descThrottledN, prometheus.CounterValue, float64(st.ThrottledPeriods))
	send(descThrottled, prometheus.CounterValue, st.Throttled.Seconds())
	send(descOOMKills, prometheus.CounterValue, float64(st.OOMKills))
	send(descPids, prometheus.GaugeValue, float64(st.Pids))
}

func (c *collector) collectDBInstances(ctx context.Context, ch chan<- prometheus.Metric) {
	insts, err := c.src.DBInstances(ctx, "")
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descDBInstances, fmt.Errorf("list database instances: %w", err))
		return
	}
	byStatus := map[hangar.DBStatus]int{}
	for _, in := range insts {
		byStatus[in.Status]++
	}
	for status, n := range byStatus {
		ch <- prometheus.MustNewConstMetric(descDBInstances, prometheus.GaugeValue, float64(n), string(status))
	}
}

// appEvents returns a copy of the executor event counts of apps, and
// forgets those of apps that are gone.
func (m *Metrics) appEvents(apps []hangar.App) map[string]map[fleet.EventKind]uint64 {
	exists := make(map[string]bool, len(apps))
	for _, a := range apps {
		exists[a.ID] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]map[fleet.EventKind]uint64, len(m.events))
	for id, byKind := range m.events {
		if !exists[id] {
			delete(m.events, id)
			continue
		}
		out[id] = maps.Clone(byKind)
	}
	return out
}
