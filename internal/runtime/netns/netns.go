// Package netns is the first executor driver: each executor is a child
// process of Hangar in its own network namespace, joined to the host by a
// veth pair on a /30 of its own, so that every app can listen on the same
// port. The host reaches the app at the executor's address; the app reaches
// host services only through the forwards of its Spec, on its gateway
// address. It gives no other isolation (same user, filesystem and cgroups as
// Hangar). It needs Linux, root and iproute2. Only composition roots
// (cmd/hangar, hangartest) import it.
package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
)

var _ runtime.Driver = (*Driver)(nil)

// waitDelay bounds how long reaping an executor waits for its output pipe
// to close once the process exited, in case a descendant that escaped its
// process group still holds it.
const waitDelay = time.Second

// Config configures the driver.
type Config struct {
	// Subnet is the IPv4 pool from which each executor gets a /30; the host
	// end is the first address, the executor the second. Default
	// "10.213.0.0/16" (16384 executors).
	Subnet string
	// Prefix names this instance's namespaces "<Prefix>-<executor ID>".
	// Cleanup removes every namespace with this prefix, so instances that
	// share a host need distinct prefixes. 1 to 16 characters of a-z and
	// 0-9. Default "hg".
	Prefix string
}

// Driver runs executors in network namespaces. It is safe for concurrent
// use.
type Driver struct {
	prefix string
	net    *vnet.Pool
	logger *slog.Logger
	ipPath string

	mu    sync.Mutex
	execs map[string]*executor
}

// executor is the driver's record of one prepared executor.
type executor struct {
	id      string
	ns      string
	network runtime.Network

	stopMu sync.Mutex // serializes Stop calls; held while stopping

	mu       sync.Mutex // guards the fields below
	gone     bool       // Prepare failed or Stop began: Start must not run
	cmd      *exec.Cmd
	addr     string
	started  time.Time
	forwards *vnet.Forwards
	done     chan struct{} // closed once the process is reaped; nil until Start
	status   runtime.Status
}

// New returns a driver. It returns KindUnavailable when the host cannot run
// it (not root, no ip command) and KindInvalid for a bad cfg.
func New(cfg Config, logger *slog.Logger) (*Driver, error) {
	if err := checkHost(); err != nil {
		return nil, err
	}
	path, err := exec.LookPath("ip")
	if err != nil {
		return nil, hangar.Errorf(hangar.KindUnavailable, "the netns executor driver needs ip (iproute2): %v", err)
	}
	return newDriver(cfg, logger, vnet.ExecIP(path), path, vnet.LockPath)
}

func newDriver(cfg Config, logger *slog.Logger, ip vnet.Runner, ipPath, lockPath string) (*Driver, error) {
	pool, err := vnet.New(vnet.Config{Subnet: cfg.Subnet, Prefix: cfg.Prefix}, ip, lockPath)
	if err != nil {
		return nil, err
	}
	return &Driver{
		prefix: pool.Prefix(),
		net:    pool,
		logger: logger,
		ipPath: ipPath,
		execs:  make(map[string]*executor),
	}, nil
}

func (d *Driver) nsName(id string) string { return d.net.Name(id) }

// Prepare creates the executor's namespace and veth pair on a free /30 and
// returns its addresses. See runtime.Driver.
func (d *Driver) Prepare(ctx context.Context, id string) (runtime.Network, error) {
	if err := runtime.ValidateID(id); err != nil {
		return runtime.Network{}, err
	}
	e := &executor{id: id, ns: d.nsName(id)}
	// e stays locked while the network is built, so that a concurrent Start
	// or Stop waits for the outcome.
	e.mu.Lock()
	defer e.mu.Unlock()
	d.mu.Lock()
	if d.execs[id] != nil {
		d.mu.Unlock()
		return runtime.Network{}, hangar.Errorf(hangar.KindConflict, "executor %s is already prepared", id)
	}
	d.execs[id] = e
	d.mu.Unlock()

	network, err := d.net.Setup(ctx, e.ns)
	if err != nil {
		e.gone = true
		if terr := d.net.Teardown(ctx, e.ns); terr != nil {
			d.logger.ErrorContext(ctx, "release executor network", "executor", id, "err", terr)
		}
		d.forget(e)
		return runtime.Network{}, fmt.Errorf("prepare executor %s: %w", id, err)
	}
	e.network = network
	return network, nil
}

// Start starts spec.Command in the executor's namespace through
// `ip netns exec`, which enters the namespace and execs the command, so the
// PID is the app's own. See runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (*runtime.Executor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	e := d.lookup(spec.ID)
	if e == nil {
		return nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not prepared", spec.ID)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.gone {
		return nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not prepared", spec.ID)
	}
	if e.done != nil {
		return nil, hangar.Errorf(hangar.KindConflict, "executor %s is already started", spec.ID)
	}
	logger := d.logger.With("executor", spec.ID, "app", spec.App, "version", spec.Version)

	// Forwards listen before the app starts: it may connect at once.
	forwards, err := vnet.Forward(ctx, e.ns, e.network.Gateway, spec.Forwards, logger)
	if err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, err)
	}

	// Not CommandContext: the process outlives the request that starts it.
	cmd := exec.Command(d.ipPath, vnet.ExecArgs(e.ns, spec.Command)...)
	cmd.Dir = spec.Dir
	// A nil Env would hand the app Hangar's own environment.
	cmd.Env = append([]string{}, spec.Env...)
	if spec.Stdout != nil {
		cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stdout
	}
	cmd.WaitDelay = waitDelay
	setProcAttr(cmd)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		forwards.Close()
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, err)
	}
	x := &runtime.Executor{
		ID:      spec.ID,
		Addr:    net.JoinHostPort(e.network.Address, strconv.Itoa(spec.Port)),
		Gateway: e.network.Gateway,
		PID:     cmd.Process.Pid,
	}
	e.cmd, e.forwards, e.done = cmd, forwards, make(chan struct{})
	e.addr, e.started = x.Addr, start
	go d.reap(e, cmd, e.done, logger)
	logger.InfoContext(ctx, "executor started", "addr", x.Addr, "pid", x.PID,
		"memory_mib", spec.MemoryMiB, "forwards", forwards.Len(), "took", time.Since(start))
	return x, nil
}

// reap waits for the process, records its status and closes done.
func (d *Driver) reap(e *executor, cmd *exec.Cmd, done chan struct{}, logger *slog.Logger) {
	err := cmd.Wait()
	if _, ok := errors.AsType[*exec.ExitError](err); ok {
		err = nil // the exit code tells
	}
	code, sigErr := exitStatus(cmd.ProcessState)
	st := runtime.Status{ExitCode: code, Err: errors.Join(sigErr, err)}
	e.mu.Lock()
	e.status = st
	e.mu.Unlock()
	close(done)
	logger.Info("executor exited", "exit_code", st.ExitCode, "err", st.Err)
}

// Wait blocks until the executor's process exits. See runtime.Driver.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	e := d.lookup(id)
	if e == nil {
		return runtime.Status{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	e.mu.Lock()
	done := e.done
	e.mu.Unlock()
	if done == nil {
		return runtime.Status{}, hangar.Errorf(hangar.KindNotFound, "executor %s is not started", id)
	}
	select {
	case <-done:
		e.mu.Lock()
		defer e.mu.Unlock()
		return e.status, nil
	case <-ctx.Done():
		return runtime.Status{}, ctx.Err()
	}
}

// Stop terminates the executor and releases its network. See
// runtime.Driver. When releasing fails, the executor stays known and a later
// Stop retries.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	e := d.lookup(id)
	if e == nil {
		return nil
	}
	e.stopMu.Lock()
	defer e.stopMu.Unlock()
	e.mu.Lock()
	e.gone = true
	cmd, done, forwards := e.cmd, e.done, e.forwards
	e.mu.Unlock()

	start := time.Now()
	if cmd != nil {
		if err := d.terminate(ctx, e.ns, cmd, done, grace); err != nil {
			return fmt.Errorf("stop executor %s: %w", id, err)
		}
	}
	// Forwards close only now: an app shutting down gracefully may still
	// need its database.
	forwards.Close()
	if err := d.net.Teardown(ctx, e.ns); err != nil {
		return fmt.Errorf("stop executor %s: %w", id, err)
	}
	d.forget(e)
	d.logger.InfoContext(ctx, "executor stopped", "executor", id, "took", time.Since(start))
	return nil
}

// terminate sends SIGTERM to the process group, and SIGKILL to it and to
// anything else left in the namespace once the process exited or grace
// passed, then waits until the process is reaped.
func (d *Driver) terminate(ctx context.Context, ns string, cmd *exec.Cmd, done chan struct{}, grace time.Duration) error {
	pgid := cmd.Process.Pid
	select {
	case <-done:
		// Already reaped: its PID may belong to someone else by now, so
		// leave stragglers to the namespace sweep.
	default:
		if err := signalGroup(pgid, syscall.SIGTERM); err != nil {
			return fmt.Errorf("send SIGTERM: %w", err)
		}
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
		case <-ctx.Done():
		}
		select {
		case <-done:
		default:
			if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
				return fmt.Errorf("send SIGKILL: %w", err)
			}
		}
	}
	if err := d.net.KillAll(context.WithoutCancel(ctx), ns); err != nil {
		return err
	}
	<-done
	return nil
}

// Cleanup removes what a previous run of an instance with the same Prefix
// left behind after a crash: every namespace named with the prefix, its
// processes and its veth pair. Executors of this driver are left alone.
// Call it at start-up, before the first Prepare.
func (d *Driver) Cleanup(ctx context.Context) error {
	names, err := d.net.Leftovers(ctx)
	if err != nil {
		return fmt.Errorf("clean up executors: %w", err)
	}
	d.mu.Lock()
	ours := make(map[string]bool, len(d.execs))
	for _, e := range d.execs {
		ours[e.ns] = true
	}
	d.mu.Unlock()
	var errs []error
	n := 0
	for _, ns := range names {
		if ours[ns] {
			continue
		}
		if err := d.net.Teardown(ctx, ns); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	if n > 0 {
		d.logger.InfoContext(ctx, "removed leftover executor namespaces", "count", n)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up executors: %w", err)
	}
	return nil
}

func (d *Driver) lookup(id string) *executor {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.execs[id]
}

// forget drops e, unless the ID was prepared again since.
func (d *Driver) forget(e *executor) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.execs[e.id] == e {
		delete(d.execs, e.id)
	}
}

// Inspect reports the executor's state. See runtime.Driver.
func (d *Driver) Inspect(_ context.Context, id string) (runtime.Info, error) {
	e := d.lookup(id)
	if e == nil {
		return runtime.Info{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	info := runtime.Info{ID: id, State: runtime.StatePrepared, Network: e.network, Addr: e.addr, StartedAt: e.started}
	if e.cmd == nil {
		return info, nil
	}
	info.PID = e.cmd.Process.Pid
	info.State = runtime.StateRunning
	select {
	case <-e.done:
		info.State, info.Status = runtime.StateExited, e.status
	default:
	}
	return info, nil
}

// Stats returns KindUnavailable: this driver puts executors in no cgroup of
// their own, so there is nothing that accounts for them alone. See
// runtime.Driver.
func (d *Driver) Stats(_ context.Context, id string) (runtime.Stats, error) {
	e := d.lookup(id)
	if e == nil {
		return runtime.Stats{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	e.mu.Lock()
	started := e.cmd != nil
	e.mu.Unlock()
	if !started {
		return runtime.Stats{}, hangar.Errorf(hangar.KindNotFound, "executor %s is not started", id)
	}
	return runtime.Stats{}, hangar.Errorf(hangar.KindUnavailable, "the netns driver does not account resources per executor; use the sandbox driver")
}
