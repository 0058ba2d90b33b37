package runtimetest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// Fake is an in-memory driver for tests of what runs executors (the deploy
// pipeline, a whole server in hangartest), where running the app itself
// does not matter. An executor is an HTTP server in the test process, on a
// port of its own on 127.0.0.1, that answers every request with 200 and its
// ID; it runs until it is stopped. Exec runs the command on the host, in
// the executor's folder with its environment. Fake needs no privilege; it
// does not pass the conformance suite (it runs no process).
type Fake struct {
	mu  sync.Mutex
	exs map[string]*fakeExec
}

var _ runtime.Driver = (*Fake)(nil)

type fakeExec struct {
	spec runtime.Spec
	srv  *http.Server
	addr string
	done chan struct{}
	once sync.Once
	code int
}

// NewFake returns a Fake with no executors.
func NewFake() *Fake { return &Fake{exs: map[string]*fakeExec{}} }

// Cleanup does nothing: a Fake's executors end with the test process.
func (d *Fake) Cleanup(context.Context) error { return nil }

// Running returns the IDs of the executors that run.
func (d *Fake) Running() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for id, e := range d.exs {
		if e.srv != nil {
			ids = append(ids, id)
		}
	}
	return ids
}

// Prepare records executor id.
func (d *Fake) Prepare(_ context.Context, id string) (runtime.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exs[id] != nil {
		return runtime.Network{}, hangar.Errorf(hangar.KindConflict, "executor %s is already prepared", id)
	}
	d.exs[id] = &fakeExec{done: make(chan struct{})}
	return runtime.Network{Gateway: "127.0.0.1", Address: "127.0.0.1"}, nil
}

// Start serves HTTP for the prepared executor spec.ID.
func (d *Fake) Start(_ context.Context, spec runtime.Spec) (*runtime.Executor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.exs[spec.ID]
	switch {
	case e == nil:
		return nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not prepared", spec.ID)
	case e.srv != nil:
		return nil, hangar.Errorf(hangar.KindConflict, "executor %s is already started", spec.ID)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.spec, e.addr = spec, ln.Addr().String()
	e.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			io.WriteString(w, spec.ID)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go e.srv.Serve(ln) //nolint:errcheck // ends with Close
	return &runtime.Executor{ID: spec.ID, Addr: e.addr, Gateway: "127.0.0.1", PID: 1}, nil
}

// exit ends the executor with code.
func (e *fakeExec) exit(code int) {
	e.once.Do(func() {
		e.code = code
		if e.srv != nil {
			e.srv.Close()
		}
		close(e.done)
	})
}

// Stop ends executor id as a SIGTERM would and forgets it.
func (d *Fake) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	e := d.exs[id]
	delete(d.exs, id)
	d.mu.Unlock()
	if e != nil {
		e.exit(143)
	}
	return nil
}

// get returns executor id and, read under the lock, its spec and address.
func (d *Fake) get(id string) (e *fakeExec, spec runtime.Spec, addr string, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e = d.exs[id]
	if e == nil {
		return nil, spec, "", hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	return e, e.spec, e.addr, nil
}

// Wait returns when executor id has stopped.
func (d *Fake) Wait(ctx context.Context, id string) (runtime.Status, error) {
	e, _, _, err := d.get(id)
	if err != nil {
		return runtime.Status{}, err
	}
	select {
	case <-e.done:
		return runtime.Status{ExitCode: e.code}, nil
	case <-ctx.Done():
		return runtime.Status{}, ctx.Err()
	}
}

// Inspect reports executor id as running.
func (d *Fake) Inspect(_ context.Context, id string) (runtime.Info, error) {
	_, _, addr, err := d.get(id)
	if err != nil {
		return runtime.Info{}, err
	}
	return runtime.Info{ID: id, State: runtime.StateRunning, Addr: addr}, nil
}

// Stats reports an idle executor with its memory limit.
func (d *Fake) Stats(_ context.Context, id string) (runtime.Stats, error) {
	_, spec, _, err := d.get(id)
	if err != nil {
		return runtime.Stats{}, err
	}
	return runtime.Stats{MemoryLimitBytes: uint64(spec.MemoryMiB) << 20}, nil
}

// Exec runs spec.Args on the host, in the executor's folder with its
// environment: tests only ever run their own commands.
func (d *Fake) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	_, es, addr, err := d.get(id)
	if err != nil {
		return -1, err
	}
	if addr == "" {
		return -1, hangar.Errorf(hangar.KindConflict, "executor %s is not running", id)
	}
	cmd := exec.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
	cmd.Dir, cmd.Env = es.Dir, es.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if _, ok := errors.AsType[*exec.ExitError](err); err != nil && !ok {
		return -1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}
