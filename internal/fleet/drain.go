package fleet

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/backoff"
	"github.com/hangar-oss/hangar/internal/hangar"
)

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
// app, or its pool will start one; f.mu is held. A function, not a method:
// the Fleet keeps under 40 methods.
func versionRunsLocked(f *Fleet, appID, appVersion string) bool {
	if p := f.pools[appID]; p != nil && !p.closed && p.appVersion == appVersion {
		return true
	}
	for _, ex := range f.live {
		if ex.app == appID && ex.appVersion == appVersion && !closed(ex.stopped) && !closed(ex.exited) {
			return true
		}
	}
	return false
}

// VersionRuns reports whether the app's pool serves version (its ID) or
// an executor of it has not stopped, draining included.
func (f *Fleet) VersionRuns(appID, version string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p := f.pools[appID]; p != nil && !p.closed && p.version == version {
		return true
	}
	for _, ex := range f.live {
		if ex.app == appID && ex.version == version && !closed(ex.stopped) && !closed(ex.exited) {
			return true
		}
	}
	return false
}

// EnsureVersionRuns starts a drainer for appVersion of the app, its
// workflows on inst, unless an executor of that version runs or one is
// starting. When the last drainer failed less than its back-off ago, the
// supervisor loop starts one once the back-off has passed.
func (f *Fleet) EnsureVersionRuns(appID string, inst hangar.DBInstance, appVersion string) {
	key := appID + "/" + appVersion
	f.mu.Lock()
	d := f.drains[key]
	if d == nil {
		d = &drain{appID: appID, appVersion: appVersion}
		f.drains[key] = d
	}
	d.inst = inst
	if f.deleted[appID] || d.starting || versionRunsLocked(f, appID, appVersion) {
		f.mu.Unlock()
		return
	}
	if f.cfg.Now().Before(d.notBefore) {
		d.retry = true
		f.mu.Unlock()
		return
	}
	d.starting, d.retry = true, false
	f.mu.Unlock()
	if !f.spawn(func() { f.startDrainer(d, inst) }) {
		f.mu.Lock()
		d.starting = false
		f.mu.Unlock()
	}
}

// retryDrains starts the drainers that waited for their back-off.
func (f *Fleet) retryDrains() {
	now := f.cfg.Now()
	f.mu.Lock()
	var due []drain
	for _, d := range f.drains {
		if d.retry && !now.Before(d.notBefore) {
			due = append(due, drain{appID: d.appID, appVersion: d.appVersion, inst: d.inst})
		}
	}
	f.mu.Unlock()
	for _, d := range due {
		f.EnsureVersionRuns(d.appID, d.inst, d.appVersion)
	}
}

// startDrainer starts an executor of d's version without route, when its
// workflows are unfinished, and retires it once they are done.
func (f *Fleet) startDrainer(d *drain, inst hangar.DBInstance) {
	ctx := f.life
	ex, err := f.drainer(ctx, d, inst)
	now := f.cfg.Now()
	f.mu.Lock()
	d.starting = false
	if err != nil && hangar.KindOf(err) != hangar.KindNotFound {
		d.notBefore = now.Add(f.cfg.nextRestart(&d.restarts, now, time.Time{}))
		d.retry = true
	}
	f.mu.Unlock()
	if err != nil {
		if ctx.Err() == nil {
			f.log.Error("start an executor to drain a version", "app", d.appID, "app_version", d.appVersion, "err", err)
		}
		return
	}
	if ex != nil {
		f.retire(ex, "", 0)
	}
}

// drainer starts the drainer of d's version, or returns nil when the
// version has no unfinished workflows.
func (f *Fleet) drainer(ctx context.Context, d *drain, inst hangar.DBInstance) (*executor, error) {
	appVersion := d.appVersion
	a, err := f.store.AppByID(ctx, d.appID)
	if err != nil {
		return nil, err
	}
	if a.Status == hangar.StatusDeleting {
		return nil, nil
	}
	n, err := f.wf.ActiveWorkflows(ctx, inst, a.SysDBName(), appVersion)
	if err != nil || n == 0 {
		return nil, err
	}
	version, err := versionOf(ctx, f.store, f.specs, a.ID, appVersion)
	if err != nil {
		return nil, err
	}
	ex, err := f.startExecutor(ctx, a, inst, version, appVersion)
	if err != nil {
		f.event(a.ID, Event{Kind: EventStartFailed, Version: version,
			Message: fmt.Sprintf("an executor of version %s to finish its %d unfinished workflows did not start: %s", version, n, userMessage(err))})
		if ex != nil {
			f.recover(ex)
		}
		return nil, err
	}
	f.mu.Lock() // Executors reads it
	ex.drain = d
	f.mu.Unlock()
	f.event(a.ID, Event{Kind: EventStarted, Executor: ex.id, Version: version,
		Message: fmt.Sprintf("executor %s of version %s started to finish the %d unfinished workflows of its version; it takes no requests", ex.id, version, n)})
	return ex, nil
}

// versionOf returns the newest version of the app that runs as appVersion
// and whose files are still there.
func versionOf(ctx context.Context, st Store, specs Specs, appID, appVersion string) (string, error) {
	vs, err := st.Versions(ctx, appID)
	if err != nil {
		return "", err
	}
	for _, v := range vs { // newest first
		if v.AppVersion != appVersion || v.Status == hangar.VersionFailed || v.Status == hangar.VersionDeploying {
			continue
		}
		if specs.Stored(appID, v.ID) {
			return v.ID, nil
		}
	}
	return "", hangar.Errorf(hangar.KindNotFound, "no stored version of app version %s", appVersion)
}

// sweep recovers the PENDING workflows that executors of the pool's app
// left when they died unseen: before Hangar restarted, or when their
// recovery failed; and starts a drainer for each other version that has
// workflows waiting in the queues.
func (f *Fleet) sweep(p *pool) {
	ctx := f.life
	owners, err := f.wf.PendingExecutors(ctx, p.inst, p.sysDB, executorPrefix)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("list executors with pending workflows", "app", p.name, "err", err)
		}
		return
	}
	// Read after the query: an executor in its result was live before it,
	// so one missing now has stopped.
	f.mu.Lock()
	gone := map[string][]string{}
	for version, ids := range owners {
		for _, id := range ids {
			if f.live[id] == nil {
				gone[version] = append(gone[version], id)
			}
		}
	}
	f.mu.Unlock()
	for appVersion, ids := range gone {
		n, err := f.wf.RecoverWorkflows(ctx, p.inst, p.sysDB, ids, appVersion)
		if err != nil {
			if ctx.Err() == nil {
				f.log.Error("recover workflows of gone executors", "app", p.name, "app_version", appVersion, "err", err)
			}
			continue
		}
		if n > 0 {
			f.event(p.appID, Event{Kind: EventRecovered, Version: p.version,
				Message: fmt.Sprintf("re-enqueued %d PENDING workflows of app version %s left by executors that are gone (%s)", n, appVersion, strings.Join(ids, ", "))})
		}
		f.EnsureVersionRuns(p.appID, p.inst, appVersion)
	}
	// Workflows enqueued for another version wait for an executor of that
	// version: after a restore, a database change or a restart, no drain
	// is under way to run them.
	queued, err := f.wf.QueuedVersions(ctx, p.inst, p.sysDB)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("list versions with enqueued workflows", "app", p.name, "err", err)
		}
		return
	}
	for _, appVersion := range queued {
		if appVersion != p.appVersion {
			f.EnsureVersionRuns(p.appID, p.inst, appVersion)
		}
	}
}
