package fleet

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/hangar-oss/hangar/internal/backoff"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// The supervisor keeps each app's pool at MinVMs to MaxVMs healthy
// executors of its serving version (SPEC §6–§7):
//
//   - An executor that exits, or stops answering its health check, leaves
//     the route at once, is stopped, and its PENDING workflows are
//     re-enqueued in the app's system database for the executors of its
//     version (sysdb.DB.RecoverWorkflows); a replacement starts after a
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

// pool is the executors serving one app: all of one version, MinVMs to
// MaxVMs of them.
//
// A pool holds no names of its app but the app's own, which never changes:
// what it needs of the app's org it reads from the store by ID (appOf).
type pool struct {
	appID      string
	name       string // the app's name, for logs
	sysDB      string // the app's DBOS system database
	memoryMiB  int    // the app's setting when the version started serving
	inst       hangar.DBInstance
	version    string
	appVersion string
	min, max   int

	// Guarded by Fleet.mu.
	host      string      // the hostname its executors are routed at
	closed    bool        // replaced by another pool, or the app stopped
	executors []*executor // ready and routed
	starting  int         // executors being started or waiting to be
	restarts  backoff.State
	samples   []sample // scaling samples, oldest first
}

// newPool returns the pool of version for a, served under domain.
func newPool(domain string, a hangar.App, inst hangar.DBInstance, version, appVersion string) *pool {
	p := &pool{
		appID: a.ID, name: a.Name, sysDB: a.SysDBName(), memoryMiB: a.MemoryMiB, inst: inst,
		version: version, appVersion: appVersion, min: max(1, a.MinVMs), host: a.Hostname(domain),
	}
	p.max = max(p.min, a.MaxVMs)
	return p
}

// app returns the app of pool p as it is now, with the executor
// settings it had when p's version started serving: those change at the
// next deploy only.
func (p *pool) app(ctx context.Context, st Store) (hangar.App, error) {
	a, err := st.AppByID(ctx, p.appID)
	a.MemoryMiB, a.MinVMs, a.MaxVMs = p.memoryMiB, p.min, p.max
	return a, err
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
func (c Config) nextRestart(b *backoff.State, now, readyAt time.Time) time.Duration {
	return b.Next(backoff.Policy{Base: c.RestartBackoff, Max: c.MaxRestartBackoff, Reset: c.BackoffReset}, now, readyAt)
}

// Resume serves version for a after Hangar restarted. When the executors
// do not start, it returns the error but keeps trying, with back-off, as
// for a crash loop.
func (f *Fleet) Resume(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error {
	err := f.Serve(ctx, a, inst, version, appVersion)
	if err == nil || f.life.Err() != nil {
		return err
	}
	p := newPool(f.cfg.Domain, a, inst, version, appVersion)
	now := f.cfg.Now()
	f.mu.Lock()
	if f.pools[a.ID] != nil {
		f.mu.Unlock()
		return err
	}
	f.pools[a.ID] = p
	delay := f.cfg.nextRestart(&p.restarts, now, time.Time{})
	p.starting = p.min
	f.mu.Unlock()
	f.event(a.ID, Event{Kind: EventStartFailed, Version: version,
		Message: fmt.Sprintf("version %s did not start after Hangar restarted: %s; trying again in %s", version, userMessage(err), delay)})
	for range p.min {
		f.spawn(func() { f.grow(p, delay) })
	}
	return err
}
