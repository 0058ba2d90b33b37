// Package metrics exports Hangar's Prometheus metrics: the API's and the
// router's requests, deploys and their steps, executor events, and at
// scrape time every live executor's resource use, the apps' status and the
// database instances. It is the only package that imports the Prometheus
// library: the API, the router and the deploy service know nothing of it,
// and the composition root wires it to them through their hooks
// (api.Config.Middleware, deploy.Config.Observer). It may import
// internal/hangar and internal/deploy; only composition roots import it.
//
// The metrics name tenants (org, app, executor), so they are served on a
// listener of their own, never on the public API host.
package metrics

import (
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/fleet"
)

const namespace = "hangar"

// Metrics is Hangar's metrics registry and the instruments that count as
// things happen. Create it with New; it is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	apiRequests    *prometheus.CounterVec
	apiDuration    *prometheus.HistogramVec
	routerRequests *prometheus.CounterVec
	routerDuration *prometheus.HistogramVec
	routerInFlight prometheus.Gauge
	deploys        *prometheus.CounterVec
	steps          *prometheus.HistogramVec

	mu sync.Mutex
	// events counts executor events by app ID and kind; the collector
	// labels them with the app's org and name at scrape time, and drops
	// those of apps that no longer exist.
	events map[string]map[fleet.EventKind]uint64
}

var (
	_ deploy.Observer = (*Metrics)(nil)
	_ fleet.Observer  = (*Metrics)(nil)
)

// New returns Metrics on a registry of their own (not Prometheus' global
// one), with the Go runtime's and the process's collectors.
func New(log *slog.Logger) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		log: log,
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "api_requests_total",
			Help: "API requests by route pattern and HTTP status code.",
		}, []string{"route", "code"}),
		apiDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "api_request_duration_seconds",
			Help: "Time to answer API requests, by route pattern; a deploy request lasts its deploy.",
			// Up to 5 minutes: a deploy request returns when the deploy ends.
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
		}, []string{"route"}),
		routerRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "router_requests_total",
			Help: "App requests through the router by org, app and status class (2xx, 4xx, …); org and app are empty for unknown hosts.",
		}, []string{"org", "app", "code"}),
		routerDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "router_request_duration_seconds",
			Help:    "Time to proxy app requests, by org and app.",
			Buckets: prometheus.DefBuckets,
		}, []string{"org", "app"}),
		routerInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace, Name: "router_requests_in_flight",
			Help: "App requests being proxied now.",
		}),
		deploys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace, Name: "deploys_total",
			Help: "Deploys that ended, by outcome (success or failure).",
		}, []string{"outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace, Name: "deploy_step_duration_seconds",
			Help:    "Duration of deploy steps (upload, configuration, migration, deployment), failed or not.",
			Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800},
		}, []string{"step"}),
		events: map[string]map[fleet.EventKind]uint64{},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.apiRequests, m.apiDuration, m.routerRequests, m.routerDuration, m.routerInFlight, m.deploys, m.steps,
	)
	return m
}

// Watch registers the collector that reads src at each scrape: the live
// executors of every app, the apps' status and executor events, and the
// database instances. Call it once.
func (m *Metrics) Watch(src Source) {
	m.reg.MustRegister(&collector{src: src, m: m})
}

// Handler serves the metrics in Prometheus' exposition formats at GET
// /metrics. A part that cannot be read (the metadata database is down)
// is left out and logged; the rest is served.
func (m *Metrics) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}))
	return mux
}

// DeployEnded counts a deploy by outcome.
func (m *Metrics) DeployEnded(ok bool) {
	outcome := "failure"
	if ok {
		outcome = "success"
	}
	m.deploys.WithLabelValues(outcome).Inc()
}

// StepEnded records a deploy step's duration.
func (m *Metrics) StepEnded(step string, d time.Duration) {
	m.steps.WithLabelValues(step).Observe(d.Seconds())
}

// ExecutorEvent counts an event of an app's executors.
func (m *Metrics) ExecutorEvent(appID string, kind fleet.EventKind) {
	m.mu.Lock()
	defer m.mu.Unlock()
	byKind := m.events[appID]
	if byKind == nil {
		byKind = map[fleet.EventKind]uint64{}
		m.events[appID] = byKind
	}
	byKind[kind]++
}
