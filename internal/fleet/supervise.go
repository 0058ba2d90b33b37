package fleet

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// supervise watches an executor of pool p until it leaves the pool, is
// stopped, or dies: then it replaces it.
func (f *Fleet) supervise(p *pool, ex *executor) {
	if d, ok := f.watchHealth(ex); ok {
		f.died(ex, d, p)
	}
}

// watchHealth probes the executor's HTTP port every HealthInterval and
// returns how it died: it exited, or HealthFailures probes in a row failed.
// It returns false once the executor is stopped or left its pool, or
// Hangar shuts down.
func (f *Fleet) watchHealth(ex *executor) (death, bool) {
	tick := time.NewTicker(f.cfg.HealthInterval)
	defer tick.Stop()
	client := &http.Client{Timeout: f.cfg.HealthInterval}
	failures := 0
	for {
		select {
		case <-f.life.Done():
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
		if probe(f.life, client, ex.addr) {
			failures = 0
			continue
		}
		failures++
		if failures >= f.cfg.HealthFailures && !closed(ex.left) && !closed(ex.stopped) {
			return death{unhealthy: failures}, true
		}
	}
}

// died handles the death of ex, once: it takes it out of pool p's route
// (p nil or closed: it was retiring or draining), stops it (a hung one is
// killed before its work moves), records the event, releases its PENDING
// workflows and, while p serves, starts a replacement after the back-off.
func (f *Fleet) died(ex *executor, d death, p *pool) {
	ex.diedOnce.Do(func() {
		now := f.cfg.Now()
		f.mu.Lock()
		current := p != nil && !p.closed && p.remove(ex)
		var delay time.Duration
		var loop string
		left := 0
		if current {
			p.route(f.router)
			left = len(p.executors)
			delay = f.cfg.nextRestart(&p.restarts, now, ex.readyAt)
			loop = p.restarts.CrashLoop(now)
			p.starting++
		}
		f.mu.Unlock()
		if f.life.Err() != nil {
			return
		}
		if d.unhealthy > 0 {
			f.stopExecutor(f.life, ex)
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
		f.event(ex.app, ev)
		if current && left == 0 {
			f.setStatusIf(ex.app, hangar.StatusAvailable, hangar.StatusUnavailable)
		}
		if ex.drain != nil {
			f.mu.Lock()
			ex.drain.notBefore = now.Add(f.cfg.nextRestart(&ex.drain.restarts, now, ex.readyAt))
			ex.drain.retry = true
			f.mu.Unlock()
		}
		f.stopExecutor(f.life, ex)
		f.release(ex)
		if current {
			f.spawn(func() { f.grow(p, delay) })
		}
	})
}

// grow starts an executor for pool p after delay, for a replacement or a
// scale-up the caller counted in p.starting. When it does not become
// healthy while the pool is below MinVMs, it tries again after the pool's
// back-off; a failed scale-up waits for the next scaling decision.
func (f *Fleet) grow(p *pool, delay time.Duration) {
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.life.Done():
	}
	f.mu.Lock()
	if p.closed || f.life.Err() != nil {
		p.starting--
		f.mu.Unlock()
		return
	}
	f.mu.Unlock()
	a, err := p.app(f.life, f.store)
	var ex *executor
	if err == nil {
		ex, err = f.startExecutor(f.life, a, p.inst, p.version, p.appVersion)
	}
	now := f.cfg.Now()
	f.mu.Lock()
	p.starting--
	if err != nil {
		if p.closed || f.life.Err() != nil {
			f.mu.Unlock()
			return
		}
		if len(p.executors)+p.starting >= p.min {
			// A scale-up: the next decision tries again if the load stays.
			f.mu.Unlock()
			if ex != nil {
				f.recover(ex)
			}
			f.event(p.appID, Event{Kind: EventStartFailed, Version: p.version,
				Message: fmt.Sprintf("a new executor of version %s did not start: %s", p.version, userMessage(err))})
			return
		}
		delay := f.cfg.nextRestart(&p.restarts, now, time.Time{})
		loop := p.restarts.CrashLoop(now)
		p.starting++
		f.mu.Unlock()
		id := ""
		if ex != nil {
			id = ex.id
			// It may have taken recovered workflows before it died.
			f.recover(ex)
		}
		f.event(p.appID, Event{Kind: EventStartFailed, Executor: id, Version: p.version,
			Message: fmt.Sprintf("a new executor of version %s did not start: %s; trying again in %s%s", p.version, userMessage(err), delay, loop)})
		f.spawn(func() { f.grow(p, delay) })
		return
	}
	if p.closed {
		cur := f.pools[p.appID]
		f.mu.Unlock()
		if cur == nil {
			f.stopExecutor(f.life, ex)
			return
		}
		f.spawn(func() { f.retire(ex, cur.appVersion, f.cfg.DrainTimeout) })
		return
	}
	p.executors = append(p.executors, ex)
	p.route(f.router)
	n := len(p.executors)
	f.mu.Unlock()
	f.spawn(func() { f.supervise(p, ex) })
	f.event(p.appID, Event{Kind: EventStarted, Executor: ex.id, Version: p.version,
		Message: fmt.Sprintf("executor %s of version %s serves (%d executors serve the app)", ex.id, p.version, n)})
	if n == 1 {
		f.setStatusIf(p.appID, hangar.StatusUnavailable, hangar.StatusAvailable)
	}
}

// setStatusIf moves the app from status from to status to and leaves any
// other status (a deploy or a delete under way) alone.
func (f *Fleet) setStatusIf(appID string, from, to hangar.AppStatus) {
	ctx := f.life
	a, err := f.store.AppByID(ctx, appID)
	if err == nil && a.Status == from {
		err = f.store.SetAppStatus(ctx, appID, to)
	}
	if err != nil && ctx.Err() == nil {
		f.log.Error("set app status", "app", appID, "status", to, "err", err)
	}
}

// recover re-enqueues the PENDING workflows of ex, which is dead, for the
// executors of its version.
func (f *Fleet) recover(ex *executor) int {
	n, err := f.wf.RecoverWorkflows(f.life, ex.inst, ex.sysDB, []string{ex.id}, ex.appVersion)
	if err != nil {
		if f.life.Err() == nil {
			// The sweep tries again.
			f.log.Error("recover workflows of a dead executor", "app", ex.app, "executor", ex.id, "err", err)
		}
		return 0
	}
	if n > 0 {
		f.event(ex.app, Event{Kind: EventRecovered, Executor: ex.id, Version: ex.version,
			Message: fmt.Sprintf("re-enqueued %d PENDING workflows of executor %s for the executors of app version %s", n, ex.id, ex.appVersion)})
	}
	return n
}

// release hands the unfinished work of ex, now stopped, to the executors
// of its version, and starts a drainer when none runs.
func (f *Fleet) release(ex *executor) {
	if f.life.Err() != nil {
		return
	}
	f.recover(ex)
	f.EnsureVersionRuns(ex.app, ex.inst, ex.appVersion)
}
