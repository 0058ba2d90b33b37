package fleet

import (
	"context"
	"errors"
	"sync"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// earlies are the apps' early executors, by app ID.
type earlies struct {
	mu sync.Mutex
	m  map[string]*early
}

// put records e as the app's early executor.
func (es *earlies) put(appID string, e *early) {
	es.mu.Lock()
	defer es.mu.Unlock()
	if es.m == nil {
		es.m = map[string]*early{}
	}
	es.m[appID] = e
}

// take removes the app's early executor and returns it once its start
// returned: its executor, or nil when the start failed.
func (es *earlies) take(appID string) (*executor, *early) {
	es.mu.Lock()
	e := es.m[appID]
	delete(es.m, appID)
	es.mu.Unlock()
	if e == nil {
		return nil, nil
	}
	<-e.done
	if e.err != nil {
		return nil, e // launch stopped what it started
	}
	return e.ex, e
}

// early is an executor a deploy starts while its migrations run, its
// database held until release (docs/performance.md, "Redeploy").
type early struct {
	version string
	release func()
	done    chan struct{} // closed once the start returned: ex and err are set
	ex      *executor
	err     error
}

// StartEarly starts, in the background, the first executor of version for
// a while the deploy's migrations still run. The app loads (most of a
// start: the runtime's own, importing its SDK) but its database forwards
// hold every connection (runtime.Forward.Hold) until release is called, so
// it never reads a schema before its migrations made it. Serve of version
// then serves with it once it answers HTTP; DropEarly stops it when the
// deploy does not get that far. Starting another drops the app's previous
// one. A start that fails is left to Serve, which starts another.
func (f *Fleet) StartEarly(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) (release func()) {
	f.DropEarly(ctx, a.ID)
	hold := make(chan struct{})
	var once sync.Once
	e := &early{version: version, release: func() { once.Do(func() { close(hold) }) }, done: make(chan struct{})}
	f.early.put(a.ID, e)
	ctx = context.WithoutCancel(ctx)
	if !f.spawn(func() {
		defer close(e.done)
		e.ex, e.err = f.launch(ctx, a, inst, version, appVersion, hold)
	}) {
		e.err = errors.New("hangar is shutting down")
		close(e.done)
	}
	return e.release
}

// DropEarly stops the app's executor started by StartEarly, if any, without
// letting it reach its database.
func (f *Fleet) DropEarly(ctx context.Context, appID string) {
	if ex, _ := f.early.take(appID); ex != nil {
		f.stopExecutor(ctx, ex)
	}
}

// takeEarly returns the app's early executor of version, released, or nil;
// one of another version is stopped.
func (f *Fleet) takeEarly(ctx context.Context, a hangar.App, version string) *executor {
	ex, e := f.early.take(a.ID)
	switch {
	case e == nil:
		return nil
	case e.err != nil:
		f.log.WarnContext(ctx, "start an executor during the migrations", "app", a.Name, "version", e.version, "err", e.err)
		return nil
	case e.version != version:
		f.stopExecutor(ctx, ex)
		return nil
	}
	e.release()
	return ex
}
