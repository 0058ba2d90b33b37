// Package table keeps the executors of a runtime driver: the bookkeeping
// the netns and sandbox drivers share (a record per executor ID, Prepare
// with its rollback, the checks before Start, Wait, Inspect and Exec, the
// guard of Stats and the skeleton of Stop), so that each driver keeps only how it
// runs and stops a process. Only drivers under internal/runtime import it.
package table

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
)

// Entry is what every driver records of a prepared executor. A driver's
// record embeds it and adds its own fields, which Mu guards too.
type Entry struct {
	// ID, Name (its network namespace) and Network are set by Prepare and
	// never change once Prepare returned.
	ID, Name string
	Network  runtime.Network

	stopMu sync.Mutex // serializes Stop calls; held while stopping

	// Mu guards the fields below and the driver's own. Start holds it
	// throughout; once Stop began, Start no longer changes anything.
	Mu   sync.Mutex
	gone bool // Prepare failed or Stop began: Start must not run
	// Addr and PID are the app's, set once its process runs; StartedAt is
	// when Start started it.
	Addr      string
	PID       int
	StartedAt time.Time
	// Dir and Env are the app's working directory and environment, set
	// when Start succeeded, for Exec.
	Dir string
	Env []string
	// Forwards are the executor's resolver and relays; Stop closes them,
	// also when Start failed after starting them.
	Forwards *vnet.Forwards
	// Done is closed by Exit once the process is reaped; nil until Start
	// started it.
	Done chan struct{}

	status runtime.Status // written by Exit before Done closes; read after
}

func (x *Entry) entry() *Entry { return x }

// Exit records how the process ended and closes Done. The driver's reaper
// calls it once, without Mu (Start may hold it while it waits for the
// process); what the driver records alongside must be written before.
func (x *Entry) Exit(st runtime.Status) {
	x.status = st
	close(x.Done)
}

// Record is a driver's record of an executor: a pointer to a struct that
// embeds Entry.
type Record interface {
	entry() *Entry
}

// Net builds and releases executor networks: a *vnet.Pool, or a fake in
// tests that run without root.
type Net interface {
	// Name returns the network namespace name of executor id.
	Name(id string) string
	// Setup builds namespace ns; on failure, the caller calls Teardown.
	Setup(ctx context.Context, ns string) (runtime.Network, error)
	// Teardown releases namespace ns; parts already gone count as released.
	Teardown(ctx context.Context, ns string) error
}

var _ Net = (*vnet.Pool)(nil)

// Executors is a driver's table of prepared executors. It is safe for
// concurrent use.
type Executors[E Record] struct {
	net     Net
	logger  *slog.Logger
	reserve func(E) error
	release func(E)

	mu sync.Mutex
	m  map[string]E
}

// Hooks let a driver reserve per-executor resources in step with the
// table. Both run under the table's lock, which so guards what they
// manage; either may be nil.
type Hooks[E Record] struct {
	// Reserve runs when Prepare records an executor, once its ID is known
	// to be free; an error fails Prepare.
	Reserve func(E) error
	// Release runs when the table forgets an executor.
	Release func(E)
}

// New returns an empty table whose executors get their networks from net.
func New[E Record](net Net, logger *slog.Logger, hooks Hooks[E]) *Executors[E] {
	return &Executors[E]{net: net, logger: logger, reserve: hooks.Reserve, release: hooks.Release, m: make(map[string]E)}
}

// Prepare records e, a fresh record, as executor id and builds its network
// namespace and veth pair. e stays locked meanwhile, so that a concurrent
// Start or Stop waits for the outcome; when the network cannot be built,
// what was built is released and id is free again. Errors are as
// runtime.Driver's Prepare.
func (t *Executors[E]) Prepare(ctx context.Context, id string, e E) (runtime.Network, error) {
	if err := runtime.ValidateID(id); err != nil {
		return runtime.Network{}, err
	}
	x := e.entry()
	x.ID, x.Name = id, t.net.Name(id)
	x.Mu.Lock()
	defer x.Mu.Unlock()
	t.mu.Lock()
	if _, ok := t.m[id]; ok {
		t.mu.Unlock()
		return runtime.Network{}, hangar.Errorf(hangar.KindConflict, "executor %s is already prepared", id)
	}
	if t.reserve != nil {
		if err := t.reserve(e); err != nil {
			t.mu.Unlock()
			return runtime.Network{}, err
		}
	}
	t.m[id] = e
	t.mu.Unlock()

	network, err := t.net.Setup(ctx, x.Name)
	if err != nil {
		x.gone = true
		if terr := t.net.Teardown(ctx, x.Name); terr != nil {
			t.logger.ErrorContext(ctx, "release executor network", "executor", id, "err", terr)
		}
		t.forget(e)
		return runtime.Network{}, fmt.Errorf("prepare executor %s: %w", id, err)
	}
	x.Network = network
	return network, nil
}

// Start validates spec and runs start with executor spec.ID locked, once it
// is prepared and not started yet. start sets Done when it started the
// process, and Forwards, Addr, PID and StartedAt as it learns them. Errors
// are as runtime.Driver's Start, plus start's own.
func (t *Executors[E]) Start(spec runtime.Spec, start func(E) (*runtime.Executor, error)) (*runtime.Executor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	e, ok := t.Lookup(spec.ID)
	if !ok {
		return nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not prepared", spec.ID)
	}
	x := e.entry()
	x.Mu.Lock()
	defer x.Mu.Unlock()
	if x.gone {
		return nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not prepared", spec.ID)
	}
	if x.Done != nil {
		return nil, hangar.Errorf(hangar.KindConflict, "executor %s is already started", spec.ID)
	}
	started, err := start(e)
	if err == nil {
		x.Dir, x.Env = spec.Dir, spec.Env
	}
	return started, err
}

// Running returns executor id while its app's process runs, for Exec. It
// returns KindNotFound when id is unknown or stopped, and KindConflict
// when it was not started or its process exited.
func (t *Executors[E]) Running(id string) (E, error) {
	e, ok := t.Lookup(id)
	if !ok {
		return e, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	x := e.entry()
	x.Mu.Lock()
	defer x.Mu.Unlock()
	switch {
	case x.gone:
		return e, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	case x.Done == nil:
		return e, hangar.Errorf(hangar.KindConflict, "executor %s is not running: it was not started", id)
	case closed(x.Done):
		return e, hangar.Errorf(hangar.KindConflict, "executor %s is not running: its process exited", id)
	}
	return e, nil
}

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// Started returns executor id and its Done once Start started its process.
// It returns KindNotFound when id is unknown, stopped or never started.
func (t *Executors[E]) Started(id string) (E, <-chan struct{}, error) {
	e, ok := t.Lookup(id)
	if !ok {
		return e, nil, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	x := e.entry()
	x.Mu.Lock()
	done := x.Done
	x.Mu.Unlock()
	if done == nil {
		return e, nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not started", id)
	}
	return e, done, nil
}

// Wait blocks until the process of executor id exits. See runtime.Driver.
func (t *Executors[E]) Wait(ctx context.Context, id string) (runtime.Status, error) {
	e, done, err := t.Started(id)
	if err != nil {
		return runtime.Status{}, err
	}
	select {
	case <-done:
		return e.entry().status, nil
	case <-ctx.Done():
		return runtime.Status{}, ctx.Err()
	}
}

// Inspect reports the state of executor id. See runtime.Driver.
func (t *Executors[E]) Inspect(id string) (runtime.Info, error) {
	e, ok := t.Lookup(id)
	if !ok {
		return runtime.Info{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	x := e.entry()
	x.Mu.Lock()
	defer x.Mu.Unlock()
	info := runtime.Info{ID: id, State: runtime.StatePrepared, Network: x.Network, Addr: x.Addr, PID: x.PID, StartedAt: x.StartedAt}
	if x.Done == nil {
		return info, nil
	}
	info.State = runtime.StateRunning
	select {
	case <-x.Done:
		info.State, info.Status = runtime.StateExited, x.status
	default:
	}
	return info, nil
}

// Stop stops executor id and forgets it; an unknown executor is fine. It
// marks the executor so that Start no longer runs, calls terminate when
// Start started a process (terminate returns once the process is reaped),
// closes the forwards only then, as an app shutting down gracefully may
// still need its database, and calls release to free the rest. Stop calls
// for one executor run one at a time; they read its fields without Mu, as
// nothing changes them any more. When terminate or release fails, the
// executor stays known and a later Stop retries.
func (t *Executors[E]) Stop(ctx context.Context, id string, terminate, release func(E) error) error {
	e, ok := t.Lookup(id)
	if !ok {
		return nil
	}
	x := e.entry()
	x.stopMu.Lock()
	defer x.stopMu.Unlock()
	x.Mu.Lock()
	x.gone = true
	started := x.Done != nil
	x.Mu.Unlock()

	begin := time.Now()
	if started {
		if err := terminate(e); err != nil {
			return fmt.Errorf("stop executor %s: %w", id, err)
		}
	}
	x.Forwards.Close()
	if err := release(e); err != nil {
		return fmt.Errorf("stop executor %s: %w", id, err)
	}
	t.forget(e)
	t.logger.InfoContext(ctx, "executor stopped", "executor", id, "took", time.Since(begin))
	return nil
}

// Lookup returns executor id, if it is prepared and not yet forgotten.
func (t *Executors[E]) Lookup(id string) (E, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e, ok := t.m[id]
	return e, ok
}

// Names returns the namespace names of the known executors, which a
// driver's Cleanup leaves alone.
func (t *Executors[E]) Names() map[string]bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	names := make(map[string]bool, len(t.m))
	for _, e := range t.m {
		names[e.entry().Name] = true
	}
	return names
}

// forget drops e, unless its ID was prepared again since.
func (t *Executors[E]) forget(e E) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.m[e.entry().ID]; ok && cur.entry() == e.entry() {
		delete(t.m, e.entry().ID)
		if t.release != nil {
			t.release(e)
		}
	}
}
