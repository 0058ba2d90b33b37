package runtimetest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// Fake is an in-memory driver for tests of what runs executors (the deploy
// pipeline, the fleet, a whole server in hangartest), where running the app
// itself does not matter. An executor is an HTTP server in the test
// process, on a port of its own on 127.0.0.1, that answers every request
// with 200 and its ID; it runs until it is stopped or a test ends it
// (Exit, Hang, SetCrash). Exec runs the command on the host, in the
// executor's folder with its environment. Stats reports the CPU time that
// SetCPU asks for, on the Fake's own clock (Now). Fake needs no privilege;
// it does not pass the conformance suite (it runs no process).
type Fake struct {
	mu       sync.Mutex
	exs      map[string]*fakeExec
	started  []runtime.Spec
	crash    *runtime.Status // new executors exit so right after they start
	cpu      float64         // vCPUs each new executor uses
	statsErr error           // what Stats returns instead of stats
	// sampled is the time of the last call to Now: CPU time advances
	// only up to it.
	sampled time.Time
}

var _ runtime.Driver = (*Fake)(nil)

type fakeExec struct {
	spec   runtime.Spec
	srv    *http.Server
	addr   string
	hung   chan struct{} // closed: requests hang until the executor ends
	done   chan struct{}
	once   sync.Once
	status runtime.Status

	// CPU accounting, under Fake.mu.
	cpu    time.Duration
	cpuAt  time.Time
	cpuUse float64
	// cpuWait is what it reports it waited for a CPU (AddCPUWait).
	cpuWait time.Duration
}

// NewFake returns a Fake with no executors.
func NewFake() *Fake { return &Fake{exs: map[string]*fakeExec{}} }

// Now is the clock of the Fake's CPU accounting: give it to what samples
// Stats (fleet.Config.Now). The CPU time Stats reports covers the time up
// to the last call of Now, so that a sampler that reads the time once and
// then the Stats of each executor divides their CPU time by the very span
// it measured, however fast it samples.
func (d *Fake) Now() time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sampled = time.Now()
	return d.sampled
}

// cpuNowLocked is the time CPU accounting runs to.
func (d *Fake) cpuNowLocked() time.Time {
	if d.sampled.IsZero() {
		return time.Now()
	}
	return d.sampled
}

// Cleanup does nothing: a Fake's executors end with the test process.
func (d *Fake) Cleanup(context.Context) error { return nil }

// Running returns the IDs of the executors that serve.
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

// ByVersion returns the IDs of the executors prepared and not stopped, by
// their spec's version.
func (d *Fake) ByVersion() map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for id, e := range d.exs {
		out[e.spec.Version] = append(out[e.spec.Version], id)
	}
	return out
}

// Started returns the specs of every executor started, in order.
func (d *Fake) Started() []runtime.Spec {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]runtime.Spec(nil), d.started...)
}

// SetCPU makes every executor, running and future, use vcpus.
func (d *Fake) SetCPU(vcpus float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.cpuNowLocked()
	for _, e := range d.exs {
		e.account(now)
		e.cpuUse = vcpus
	}
	d.cpu = vcpus
}

// SetCrash makes new executors exit with st right after they start,
// without serving; nil serves again.
func (d *Fake) SetCrash(st *runtime.Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crash = st
}

// SetStatsErr makes Stats fail with err; nil reports stats again.
func (d *Fake) SetStatsErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.statsErr = err
}

// Exit ends executor id's process with st, as a crash would.
// KindNotFound.
func (d *Fake) Exit(id string, st runtime.Status) error {
	e, _, _, err := d.get(id)
	if err != nil {
		return err
	}
	e.exit(st)
	return nil
}

// Hang makes executor id's requests hang until it ends. KindNotFound.
func (d *Fake) Hang(id string) error {
	e, _, _, err := d.get(id)
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	select {
	case <-e.hung:
	default:
		close(e.hung)
	}
	return nil
}

// Prepare records executor id.
func (d *Fake) Prepare(_ context.Context, id string) (runtime.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exs[id] != nil {
		return runtime.Network{}, hangar.Errorf(hangar.KindConflict, "executor %s is already prepared", id)
	}
	d.exs[id] = &fakeExec{done: make(chan struct{}), hung: make(chan struct{})}
	return runtime.Network{Gateway: "127.0.0.1", Address: "127.0.0.1"}, nil
}

// Start serves HTTP for the prepared executor spec.ID, or with SetCrash
// exits right after.
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
	case e.addr != "":
		return nil, hangar.Errorf(hangar.KindConflict, "executor %s is already started", spec.ID)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	e.spec, e.addr = spec, ln.Addr().String()
	e.cpuAt, e.cpuUse = d.cpuNowLocked(), d.cpu
	d.started = append(d.started, spec)
	if d.crash != nil {
		ln.Close() // nothing answers at addr
		st := *d.crash
		go func() {
			time.Sleep(5 * time.Millisecond)
			e.exit(st)
		}()
		return &runtime.Executor{ID: spec.ID, Addr: e.addr, Gateway: "127.0.0.1", PID: 1}, nil
	}
	e.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-e.hung:
				select {
				case <-r.Context().Done():
				case <-e.done:
				}
				return
			default:
			}
			io.WriteString(w, spec.ID)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go e.srv.Serve(ln) //nolint:errcheck // ends with Close
	return &runtime.Executor{ID: spec.ID, Addr: e.addr, Gateway: "127.0.0.1", PID: 1}, nil
}

// exit ends the executor with st.
func (e *fakeExec) exit(st runtime.Status) {
	e.once.Do(func() {
		e.status = st
		close(e.done)
		if e.srv != nil {
			e.srv.Close()
		}
	})
}

// account adds the CPU time used up to now; under Fake.mu.
func (e *fakeExec) account(now time.Time) {
	if now.After(e.cpuAt) {
		e.cpu += time.Duration(e.cpuUse * float64(now.Sub(e.cpuAt)))
		e.cpuAt = now
	}
}

// Stop ends executor id as a SIGTERM would and forgets it.
func (d *Fake) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	e := d.exs[id]
	delete(d.exs, id)
	d.mu.Unlock()
	if e != nil {
		e.exit(runtime.Status{ExitCode: 143})
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
		return e.status, nil
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

// Stats reports executor id's memory limit and the CPU time it used, as
// SetCPU sets it, up to the last call of Now.
func (d *Fake) Stats(_ context.Context, id string) (runtime.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.statsErr != nil {
		return runtime.Stats{}, d.statsErr
	}
	e := d.exs[id]
	if e == nil {
		return runtime.Stats{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	e.account(d.cpuNowLocked())
	return runtime.Stats{CPU: e.cpu, CPUWait: e.cpuWait, MemoryLimitBytes: uint64(e.spec.MemoryMiB) << 20}, nil
}

// AddCPUWait adds wait to the time executor id reports it waited for a
// CPU.
func (d *Fake) AddCPUWait(id string, wait time.Duration) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.exs[id]; e != nil {
		e.cpuWait += wait
	}
}

// Exec runs spec.Args on the host, in the executor's folder with its
// environment: tests only ever run their own commands. Cancelling ctx
// kills what the command started too, as drivers do.
func (d *Fake) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	e, es, addr, err := d.get(id)
	if err != nil {
		return -1, err
	}
	select {
	case <-e.done:
		addr = ""
	default:
	}
	if addr == "" {
		return -1, hangar.Errorf(hangar.KindConflict, "executor %s is not running", id)
	}
	cmd := exec.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
	cmd.Dir, cmd.Env = es.Dir, es.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if _, ok := errors.AsType[*exec.ExitError](err); err != nil && !ok {
		return -1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}
