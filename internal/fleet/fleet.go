// Package fleet runs the executors of Hangar's apps: the pool that serves
// each app (start, health checks, replacement with back-off, scaling,
// retiring and draining old versions), their events and resource use, and
// commands run on them (`app cmd`). It owns its state under one lock of
// its own. It imports internal/hangar, internal/runtime and
// internal/backoff, and declares the small interfaces its leaves satisfy;
// deploy, api and the composition roots import it.
package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// Store is the metadata the fleet reads and writes; *store.DB satisfies it.
type Store interface {
	// App returns org's app named name. KindNotFound.
	App(ctx context.Context, org, name string) (hangar.App, error)
	// AppByID returns the app with id. KindNotFound.
	AppByID(ctx context.Context, id string) (hangar.App, error)
	// SetAppStatus records an app's status.
	SetAppStatus(ctx context.Context, appID string, status hangar.AppStatus) error
	// Versions lists the app's versions, newest first.
	Versions(ctx context.Context, appID string) ([]hangar.Version, error)
}

// Workflows reads and recovers the workflows of an app's DBOS system
// database sysDB on inst; *sysdb.DB satisfies it.
type Workflows interface {
	// ActiveWorkflows counts the PENDING and ENQUEUED workflows of appVersion.
	ActiveWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB, appVersion string) (int, error)
	// EnqueuedWorkflows counts the ENQUEUED workflows of appVersion.
	EnqueuedWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB, appVersion string) (int, error)
	// PendingExecutors returns, by app version, the executors whose ID
	// starts with prefix that own PENDING workflows.
	PendingExecutors(ctx context.Context, inst hangar.DBInstance, sysDB, prefix string) (map[string][]string, error)
	// QueuedVersions lists the app versions with ENQUEUED workflows.
	QueuedVersions(ctx context.Context, inst hangar.DBInstance, sysDB string) ([]string, error)
	// RecoverWorkflows re-enqueues the PENDING workflows of executorIDs
	// for the executors of appVersion and returns how many.
	RecoverWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB string, executorIDs []string, appVersion string) (int, error)
}

// Router routes app hostnames to executors; *router.Router satisfies it.
type Router interface {
	Set(host string, upstreams []string)
	InFlight(upstream string) int64
	// SetLimit limits the requests sent at once to upstream; 0 lifts it
	// (admission.go).
	SetLimit(upstream string, limit int)
}

// LogSink stores app logs; *logs.Store satisfies it.
type LogSink interface {
	// Writer returns a writer whose lines are stored, timestamped, for the
	// app.
	Writer(appID, source, version, executor string) io.WriteCloser
	// Tail returns the last n lines a source wrote for a version.
	Tail(ctx context.Context, appID, source, version string, n int) (string, error)
}

// Specs says how to run the executors of an app's versions, which deploy
// built; *deploy.Specs satisfies it.
type Specs interface {
	// Spec returns how to start executor id of version for a (its
	// DBOS__APPVERSION appVersion, its database on inst) on network netw.
	// The fleet sets the spec's Stdout.
	Spec(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion, id string, netw runtime.Network) (runtime.Spec, error)
	// Stored reports whether version's files are still there to start it.
	Stored(appID, version string) bool
}

// Observer is told of executor events, for metrics. Its method must return
// at once and must not call the Fleet.
type Observer interface {
	// ExecutorEvent is called for each event of the app's executors, as
	// it is recorded for Events.
	ExecutorEvent(appID string, kind EventKind)
}

// logSource is the source of the lines the fleet writes to app logs.
const logSource = "executor"

// Config configures the fleet.
type Config struct {
	// Domain is the public domain apps are served under. Required.
	Domain string
	// HealthTimeout bounds how long a new executor may take to answer HTTP.
	// Default 2 minutes.
	HealthTimeout time.Duration
	// StopGrace is how long an executor gets between SIGTERM and kill.
	// Default 10 s.
	StopGrace time.Duration
	// DrainTimeout bounds how long a replaced executor is kept for its
	// requests in flight and its version's PENDING/ENQUEUED workflows; the
	// work left then goes to one drainer executor of that version. Default
	// 10 minutes.
	DrainTimeout time.Duration
	// HealthInterval is how often the supervisor checks that a serving
	// executor answers HTTP, and HealthFailures how many checks in a row
	// may fail before it is replaced. Defaults 5 s and 3.
	HealthInterval time.Duration
	HealthFailures int
	// RestartBackoff is the delay before replacing an executor that died;
	// it doubles with each failure in a row up to MaxRestartBackoff, and
	// starts over once an executor served for BackoffReset. Defaults 1 s,
	// 5 minutes and 10 minutes.
	RestartBackoff, MaxRestartBackoff, BackoffReset time.Duration
	// ScaleInterval is how often the supervisor samples each app's load to
	// scale it, and sweeps for the workflows of gone executors. Default
	// 10 s.
	ScaleInterval time.Duration
	// AdmissionInterval is how often the fleet checks whether busy
	// executors wait for a CPU, to limit the requests they are sent
	// (admission.go); negative turns the limits off. Default 250 ms.
	AdmissionInterval time.Duration
	// ScaleQueueDepth is how many ENQUEUED workflows per executor make the
	// supervisor add one (scaling.go). Default 10.
	ScaleQueueDepth int
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// DrainPoll is how often a retiring executor is checked. Default
	// 250 ms.
	DrainPoll time.Duration
	// Logger receives the fleet's logs. Default slog.Default().
	Logger *slog.Logger
	// Observer is told of executor events. Default none.
	Observer Observer
}

// Config defaults.
const (
	defaultHealthTimeout     = 2 * time.Minute
	defaultStopGrace         = 10 * time.Second
	defaultDrainTimeout      = 10 * time.Minute
	defaultHealthInterval    = 5 * time.Second
	defaultHealthFailures    = 3
	defaultRestartBackoff    = time.Second
	defaultMaxRestartBackoff = 5 * time.Minute
	defaultBackoffReset      = 10 * time.Minute
	defaultScaleInterval     = 10 * time.Second
	defaultScaleQueueDepth   = 10
	defaultDrainPoll         = 250 * time.Millisecond
	defaultAdmissionInterval = 250 * time.Millisecond
)

// withDefaults returns c with its zero fields set to their defaults.
func (c Config) withDefaults() Config {
	set := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	set(&c.HealthTimeout, defaultHealthTimeout)
	set(&c.StopGrace, defaultStopGrace)
	set(&c.DrainTimeout, defaultDrainTimeout)
	set(&c.HealthInterval, defaultHealthInterval)
	set(&c.RestartBackoff, defaultRestartBackoff)
	set(&c.MaxRestartBackoff, defaultMaxRestartBackoff)
	set(&c.BackoffReset, defaultBackoffReset)
	set(&c.ScaleInterval, defaultScaleInterval)
	set(&c.DrainPoll, defaultDrainPoll)
	set(&c.AdmissionInterval, defaultAdmissionInterval)
	if c.HealthFailures == 0 {
		c.HealthFailures = defaultHealthFailures
	}
	if c.ScaleQueueDepth == 0 {
		c.ScaleQueueDepth = defaultScaleQueueDepth
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Fleet runs the executors of every app. Create it with New, Start its
// supervisor loop, and Close it. Its mu guards every field below it; no
// other type touches them.
type Fleet struct {
	cfg    Config
	store  Store
	wf     Workflows
	driver runtime.Driver
	router Router
	logs   LogSink
	specs  Specs
	log    *slog.Logger

	// life is the lifetime of the fleet's goroutines, which wg counts;
	// Close ends it and waits for them.
	life     context.Context
	stopLife context.CancelFunc
	wg       sync.WaitGroup

	mu      sync.Mutex
	closing bool                 // Close began: spawn starts nothing
	pools   map[string]*pool     // app ID → the pool serving it
	live    map[string]*executor // executor ID → executor, from creation until stopped
	drains  map[string]*drain    // app ID + "/" + app version → its drainer's state
	events  map[string][]Event   // app ID → recent events, oldest first
	deleted map[string]bool      // apps being deleted: nothing starts for them
	early   earlies              // executors started during migrations (StartEarly)
}

// New returns a Fleet with no executors; it starts nothing yet.
func New(cfg Config, st Store, wf Workflows, drv runtime.Driver, rt Router, logs LogSink, specs Specs) *Fleet {
	cfg = cfg.withDefaults()
	f := &Fleet{
		cfg: cfg, store: st, wf: wf, driver: drv, router: rt, logs: logs, specs: specs,
		log:   cfg.Logger.With("component", "fleet"),
		pools: map[string]*pool{}, live: map[string]*executor{}, drains: map[string]*drain{},
		events: map[string][]Event{}, deleted: map[string]bool{},
	}
	f.life, f.stopLife = context.WithCancel(context.Background())
	return f
}

// Start starts the loop that sweeps and scales every ScaleInterval, and
// the one that sets executors' admission limits every AdmissionInterval.
func (f *Fleet) Start() {
	if f.cfg.AdmissionInterval > 0 {
		f.spawn(func() {
			tick := time.NewTicker(f.cfg.AdmissionInterval)
			defer tick.Stop()
			st := &admission{}
			for {
				select {
				case <-f.life.Done():
					return
				case <-tick.C:
				}
				st.tick(f)
			}
		})
	}
	f.spawn(func() {
		tick := time.NewTicker(f.cfg.ScaleInterval)
		defer tick.Stop()
		for {
			select {
			case <-f.life.Done():
				return
			case <-tick.C:
			}
			f.mu.Lock()
			pools := make([]*pool, 0, len(f.pools))
			for _, p := range f.pools {
				pools = append(pools, p)
			}
			f.mu.Unlock()
			for _, p := range pools {
				f.sweep(p)
				f.autoscale(p)
			}
			f.retryDrains()
		}
	})
}

// Close stops supervising, waits for the fleet's goroutines and then stops
// every executor. Workflows the executors leave PENDING are recovered by
// the next Hangar's sweep.
func (f *Fleet) Close(ctx context.Context) {
	f.mu.Lock()
	f.closing = true
	for id, p := range f.pools {
		p.close()
		delete(f.pools, id)
	}
	f.mu.Unlock()
	f.stopLife()
	f.wg.Wait()
	f.mu.Lock()
	exs := make([]*executor, 0, len(f.live))
	for _, ex := range f.live {
		exs = append(exs, ex)
	}
	f.mu.Unlock()
	f.stopAll(ctx, exs)
}

// spawn runs fn in a goroutine that Close waits for, unless Close has
// begun; it reports whether fn runs.
func (f *Fleet) spawn(fn func()) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closing {
		return false
	}
	f.wg.Go(fn)
	return true
}

// userMessage is the user-safe text of an error.
func userMessage(err error) string {
	if m := hangar.MessageOf(err); m != "" {
		return m
	}
	return "internal error (see the server log)"
}

// logf writes one line to a log writer.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}

// ReleaseApp removes what the runtime driver keeps for a deleted app
// outside its folder (the sandbox's setup layers and uid range), when it
// keeps anything.
func (f *Fleet) ReleaseApp(ctx context.Context, appID string) error {
	if r, ok := f.driver.(interface {
		ReleaseApp(ctx context.Context, appID string) error
	}); ok {
		return r.ReleaseApp(ctx, appID)
	}
	return nil
}
