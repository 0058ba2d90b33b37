package deploy

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/backoff"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// The supervisor keeps each app's pool at MinVMs to MaxVMs healthy
// executors of its serving version (SPEC §6–§7):
//
//   - An executor that exits, or stops answering its health check, leaves
//     the route at once, is stopped, and its PENDING workflows are
//     re-enqueued in the app's system database for the executors of its
//     version (dbinstance.RecoverWorkflows); a replacement starts after a
//     back-off that doubles while the app crash-loops. Each event is a line
//     in the app's logs and an Event; the app reads UNAVAILABLE while no
//     executor serves it.
//   - Work of a version no executor runs any more (its executors died
//     while they drained, or before Hangar restarted) goes to a drainer: an
//     executor of that version, without route, retired once the version's
//     workflows are done.
//   - Every ScaleInterval, a sweep recovers the PENDING workflows of
//     executors that are gone, and scaling (scaling.go) adds or retires an
//     executor.

// Config defaults of the supervisor.
const (
	defaultHealthInterval    = 5 * time.Second
	defaultHealthFailures    = 3
	defaultRestartBackoff    = time.Second
	defaultMaxRestartBackoff = 5 * time.Minute
	defaultBackoffReset      = 10 * time.Minute
	defaultScaleInterval     = 10 * time.Second
	defaultScaleQueueDepth   = 10
	eventsKept               = 50 // per app
)

// setSupervisorDefaults fills the zero supervisor fields of c.
func (c *Config) setSupervisorDefaults() {
	if c.HealthInterval == 0 {
		c.HealthInterval = defaultHealthInterval
	}
	if c.HealthFailures == 0 {
		c.HealthFailures = defaultHealthFailures
	}
	if c.RestartBackoff == 0 {
		c.RestartBackoff = defaultRestartBackoff
	}
	if c.MaxRestartBackoff == 0 {
		c.MaxRestartBackoff = defaultMaxRestartBackoff
	}
	if c.BackoffReset == 0 {
		c.BackoffReset = defaultBackoffReset
	}
	if c.ScaleInterval == 0 {
		c.ScaleInterval = defaultScaleInterval
	}
	if c.ScaleQueueDepth == 0 {
		c.ScaleQueueDepth = defaultScaleQueueDepth
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.drainPoll == 0 {
		c.drainPoll = 250 * time.Millisecond
	}
}

// fleet is every executor the Service runs; Service.mu guards it.
type fleet struct {
	pools   map[string]*pool     // app ID → the pool serving it
	live    map[string]*executor // executor ID → executor, from creation until stopped
	drains  map[string]*drain    // app ID + "/" + app version → its drainer's state
	events  map[string][]Event   // app ID → recent events, oldest first
	deleted map[string]bool      // apps being deleted: nothing starts for them
}

// initSupervisor prepares the supervisor's state; New calls it.
func (s *Service) initSupervisor(ctx context.Context) {
	s.fleet = fleet{
		pools: map[string]*pool{}, live: map[string]*executor{}, drains: map[string]*drain{},
		events: map[string][]Event{}, deleted: map[string]bool{},
	}
	s.life, s.stopLife = context.WithCancel(context.WithoutCancel(ctx))
}

// startSupervisor starts the loop that sweeps and scales every
// ScaleInterval; Launch calls it.
func (s *Service) startSupervisor() {
	s.spawn(func() {
		tick := time.NewTicker(s.cfg.ScaleInterval)
		defer tick.Stop()
		for {
			select {
			case <-s.life.Done():
				return
			case <-tick.C:
			}
			s.mu.Lock()
			pools := make([]*pool, 0, len(s.fleet.pools))
			for _, p := range s.fleet.pools {
				pools = append(pools, p)
			}
			s.mu.Unlock()
			for _, p := range pools {
				s.sweep(p)
				s.autoscale(p)
			}
			s.retryDrains()
		}
	})
}

func (s *Service) now() time.Time { return s.cfg.Now() }

// pool is the executors serving one app: all of one version, MinVMs to
// MaxVMs of them.
type pool struct {
	app        hangar.App // as it was when the version started serving
	inst       hangar.DBInstance
	version    string
	appVersion string
	min, max   int

	// Guarded by Service.mu.
	closed    bool        // replaced by another pool, or the app stopped
	executors []*executor // ready and routed
	starting  int         // executors being started or waiting to be
	restarts  backoff.State
	samples   []sample // scaling samples, oldest first
}

func newPool(a hangar.App, inst hangar.DBInstance, version, appVersion string) *pool {
	p := &pool{app: a, inst: inst, version: version, appVersion: appVersion, min: max(1, a.MinVMs)}
	p.max = max(p.min, a.MaxVMs)
	return p
}

// remove takes ex out of the pool and reports whether it was in.
func (p *pool) remove(ex *executor) bool {
	i := slices.Index(p.executors, ex)
	if i < 0 {
		return false
	}
	p.executors = slices.Delete(p.executors, i, i+1)
	ex.leave()
	return true
}

// close marks the pool replaced and returns its executors, which left it.
func (p *pool) close() []*executor {
	p.closed = true
	exs := p.executors
	p.executors = nil
	for _, ex := range exs {
		ex.leave()
	}
	return exs
}

// nextRestart records a failure in b and returns the delay before the
// next start.
func (s *Service) nextRestart(b *backoff.State, now, readyAt time.Time) time.Duration {
	return b.Next(backoff.Policy{Base: s.cfg.RestartBackoff, Max: s.cfg.MaxRestartBackoff, Reset: s.cfg.BackoffReset}, now, readyAt)
}

// EventKind says what happened to an executor.
type EventKind string

// Kinds of executor events.
const (
	EventExited      EventKind = "EXITED"       // the process exited by itself
	EventOOM         EventKind = "OOM"          // the kernel killed it for exceeding its memory limit
	EventUnhealthy   EventKind = "UNHEALTHY"    // it stopped answering HTTP and was stopped
	EventStartFailed EventKind = "START_FAILED" // a replacement or drainer did not become healthy
	EventStarted     EventKind = "STARTED"      // a replacement, scale-up or drainer serves
	EventScaledUp    EventKind = "SCALED_UP"    // an executor is added for load
	EventScaledDown  EventKind = "SCALED_DOWN"  // an executor was retired for lack of load
	EventRecovered   EventKind = "RECOVERED"    // PENDING workflows of dead executors were re-enqueued
)

// Event is something that happened to an app's executors that its users
// should see. The Service keeps the last ones of each app in memory.
type Event struct {
	Time     time.Time
	Kind     EventKind
	Executor string
	Version  string
	// MemoryLimitMiB is the executor's limit, for EventOOM.
	MemoryLimitMiB int
	// Message is the line written to the app's logs.
	Message string
}

// Events returns the app's recent executor events, oldest first.
func (s *Service) Events(appID string) []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.fleet.events[appID])
}

// event records ev for the app and writes its message to the app's logs
// and to Hangar's.
func (s *Service) event(appID string, ev Event) {
	ev.Time = s.now()
	s.mu.Lock()
	evs := append(s.fleet.events[appID], ev)
	if len(evs) > eventsKept {
		evs = slices.Delete(evs, 0, len(evs)-eventsKept)
	}
	s.fleet.events[appID] = evs
	s.mu.Unlock()
	s.observer().ExecutorEvent(appID, ev.Kind)
	level := "info"
	switch ev.Kind {
	case EventExited, EventOOM, EventUnhealthy, EventStartFailed:
		level = "warn"
	}
	args := []any{"app", appID, "version", ev.Version, "executor", ev.Executor, "event", string(ev.Kind)}
	if level == "warn" {
		s.log.Warn(ev.Message, args...)
	} else {
		s.log.Info(ev.Message, args...)
	}
	w := s.logs.Writer(appID, sourceExecutor, ev.Version, ev.Executor)
	logf(w, "hangar: %s", ev.Message)
	w.Close()
}

// death is how a supervised executor ended.
type death struct {
	status    runtime.Status // how its process ended, when it exited
	unhealthy int            // health checks failed in a row, when it hung
}

// describe says what happened to ex, for its event.
func (d death) describe(ex *executor) (EventKind, string) {
	switch {
	case d.unhealthy > 0:
		return EventUnhealthy, fmt.Sprintf("executor %s stopped answering HTTP (%d health checks failed in a row) and was stopped", ex.id, d.unhealthy)
	case d.status.OOMKilled:
		return EventOOM, fmt.Sprintf("executor %s was killed: out of memory (limit %d MiB)", ex.id, ex.memoryMiB)
	}
	msg := fmt.Sprintf("executor %s exited with code %d", ex.id, d.status.ExitCode)
	if n := d.status.ExitCode - 128; n > 0 && n < 65 {
		msg += fmt.Sprintf(" (signal %s)", syscall.Signal(n))
	}
	return EventExited, msg
}

// supervise watches an executor of pool p until it leaves the pool, is
// stopped, or dies: then it replaces it.
func (s *Service) supervise(p *pool, ex *executor) {
	if d, ok := s.watchHealth(ex); ok {
		s.died(ex, d, p)
	}
}

// watchHealth probes the executor's HTTP port every HealthInterval and
// returns how it died: it exited, or HealthFailures probes in a row failed.
// It returns false once the executor is stopped or left its pool, or
// Hangar shuts down.
func (s *Service) watchHealth(ex *executor) (death, bool) {
	tick := time.NewTicker(s.cfg.HealthInterval)
	defer tick.Stop()
	client := &http.Client{Timeout: s.cfg.HealthInterval}
	failures := 0
	for {
		select {
		case <-s.life.Done():
			return death{}, false
		case <-ex.stopped:
			return death{}, false
		case <-ex.left:
			return death{}, false
		case <-ex.exited:
			if closed(ex.stopped) {
				return death{}, false
			}
			return death{status: ex.status}, true
		case <-tick.C:
		}
		if probe(s.life, client, ex.addr) {
			failures = 0
			continue
		}
		failures++
		if failures >= s.cfg.HealthFailures && !closed(ex.left) && !closed(ex.stopped) {
			return death{unhealthy: failures}, true
		}
	}
}

// died handles the death of ex, once: it takes it out of pool p's route
// (p nil or closed: it was retiring or draining), stops it (a hung one is
// killed before its work moves), records the event, releases its PENDING
// workflows and, while p serves, starts a replacement after the back-off.
func (s *Service) died(ex *executor, d death, p *pool) {
	ex.diedOnce.Do(func() {
		now := s.now()
		s.mu.Lock()
		current := p != nil && !p.closed && p.remove(ex)
		var delay time.Duration
		var loop string
		left := 0
		if current {
			s.routeLocked(p)
			left = len(p.executors)
			delay = s.nextRestart(&p.restarts, now, ex.readyAt)
			loop = p.restarts.CrashLoop(now)
			p.starting++
		}
		s.mu.Unlock()
		if s.life.Err() != nil {
			return
		}
		if d.unhealthy > 0 {
			s.stopExecutor(s.life, ex)
		}
		kind, msg := d.describe(ex)
		switch {
		case current && left == 0:
			msg += fmt.Sprintf("; no executor serves the app: starting a replacement in %s%s", delay, loop)
		case current:
			msg += fmt.Sprintf("; %d executors still serve; starting a replacement in %s%s", left, delay, loop)
		}
		ev := Event{Kind: kind, Executor: ex.id, Version: ex.version, Message: msg}
		if kind == EventOOM {
			ev.MemoryLimitMiB = ex.memoryMiB
		}
		s.event(ex.app, ev)
		if current && left == 0 {
			s.setStatusIf(ex.app, hangar.StatusAvailable, hangar.StatusUnavailable)
		}
		if ex.drain != nil {
			s.mu.Lock()
			ex.drain.notBefore = now.Add(s.nextRestart(&ex.drain.restarts, now, ex.readyAt))
			ex.drain.retry = true
			s.mu.Unlock()
		}
		s.stopExecutor(s.life, ex)
		s.release(ex)
		if current {
			s.spawn(func() { s.grow(p, delay) })
		}
	})
}

// grow starts an executor for pool p after delay, for a replacement or a
// scale-up the caller counted in p.starting. When it does not become
// healthy while the pool is below MinVMs, it tries again after the pool's
// back-off; a failed scale-up waits for the next scaling decision.
func (s *Service) grow(p *pool, delay time.Duration) {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.life.Done():
	}
	s.mu.Lock()
	if p.closed || s.life.Err() != nil {
		p.starting--
		s.mu.Unlock()
		return
	}
	// A copy taken under the lock: OrgRenamed rewrites p.app.Org.
	app := p.app
	s.mu.Unlock()
	ex, err := s.startExecutor(s.life, app, p.inst, p.version, p.appVersion)
	now := s.now()
	s.mu.Lock()
	p.starting--
	if err != nil {
		if p.closed || s.life.Err() != nil {
			s.mu.Unlock()
			return
		}
		if len(p.executors)+p.starting >= p.min {
			// A scale-up: the next decision tries again if the load stays.
			s.mu.Unlock()
			if ex != nil {
				s.recover(ex)
			}
			s.event(p.app.ID, Event{Kind: EventStartFailed, Version: p.version,
				Message: fmt.Sprintf("a new executor of version %s did not start: %s", p.version, userMessage(err))})
			return
		}
		delay := s.nextRestart(&p.restarts, now, time.Time{})
		loop := p.restarts.CrashLoop(now)
		p.starting++
		s.mu.Unlock()
		id := ""
		if ex != nil {
			id = ex.id
			// It may have taken recovered workflows before it died.
			s.recover(ex)
		}
		s.event(p.app.ID, Event{Kind: EventStartFailed, Executor: id, Version: p.version,
			Message: fmt.Sprintf("a new executor of version %s did not start: %s; trying again in %s%s", p.version, userMessage(err), delay, loop)})
		s.spawn(func() { s.grow(p, delay) })
		return
	}
	if p.closed {
		cur := s.fleet.pools[p.app.ID]
		s.mu.Unlock()
		if cur == nil {
			s.stopExecutor(s.life, ex)
			return
		}
		s.spawn(func() { s.retire(ex, cur.appVersion, s.cfg.DrainTimeout) })
		return
	}
	p.executors = append(p.executors, ex)
	s.routeLocked(p)
	n := len(p.executors)
	s.mu.Unlock()
	s.spawn(func() { s.supervise(p, ex) })
	s.event(p.app.ID, Event{Kind: EventStarted, Executor: ex.id, Version: p.version,
		Message: fmt.Sprintf("executor %s of version %s serves (%d executors serve the app)", ex.id, p.version, n)})
	if n == 1 {
		s.setStatusIf(p.app.ID, hangar.StatusUnavailable, hangar.StatusAvailable)
	}
}

// setStatusIf moves the app from status from to status to and leaves any
// other status (a deploy or a delete under way) alone.
func (s *Service) setStatusIf(appID string, from, to hangar.AppStatus) {
	ctx := s.life
	a, err := s.store.AppByID(ctx, appID)
	if err == nil && a.Status == from {
		err = s.store.SetAppStatus(ctx, appID, to)
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("set app status", "app", appID, "status", to, "err", err)
	}
}

// resume serves version for a after Hangar restarted. When the executors
// do not start, it returns the error but keeps trying, with back-off, as
// for a crash loop.
func (s *Service) resume(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error {
	err := s.serve(ctx, a, inst, version, appVersion)
	if err == nil || s.life.Err() != nil {
		return err
	}
	p := newPool(a, inst, version, appVersion)
	now := s.now()
	s.mu.Lock()
	if s.fleet.pools[a.ID] != nil {
		s.mu.Unlock()
		return err
	}
	s.fleet.pools[a.ID] = p
	delay := s.nextRestart(&p.restarts, now, time.Time{})
	p.starting = p.min
	s.mu.Unlock()
	s.event(a.ID, Event{Kind: EventStartFailed, Version: version,
		Message: fmt.Sprintf("version %s did not start after Hangar restarted: %s; trying again in %s", version, userMessage(err), delay)})
	for range p.min {
		s.spawn(func() { s.grow(p, delay) })
	}
	return err
}

// recover re-enqueues the PENDING workflows of ex, which is dead, for the
// executors of its version.
func (s *Service) recover(ex *executor) int {
	n, err := s.instances.RecoverWorkflows(s.life, ex.inst, ex.sysDB, []string{ex.id}, ex.appVersion)
	if err != nil {
		if s.life.Err() == nil {
			// The sweep tries again.
			s.log.Error("recover workflows of a dead executor", "app", ex.app, "executor", ex.id, "err", err)
		}
		return 0
	}
	if n > 0 {
		s.event(ex.app, Event{Kind: EventRecovered, Executor: ex.id, Version: ex.version,
			Message: fmt.Sprintf("re-enqueued %d PENDING workflows of executor %s for the executors of app version %s", n, ex.id, ex.appVersion)})
	}
	return n
}

// release hands the unfinished work of ex, now stopped, to the executors
// of its version, and starts a drainer when none runs.
func (s *Service) release(ex *executor) {
	if s.life.Err() != nil {
		return
	}
	s.recover(ex)
	s.ensureVersionRuns(ex.app, ex.inst, ex.appVersion)
}

// drain is the state of the drainer of one app version.
type drain struct {
	appID, appVersion string
	inst              hangar.DBInstance
	starting          bool
	retry             bool      // a drainer is wanted once notBefore has passed
	notBefore         time.Time // back-off after a drainer failed
	restarts          backoff.State
}

// versionRunsLocked reports whether an executor of appVersion runs for the
// app, or its pool will start one; s.mu is held.
func (s *Service) versionRunsLocked(appID, appVersion string) bool {
	if p := s.fleet.pools[appID]; p != nil && !p.closed && p.appVersion == appVersion {
		return true
	}
	for _, ex := range s.fleet.live {
		if ex.app == appID && ex.appVersion == appVersion && !closed(ex.stopped) && !closed(ex.exited) {
			return true
		}
	}
	return false
}

// ensureVersionRuns starts a drainer for appVersion of the app, its
// workflows on inst, unless an executor of that version runs or one is
// starting. When the last drainer failed less than its back-off ago, the
// supervisor loop starts one once the back-off has passed.
func (s *Service) ensureVersionRuns(appID string, inst hangar.DBInstance, appVersion string) {
	key := appID + "/" + appVersion
	s.mu.Lock()
	d := s.fleet.drains[key]
	if d == nil {
		d = &drain{appID: appID, appVersion: appVersion}
		s.fleet.drains[key] = d
	}
	d.inst = inst
	if s.fleet.deleted[appID] || d.starting || s.versionRunsLocked(appID, appVersion) {
		s.mu.Unlock()
		return
	}
	if s.now().Before(d.notBefore) {
		d.retry = true
		s.mu.Unlock()
		return
	}
	d.starting, d.retry = true, false
	s.mu.Unlock()
	if !s.spawn(func() { s.startDrainer(d, inst) }) {
		s.mu.Lock()
		d.starting = false
		s.mu.Unlock()
	}
}

// retryDrains starts the drainers that waited for their back-off.
func (s *Service) retryDrains() {
	now := s.now()
	s.mu.Lock()
	var due []drain
	for _, d := range s.fleet.drains {
		if d.retry && !now.Before(d.notBefore) {
			due = append(due, drain{appID: d.appID, appVersion: d.appVersion, inst: d.inst})
		}
	}
	s.mu.Unlock()
	for _, d := range due {
		s.ensureVersionRuns(d.appID, d.inst, d.appVersion)
	}
}

// startDrainer starts an executor of d's version without route, when its
// workflows are unfinished, and retires it once they are done.
func (s *Service) startDrainer(d *drain, inst hangar.DBInstance) {
	ctx := s.life
	ex, err := s.drainer(ctx, d, inst)
	now := s.now()
	s.mu.Lock()
	d.starting = false
	if err != nil && hangar.KindOf(err) != hangar.KindNotFound {
		d.notBefore = now.Add(s.nextRestart(&d.restarts, now, time.Time{}))
		d.retry = true
	}
	s.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			s.log.Error("start an executor to drain a version", "app", d.appID, "app_version", d.appVersion, "err", err)
		}
		return
	}
	if ex != nil {
		s.retire(ex, "", 0)
	}
}

// drainer starts the drainer of d's version, or returns nil when the
// version has no unfinished workflows.
func (s *Service) drainer(ctx context.Context, d *drain, inst hangar.DBInstance) (*executor, error) {
	appVersion := d.appVersion
	a, err := s.store.AppByID(ctx, d.appID)
	if err != nil {
		return nil, err
	}
	if a.Status == hangar.StatusDeleting {
		return nil, nil
	}
	n, err := s.instances.ActiveWorkflows(ctx, inst, a.SysDBName(), appVersion)
	if err != nil || n == 0 {
		return nil, err
	}
	version, err := s.versionOf(ctx, a.ID, appVersion)
	if err != nil {
		return nil, err
	}
	ex, err := s.startExecutor(ctx, a, inst, version, appVersion)
	if err != nil {
		s.event(a.ID, Event{Kind: EventStartFailed, Version: version,
			Message: fmt.Sprintf("an executor of version %s to finish its %d unfinished workflows did not start: %s", version, n, userMessage(err))})
		if ex != nil {
			s.recover(ex)
		}
		return nil, err
	}
	s.mu.Lock() // Executors reads it
	ex.drain = d
	s.mu.Unlock()
	s.event(a.ID, Event{Kind: EventStarted, Executor: ex.id, Version: version,
		Message: fmt.Sprintf("executor %s of version %s started to finish the %d unfinished workflows of its version; it takes no requests", ex.id, version, n)})
	return ex, nil
}

// versionOf returns the newest version of the app that runs as appVersion
// and whose files are still there.
func (s *Service) versionOf(ctx context.Context, appID, appVersion string) (string, error) {
	vs, err := s.store.Versions(ctx, appID)
	if err != nil {
		return "", err
	}
	for _, v := range vs { // newest first
		if v.AppVersion != appVersion || v.Status == hangar.VersionFailed || v.Status == hangar.VersionDeploying {
			continue
		}
		if _, err := os.Stat(s.versionDir(appID, v.ID)); err == nil {
			return v.ID, nil
		}
	}
	return "", hangar.Errorf(hangar.KindNotFound, "no stored version of app version %s", appVersion)
}

// sweep recovers the PENDING workflows that executors of the pool's app
// left when they died unseen: before Hangar restarted, or when their
// recovery failed; and starts a drainer for each other version that has
// workflows waiting in the queues.
func (s *Service) sweep(p *pool) {
	ctx := s.life
	owners, err := s.instances.PendingExecutors(ctx, p.inst, p.app.SysDBName(), executorPrefix)
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list executors with pending workflows", "app", p.app.Name, "err", err)
		}
		return
	}
	// Read after the query: an executor in its result was live before it,
	// so one missing now has stopped.
	s.mu.Lock()
	gone := map[string][]string{}
	for version, ids := range owners {
		for _, id := range ids {
			if s.fleet.live[id] == nil {
				gone[version] = append(gone[version], id)
			}
		}
	}
	s.mu.Unlock()
	for appVersion, ids := range gone {
		n, err := s.instances.RecoverWorkflows(ctx, p.inst, p.app.SysDBName(), ids, appVersion)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Error("recover workflows of gone executors", "app", p.app.Name, "app_version", appVersion, "err", err)
			}
			continue
		}
		if n > 0 {
			s.event(p.app.ID, Event{Kind: EventRecovered, Version: p.version,
				Message: fmt.Sprintf("re-enqueued %d PENDING workflows of app version %s left by executors that are gone (%s)", n, appVersion, strings.Join(ids, ", "))})
		}
		s.ensureVersionRuns(p.app.ID, p.inst, appVersion)
	}
	// Workflows enqueued for another version wait for an executor of that
	// version: after a restore, a database change or a restart, no drain
	// is under way to run them.
	queued, err := s.instances.QueuedVersions(ctx, p.inst, p.app.SysDBName())
	if err != nil {
		if ctx.Err() == nil {
			s.log.Warn("list versions with enqueued workflows", "app", p.app.Name, "err", err)
		}
		return
	}
	for _, appVersion := range queued {
		if appVersion != p.appVersion {
			s.ensureVersionRuns(p.app.ID, p.inst, appVersion)
		}
	}
}
