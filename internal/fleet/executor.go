package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// executor is one executor of an app version: serving in its app's pool,
// retiring, or draining the workflows of a version nothing else runs.
type executor struct {
	id         string
	app        string // app ID
	version    string
	appVersion string // its DBOS__APPVERSION
	inst       hangar.DBInstance
	sysDB      string // the app's DBOS system database
	memoryMiB  int
	addr       string
	log        io.WriteCloser
	drain      *drain // set for an executor started to drain a version

	stopped  chan struct{} // closed when Hangar asked it to stop
	stopOnce sync.Once
	exited   chan struct{} // closed when its process ended; status says how
	status   runtime.Status
	left     chan struct{} // closed when it left its pool (replaced or scaled down)
	leftOnce sync.Once
	diedOnce sync.Once // handling of its death runs once

	startedAt time.Time // when Hangar started it
	readyAt   time.Time // when it first answered HTTP; set under Fleet.mu

	// The previous CPU reading, for scaling; only the supervisor loop uses
	// them.
	cpu   time.Duration
	cpuAt time.Time
	// cpuUse is the vCPUs it used between the last two scaling samples; NaN
	// until two were taken. Guarded by Fleet.mu.
	cpuUse float64
}

// leave marks the executor out of its pool, which stops its supervisor.
func (ex *executor) leave() { ex.leftOnce.Do(func() { close(ex.left) }) }

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// executorPrefix starts the ID of every executor Hangar runs, so that the
// system database tells Hangar's executors from others (a developer's
// machine running the app against its database).
const executorPrefix = "ex-"

// Serve starts the pool of version for a: a.MinVMs executors (at least
// one, the others once the first answers), with its database on inst.
// Once all of them answer HTTP it points
// the app's hostname at them, hands them to the supervisor, and retires the
// executors of the pool it replaces once they are drained. When one fails
// to start, it stops them all and the previous pool keeps serving.
func (f *Fleet) Serve(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error {
	p := newPool(f.cfg.Domain, a, inst, version, appVersion)
	exs := make([]*executor, p.min)
	errs := make([]error, p.min)
	start := func(i int) { exs[i], errs[i] = f.startExecutor(ctx, a, inst, version, appVersion) }
	// The first executor starts alone: the DBOS SDKs create or migrate the
	// system database's schema at launch, without a lock against other
	// executors doing the same at once. It may have started already,
	// during the migrations (StartEarly).
	if ex := f.takeEarly(ctx, a, version); ex != nil {
		exs[0], errs[0] = ex, f.ready(ctx, a, version, ex)
		if errs[0] != nil && closed(ex.exited) {
			f.log.WarnContext(ctx, "the executor started during the migrations exited: starting another", "app", a.Name, "version", version, "err", errs[0])
			start(0)
		}
	} else {
		start(0)
	}
	if errs[0] == nil {
		var wg sync.WaitGroup
		for i := 1; i < len(exs); i++ {
			wg.Go(func() { start(i) })
		}
		wg.Wait()
	}
	err := errors.Join(errs...)
	if err == nil && f.life.Err() != nil {
		err = errors.New("hangar is shutting down")
	}
	if err != nil {
		for _, ex := range exs {
			if ex != nil {
				f.stopExecutor(ctx, ex)
			}
		}
		for _, e := range errs {
			if e != nil {
				return e // the first, with its log tail
			}
		}
		return err
	}
	f.mu.Lock()
	old := f.pools[a.ID]
	f.pools[a.ID] = p
	p.executors = exs
	var retiring []*executor
	if old != nil {
		retiring = old.close()
		if old.host != p.host { // the org was renamed meanwhile
			f.router.Set(old.host, nil)
		}
	}
	p.route(f.router)
	f.mu.Unlock()
	for _, ex := range exs {
		f.spawn(func() { f.supervise(p, ex) })
	}
	for _, o := range retiring {
		f.spawn(func() { f.retire(o, appVersion, f.cfg.DrainTimeout) })
	}
	return nil
}

// route points the pool's hostname at its executors on r; Fleet.mu is
// held.
func (p *pool) route(r Router) {
	addrs := make([]string, len(p.executors))
	for i, ex := range p.executors {
		addrs[i] = ex.addr
	}
	r.Set(p.host, addrs)
}

// startExecutor starts an executor of version for a, with its database on
// inst, as Specs describes it, and waits until it answers HTTP. When it fails, it stops what it
// started and returns the stopped executor, if it got that far, with the
// error: KindUnavailable, with the end of the version's executor output as
// detail, when the app did not become healthy.
func (f *Fleet) startExecutor(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) (*executor, error) {
	ex, err := f.launch(ctx, a, inst, version, appVersion, nil)
	if err != nil {
		return ex, err
	}
	return ex, f.ready(ctx, a, version, ex)
}

// launch starts an executor of version for a, with its database on inst
// (its connections held until hold is closed, when not nil), and returns
// once its process runs. When it fails, it stops what it started.
func (f *Fleet) launch(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string, hold <-chan struct{}) (*executor, error) {
	ex := &executor{
		id: executorPrefix + strings.ToLower(ulid.Make().String()), app: a.ID, version: version, appVersion: appVersion,
		inst: inst, sysDB: a.SysDBName(), memoryMiB: a.MemoryMiB, startedAt: f.cfg.Now(), cpuUse: math.NaN(),
		stopped: make(chan struct{}), exited: make(chan struct{}), left: make(chan struct{}),
	}
	if ex.memoryMiB == 0 {
		ex.memoryMiB = hangar.DefaultMemoryMiB
	}
	ex.log = f.logs.Writer(a.ID, logSource, version, ex.id)
	// Known before it can own workflows: the sweep takes the workflows of
	// executors it does not know for the work of dead ones.
	f.mu.Lock()
	f.live[ex.id] = ex
	f.mu.Unlock()
	netw, err := f.driver.Prepare(ctx, ex.id)
	if err != nil {
		f.stopExecutor(ctx, ex)
		return ex, fmt.Errorf("prepare executor: %w", err)
	}
	spec, err := f.specs.Spec(ctx, a, inst, version, appVersion, ex.id, netw)
	if err != nil {
		f.stopExecutor(ctx, ex)
		return ex, err
	}
	spec.Stdout = ex.log
	for i := range spec.Forwards {
		spec.Forwards[i].Hold = hold
	}
	started, err := f.driver.Start(ctx, spec)
	if err != nil {
		f.stopExecutor(ctx, ex)
		return ex, fmt.Errorf("start executor: %w", err)
	}
	ex.addr = started.Addr
	if !f.spawn(func() { f.watch(ex) }) {
		f.stopExecutor(ctx, ex)
		return ex, errors.New("hangar is shutting down")
	}
	f.log.InfoContext(ctx, "executor started", "app", a.Name, "version", version, "executor", ex.id, "addr", ex.addr)
	return ex, nil
}

// ready waits until executor ex of version for a answers HTTP. When it
// does not, it stops it and returns KindUnavailable, with the end of the
// version's executor output as detail.
func (f *Fleet) ready(ctx context.Context, a hangar.App, version string, ex *executor) error {
	if err := waitHealthy(ctx, ex, f.cfg.HealthTimeout); err != nil {
		f.stopExecutor(ctx, ex)
		tail, terr := f.logs.Tail(ctx, a.ID, logSource, version, 40)
		if terr != nil {
			f.log.WarnContext(ctx, "read executor log", "app", a.ID, "version", version, "err", terr)
		}
		return &hangar.Error{
			Kind:    hangar.KindUnavailable,
			Message: fmt.Sprintf("version %s did not become healthy: %v", version, err),
			Detail:  tail,
		}
	}
	f.mu.Lock() // Executors reads it
	ex.readyAt = f.cfg.Now()
	f.mu.Unlock()
	return nil
}

// waitHealthy polls the executor's HTTP port until it answers any HTTP
// response, the process exits, it is stopped, or timeout passes.
func waitHealthy(ctx context.Context, ex *executor, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(healthPoll)
	defer tick.Stop()
	for {
		if probe(ctx, client, ex.addr) {
			return nil
		}
		select {
		case <-ex.exited:
			if ex.status.OOMKilled {
				return fmt.Errorf("the app ran out of memory (limit %d MiB) before it served HTTP", ex.memoryMiB)
			}
			return fmt.Errorf("the app exited with code %d before it served HTTP", ex.status.ExitCode)
		case <-ex.stopped:
			return errors.New("the executor was stopped before it served HTTP")
		case <-ctx.Done():
			return fmt.Errorf("no HTTP answer on port %s within %s", ex.addr[strings.LastIndex(ex.addr, ":")+1:], timeout)
		case <-tick.C:
		}
	}
}

// watch waits for the executor's process to end and records how.
func (f *Fleet) watch(ex *executor) {
	st, err := f.driver.Wait(f.life, ex.id)
	if f.life.Err() != nil {
		return // shutting down: Shutdown stops every executor
	}
	if err != nil {
		// Wait knows the executor no more: it was stopped.
		st = runtime.Status{ExitCode: -1, Err: err}
	}
	ex.status = st
	close(ex.exited)
}

// retire stops an executor that no longer receives requests once it is
// drained: it waits for its requests in flight to finish and, unless
// newAppVersion is its own app version, for the workflows of its version
// that are PENDING or ENQUEUED to complete, up to timeout (0: no limit).
// Then it stops it and releases its unfinished work (see release). An
// executor that dies meanwhile is released at once.
func (f *Fleet) retire(ex *executor, newAppVersion string, timeout time.Duration) {
	ctx := f.life
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(f.cfg.DrainPoll)
	defer tick.Stop()
	for {
		busy := f.router.InFlight(ex.addr) > 0
		if !busy && ex.appVersion != newAppVersion {
			n, err := f.wf.ActiveWorkflows(ctx, ex.inst, ex.sysDB, ex.appVersion)
			if err != nil && ctx.Err() == nil {
				f.log.WarnContext(ctx, "count workflows of a retiring executor", "app", ex.app, "executor", ex.id, "err", err)
			}
			busy = n > 0 || err != nil
		}
		if !busy {
			break
		}
		select {
		case <-ctx.Done():
			return // Shutdown stops it
		case <-ex.stopped:
			return
		case <-ex.exited:
			f.died(ex, death{status: ex.status}, nil)
			return
		case <-deadline:
			f.log.Warn("retiring executor not drained in time: stopping it", "app", ex.app, "executor", ex.id, "version", ex.version, "timeout", timeout)
			f.stopExecutor(ctx, ex)
			f.release(ex)
			return
		case <-tick.C:
		}
	}
	f.log.Info("retiring executor", "app", ex.app, "executor", ex.id, "version", ex.version)
	f.stopExecutor(ctx, ex)
	f.release(ex)
}

// healthPoll is how often waitHealthy probes a starting executor. A probe
// of a port nobody listens on yet is a refused connection on a local veth,
// which costs microseconds; a deploy waits half a period on average past
// the moment the app listens, so the period is short.
const healthPoll = 10 * time.Millisecond

// probe reports whether the app at addr answers HTTP, whatever the status.
func probe(ctx context.Context, client *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// Serving reports whether the app has executors that serve it.
func (f *Fleet) Serving(appID string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.pools[appID]
	return p != nil && len(p.executors) > 0
}

// stopExecutor stops ex (SIGTERM, then kill after StopGrace), releases what
// the driver allocated for it and closes its log. It is idempotent.
func (f *Fleet) stopExecutor(ctx context.Context, ex *executor) {
	ex.stopOnce.Do(func() {
		close(ex.stopped)
		if err := f.driver.Stop(context.WithoutCancel(ctx), ex.id, f.cfg.StopGrace); err != nil {
			f.log.ErrorContext(ctx, "stop executor", "app", ex.app, "executor", ex.id, "err", err)
		}
		ex.log.Close()
		// Forgotten only once its process is gone: from now on, its
		// PENDING workflows are a dead executor's.
		f.mu.Lock()
		delete(f.live, ex.id)
		f.mu.Unlock()
	})
}

// StopApp withdraws the app's route and stops all its executors (serving,
// starting, started during migrations, retiring, draining); none is
// started for it afterwards. The
// app is being deleted.
func (f *Fleet) StopApp(ctx context.Context, a hangar.App) {
	f.mu.Lock()
	f.deleted[a.ID] = true
	delete(f.events, a.ID)
	for key, d := range f.drains {
		if d.appID == a.ID {
			delete(f.drains, key)
		}
	}
	if p := f.pools[a.ID]; p != nil {
		p.close()
		delete(f.pools, a.ID)
		f.router.Set(p.host, nil)
	}
	f.router.Set(a.Hostname(f.cfg.Domain), nil)
	var exs []*executor
	for _, ex := range f.live {
		if ex.app == a.ID {
			exs = append(exs, ex)
		}
	}
	f.mu.Unlock()
	f.stopAll(ctx, exs)
	f.DropEarly(ctx, a.ID)
}

// Handover stops the executors that serve host here, because another
// replica serves it now (docs/replicas.md). Unlike StopApp, it leaves the
// route to that replica, and a later deploy here serves the app again.
func (f *Fleet) Handover(ctx context.Context, host string) {
	f.mu.Lock()
	var exs []*executor
	for id, p := range f.pools {
		if p.host != host {
			continue
		}
		p.close()
		delete(f.pools, id)
		for _, ex := range f.live {
			if ex.app == id {
				exs = append(exs, ex)
			}
		}
	}
	f.mu.Unlock()
	f.stopAll(ctx, exs)
}

// stopAll stops executors in parallel.
func (f *Fleet) stopAll(ctx context.Context, exs []*executor) {
	var wg sync.WaitGroup
	for _, ex := range exs {
		wg.Go(func() { f.stopExecutor(ctx, ex) })
	}
	wg.Wait()
}

// OrgRenamed serves the apps of a renamed org at their new hostnames
// (<new name>-<app>.<domain>) and stops serving the old ones; executors
// started from now on get the new DBOS_APP_HOSTNAME, as they read their
// app's names when they start. It looks each served app up by ID, so the
// names need not be given; accounts calls it after a rename.
func (f *Fleet) OrgRenamed(ctx context.Context, _, _ string) error {
	f.mu.Lock()
	pools := make([]*pool, 0, len(f.pools))
	for _, p := range f.pools {
		pools = append(pools, p)
	}
	f.mu.Unlock()
	var errs []error
	for _, p := range pools {
		a, err := f.store.AppByID(ctx, p.appID)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		host := a.Hostname(f.cfg.Domain)
		f.mu.Lock()
		if !p.closed && p.host != host {
			f.router.Set(p.host, nil)
			p.host = host
			p.route(f.router)
		}
		f.mu.Unlock()
	}
	return errors.Join(errs...)
}
