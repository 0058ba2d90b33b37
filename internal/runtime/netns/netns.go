// Package netns is the first executor driver: each executor is a child
// process of Hangar in its own network namespace, joined to the host by a
// veth pair on a /30 of its own, so that every app can listen on the same
// port. The host reaches the app at the executor's address; the app reaches
// host services only through the forwards of its Spec, on its gateway
// address, and beyond the host what the egress policy allows. It gives no
// other isolation (same user, filesystem and cgroups as Hangar). It needs
// Linux, root, nftables and iproute2, whose `ip netns exec` starts the
// apps. Only composition roots (cmd/hangar, hangartest) import it.
package netns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/exec"
	"strconv"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/table"
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
	// Egress is the policy for what executors reach beyond the host and
	// where their DNS queries go. Default runtime.Egress's zero value.
	Egress runtime.Egress
}

// Driver runs executors in network namespaces. It is safe for concurrent
// use.
type Driver struct {
	prefix string
	net    *vnet.Pool
	logger *slog.Logger
	ipPath string
	// execs needs no more than the shared record: Entry.Name is the
	// executor's namespace, and Entry.PID its process group.
	execs *table.Executors[*table.Entry]
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
	nft, err := exec.LookPath("nft")
	if err != nil {
		return nil, hangar.Errorf(hangar.KindUnavailable,
			"nft not found (%v): apt-get install nftables; executors' networks need it to keep them off host services and apply the egress policy", err)
	}
	return newDriver(cfg, logger, path, vnet.LockPath, vnet.ExecNFT(nft))
}

func newDriver(cfg Config, logger *slog.Logger, ipPath, lockPath string, nft vnet.NFT) (*Driver, error) {
	pool, err := vnet.New(vnet.Config{Subnet: cfg.Subnet, Prefix: cfg.Prefix, Egress: cfg.Egress}, lockPath, nft)
	if err != nil {
		return nil, err
	}
	return &Driver{
		prefix: pool.Prefix(),
		net:    pool,
		logger: logger,
		ipPath: ipPath,
		execs:  table.New(pool, logger, table.Hooks[*table.Entry]{}),
	}, nil
}

func (d *Driver) nsName(id string) string { return d.net.Name(id) }

// Prepare creates the executor's namespace and veth pair on a free /30 and
// returns its addresses. See runtime.Driver.
func (d *Driver) Prepare(ctx context.Context, id string) (runtime.Network, error) {
	return d.execs.Prepare(ctx, id, &table.Entry{})
}

// Start starts spec.Command in the executor's namespace through
// `ip netns exec`, which enters the namespace and execs the command, so the
// PID is the app's own. See runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (*runtime.Executor, error) {
	return d.execs.Start(spec, func(e *table.Entry) (*runtime.Executor, error) { return d.start(ctx, e, spec) })
}

// start runs spec in e, which is locked.
func (d *Driver) start(ctx context.Context, e *table.Entry, spec runtime.Spec) (*runtime.Executor, error) {
	logger := d.logger.With("executor", spec.ID, "app", spec.App, "version", spec.Version)

	// The resolver and relays listen before the app starts: it may
	// connect at once.
	forwards, err := d.net.Forward(ctx, e.Name, e.Network.Gateway, spec.Forwards, logger)
	if err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, err)
	}

	// Not CommandContext: the process outlives the request that starts it.
	cmd := exec.Command(d.ipPath, vnet.ExecArgs(e.Name, spec.Command)...)
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
		Addr:    net.JoinHostPort(e.Network.Address, strconv.Itoa(spec.Port)),
		Gateway: e.Network.Gateway,
		PID:     cmd.Process.Pid,
	}
	e.Forwards, e.Done = forwards, make(chan struct{})
	e.Addr, e.PID, e.StartedAt = x.Addr, x.PID, start
	go d.reap(e, cmd, logger)
	logger.InfoContext(ctx, "executor started", "addr", x.Addr, "pid", x.PID,
		"memory_mib", spec.MemoryMiB, "forwards", forwards.Len(), "took", time.Since(start))
	return x, nil
}

// reap waits for the process and records its status.
func (d *Driver) reap(e *table.Entry, cmd *exec.Cmd, logger *slog.Logger) {
	err := cmd.Wait()
	if _, ok := errors.AsType[*exec.ExitError](err); ok {
		err = nil // the exit code tells
	}
	code, sigErr := exitStatus(cmd.ProcessState)
	st := runtime.Status{ExitCode: code, Err: errors.Join(sigErr, err)}
	e.Exit(st)
	logger.Info("executor exited", "exit_code", st.ExitCode, "err", st.Err)
}

// Wait blocks until the executor's process exits. See runtime.Driver.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	return d.execs.Wait(ctx, id)
}

// Stop terminates the executor and releases its network. See
// runtime.Driver. When releasing fails, the executor stays known and a later
// Stop retries.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	return d.execs.Stop(ctx, id,
		func(e *table.Entry) error { return d.terminate(ctx, e, grace) },
		func(e *table.Entry) error { return d.net.Teardown(ctx, e.Name) })
}

// terminate sends SIGTERM to the process group, and SIGKILL to it and to
// anything else left in the namespace once the process exited or grace
// passed, then waits until the process is reaped.
func (d *Driver) terminate(ctx context.Context, e *table.Entry, grace time.Duration) error {
	pgid, done := e.PID, e.Done
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
	if err := d.net.KillAll(context.WithoutCancel(ctx), e.Name); err != nil {
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
	ours := d.execs.Names()
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

// Inspect reports the executor's state. See runtime.Driver.
func (d *Driver) Inspect(_ context.Context, id string) (runtime.Info, error) {
	return d.execs.Inspect(id)
}

// Exec runs spec.Args in the executor's namespace through `ip netns exec`,
// as the app runs: as Hangar's user, in the app's folder, with its
// environment. It runs in a process group of its own, killed when ctx is
// done. See runtime.Driver.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	e, err := d.execs.Running(id)
	if err != nil {
		return -1, err
	}
	cmd := exec.CommandContext(ctx, d.ipPath, vnet.ExecArgs(e.Name, spec.Args)...)
	cmd.Dir = e.Dir
	cmd.Env = append([]string{}, e.Env...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	cmd.WaitDelay = waitDelay
	setProcAttr(cmd)
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGKILL) }
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if _, ok := errors.AsType[*exec.ExitError](err); err != nil && !ok {
		return -1, fmt.Errorf("exec in executor %s: %w", id, err)
	}
	code, _ := exitStatus(cmd.ProcessState)
	return code, nil
}

// Stats returns KindUnavailable: this driver puts executors in no cgroup of
// their own, so there is nothing that accounts for them alone, memory
// peaks and process counts included. See runtime.Driver.
func (d *Driver) Stats(_ context.Context, id string) (runtime.Stats, error) {
	if _, _, err := d.execs.Started(id); err != nil {
		return runtime.Stats{}, err
	}
	return runtime.Stats{}, hangar.Errorf(hangar.KindUnavailable, "the netns driver does not account resources per executor; use the sandbox driver")
}
