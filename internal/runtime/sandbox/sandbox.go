// Package sandbox is the default executor driver: each executor is an OCI
// container run by runc, from a spec generated here. The app runs as an
// unprivileged uid of its own, without capabilities, under no_new_privs and
// a seccomp filter, in its own PID, mount, UTS, IPC and network namespaces,
// on a read-only view of the host's root filesystem in which Hangar's data,
// other apps' folders and the configured hidden paths are empty, with its
// app folder writable and a private /tmp; cgroups (v1 or v2, as runc finds
// them) cap its memory, CPU and processes. The network is the netns
// driver's, shared through internal/vnet: a namespace on a veth pair that
// runc joins by path. It needs Linux, root, runc and nftables. Only
// composition roots (cmd/hangar, hangartest) and bench/executor import it.
package sandbox

// size: the runc driver's OCI spec and its lifecycle share the Driver's bookkeeping; candidates to split: the spec.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/table"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
)

var _ runtime.Driver = (*Driver)(nil)

const (
	// startTimeout bounds how long Start waits for runc to start the app.
	startTimeout = 30 * time.Second
	// cleanupTimeout bounds the runc commands that release an executor;
	// they run even when the caller's context is done, or they would leak.
	cleanupTimeout = 30 * time.Second
	// waitDelay bounds how long reaping waits for the output pipe to close
	// once runc exited.
	waitDelay = time.Second
)

// DefaultHiddenPaths are the directories every executor sees empty, besides
// Config.HiddenPaths: users' homes, other services' data and runtime state,
// and world-writable scratch places where other programs may leave secrets.
var DefaultHiddenPaths = []string{
	"/home", "/media", "/mnt", "/root", "/run", "/srv",
	"/var/backups", "/var/lib/postgresql", "/var/log", "/var/mail", "/var/spool", "/var/tmp",
}

// Config configures the driver. The zero value is usable, except that
// Hangar's data dir must be added to HiddenPaths.
type Config struct {
	// Runtime is the OCI runtime, "crun" or "runc", or the path of one.
	// Default: crun when it is installed and the host's cgroups suit it
	// (not a hybrid host whose unified hierarchy holds controllers), runc
	// otherwise. crun starts a container in a fraction of runc's time
	// (docs/performance.md, "crun").
	Runtime string
	// StateDir holds the runtime's state (StateDir/runc) and the
	// executors' bundles (StateDir/bundles). Default
	// "/run/hangar/sandbox/<Prefix>".
	StateDir string
	// Subnet is the IPv4 pool from which each executor gets a /30, as in
	// the netns driver. Default "10.213.0.0/16".
	Subnet string
	// Prefix names this instance's namespaces, containers and cgroups
	// ("<Prefix>-<executor ID>", /hangar/<Prefix>/<executor ID>). Cleanup
	// removes everything with this prefix, so instances that share a host
	// need distinct prefixes. 1 to 16 characters of a-z and 0-9. Default
	// "hg".
	Prefix string
	// HiddenPaths lists directories that executors see empty, in addition
	// to DefaultHiddenPaths. Hangar's data dir belongs here: the app
	// folder, wherever it is, is bound back in. Paths that are not
	// directories on the host are skipped. Default none.
	HiddenPaths []string
	// FirstUID and UIDCount give the range of uids executors run as: each
	// executor of this driver gets one no other running executor has, so
	// that a process that escaped its namespaces still cannot signal,
	// trace or read another executor's. Default 200001 and 65535.
	FirstUID uint32
	UIDCount int
	// GID is the group of every executor; Start makes the top of the app
	// folder writable to it, as executors of one version share their
	// folder. Default 200000.
	GID uint32
	// CPUs is the CPU quota of an executor, in CPUs. Default 1.
	CPUs float64
	// Pids caps the processes and threads of an executor. Default 512.
	Pids int
	// TmpMiB is the size of an executor's private /tmp, which counts
	// against its memory limit. Default 64.
	TmpMiB int
	// Images, when set, makes RunStep available and runs executors whose
	// Spec names an Image on that image (docs/images.md). Default nil:
	// executors run on the host's root filesystem and RunStep fails.
	Images *image.Cache
	// Disks, when set, puts each setup layer on a disk of its own, so
	// that what setup writes outside the app folder is bounded too
	// (docs/disk.md). Default nil: layers are plain directories.
	Disks *image.Disks
	// GoRoot is the Go toolchain bound at /usr/local/go in images.
	// Default "": none.
	GoRoot string
	// StepMemoryMiB caps the memory of a build step, /tmp included.
	// Default 2048.
	StepMemoryMiB int
	// StepPids caps the processes and threads of a build step. Default
	// 4096.
	StepPids int
	// Egress is the policy for what executors reach beyond the host and
	// where their DNS queries go. Default runtime.Egress's zero value.
	Egress runtime.Egress

	// wrapNFT, set by tests, wraps the driver's nft runs.
	wrapNFT func(vnet.NFT) vnet.NFT
}

func (c *Config) setDefaults() {
	if c.Prefix == "" {
		c.Prefix = "hg"
	}
	if c.StateDir == "" {
		c.StateDir = filepath.Join("/run/hangar/sandbox", c.Prefix)
	}
	if c.FirstUID == 0 {
		c.FirstUID = 200001
	}
	if c.UIDCount == 0 {
		c.UIDCount = 65535
	}
	if c.GID == 0 {
		c.GID = 200000
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.Pids == 0 {
		c.Pids = 512
	}
	if c.TmpMiB == 0 {
		c.TmpMiB = 64
	}
	if c.StepMemoryMiB == 0 {
		c.StepMemoryMiB = 2048
	}
	if c.StepPids == 0 {
		c.StepPids = 4096
	}
}

// Driver runs executors as OCI containers, under crun or runc. It is safe
// for concurrent use.
type Driver struct {
	cfg     Config
	ociPath string
	ociRoot string
	bundles string
	hidden  []string
	net     *vnet.Pool
	cgroups hierarchies
	logger  *slog.Logger

	execs *table.Executors[*executor]
	uids  map[uint32]bool // in use; guarded by the table's lock (see Hooks)
}

// executor is the driver's record of one prepared executor. Entry.Name
// names its namespace, container and bundle.
type executor struct {
	table.Entry
	uid    uint32    // set by Prepare
	bundle string    // set once Start made it
	cmd    *exec.Cmd // runc run, set with Done
	oom    *oomWatch // set with the group, closed by Stop

	// reap writes these once, before Exit, without Mu (Start holds it
	// while it waits for the app); read them after <-Done only.
	last    runtime.Stats // the cgroup's last reading
	lastErr error
}

// New returns a driver. It returns KindUnavailable when the host cannot run
// it (not root, no runc, no nft command), with what to do about it, and
// KindInvalid for a bad cfg.
func New(cfg Config, logger *slog.Logger) (*Driver, error) {
	cfg.setDefaults()
	if err := checkHost(); err != nil {
		return nil, err
	}
	cg, err := readHierarchies()
	if err != nil {
		return nil, fmt.Errorf("find cgroup hierarchies: %w", err)
	}
	ociPath, err := pickRuntime(cfg.Runtime, cg)
	if err != nil {
		return nil, err
	}
	logger.Info("sandbox OCI runtime", "runtime", ociPath)
	nftPath, err := exec.LookPath("nft")
	if err != nil {
		return nil, hangar.Errorf(hangar.KindUnavailable,
			"nft not found (%v): apt-get install nftables; the sandbox driver needs it to keep executors off host services", err)
	}
	nft := vnet.ExecNFT(nftPath)
	if cfg.wrapNFT != nil {
		nft = cfg.wrapNFT(nft)
	}
	return newDriver(cfg, logger, ociPath, nft, cg)
}

func newDriver(cfg Config, logger *slog.Logger, ociPath string, nft vnet.NFT, cg hierarchies) (*Driver, error) {
	cfg.setDefaults()
	pool, err := vnet.New(vnet.Config{Subnet: cfg.Subnet, Prefix: cfg.Prefix, Egress: cfg.Egress}, vnet.LockPath, nft)
	if err != nil {
		return nil, err
	}
	hidden, err := cleanPaths(append(append([]string{}, DefaultHiddenPaths...), cfg.HiddenPaths...))
	if err != nil {
		return nil, hangar.Errorf(hangar.KindInvalid, "sandbox driver: %v", err)
	}
	switch {
	case !filepath.IsAbs(cfg.StateDir):
		return nil, hangar.Errorf(hangar.KindInvalid, "sandbox driver: state dir %q is not absolute", cfg.StateDir)
	case cfg.UIDCount < 1 || uint64(cfg.FirstUID)+uint64(cfg.UIDCount) > 1<<32-1:
		return nil, hangar.Errorf(hangar.KindInvalid, "sandbox driver: uid range %d+%d is out of bounds", cfg.FirstUID, cfg.UIDCount)
	case cfg.CPUs < 0.01:
		return nil, hangar.Errorf(hangar.KindInvalid, "sandbox driver: %v CPUs is below the minimum of 0.01", cfg.CPUs)
	case cfg.Pids < 1, cfg.TmpMiB < 1:
		return nil, hangar.Errorf(hangar.KindInvalid, "sandbox driver: pids and tmp size must be positive")
	}
	d := &Driver{
		cfg:     cfg,
		ociPath: ociPath,
		ociRoot: filepath.Join(cfg.StateDir, "runc"),
		bundles: filepath.Join(cfg.StateDir, "bundles"),
		hidden:  hidden,
		net:     pool,
		cgroups: cg,
		logger:  logger,
		uids:    make(map[uint32]bool),
	}
	d.execs = table.New(pool, logger, table.Hooks[*executor]{Reserve: d.allocUID, Release: d.freeUID})
	return d, nil
}

// pickRuntime returns the path of the OCI runtime name ("" picks one, see
// Config.Runtime), or why there is none.
func pickRuntime(name string, cg hierarchies) (string, error) {
	if name == "" {
		if p, err := exec.LookPath("crun"); err == nil && cg.crunCan() {
			return p, nil
		}
		name = "runc"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", hangar.Errorf(hangar.KindUnavailable,
			"OCI runtime %s not found (%v): apt-get install crun (or runc), or choose the unsandboxed development driver with --driver=netns", name, err)
	}
	if filepath.Base(p) == "crun" && !cg.crunCan() {
		return "", hangar.Errorf(hangar.KindUnavailable,
			"crun does not run on this host's cgroups, a hybrid layout whose unified hierarchy holds the %s controller(s): scripts/setup.sh mounts them as v1 hierarchies; or use runc",
			strings.Join(cg.unifiedControllers, ", "))
	}
	return p, nil
}

// cgroupParent is the group under which the executors' groups are made: a
// top-level group of Hangar's own, not the caller's (the runtime would nest
// under it otherwise).
func (d *Driver) cgroupParent() string { return "/hangar/" + d.cfg.Prefix }

func (d *Driver) cgroupPath(id string) string { return d.cgroupParent() + "/" + id }

// containerGroup is the group the runtime creates for executor id's
// container, inside the executor's own (cgroupPath), which holds the limits.
func (d *Driver) containerGroup(id string) string { return d.cgroupPath(id) + "/ctr" }

// Prepare creates the executor's network namespace and veth pair on a free
// /30 and picks its uid. See runtime.Driver.
func (d *Driver) Prepare(ctx context.Context, id string) (runtime.Network, error) {
	return d.execs.Prepare(ctx, id, &executor{})
}

// allocUID gives e the lowest free uid of the range; the table's lock is
// held.
func (d *Driver) allocUID(e *executor) error {
	for i := range d.cfg.UIDCount {
		uid := d.cfg.FirstUID + uint32(i)
		if !d.uids[uid] {
			d.uids[uid] = true
			e.uid = uid
			return nil
		}
	}
	return hangar.Errorf(hangar.KindUnavailable, "no free executor uid left in %d+%d", d.cfg.FirstUID, d.cfg.UIDCount)
}

// freeUID returns e's uid to the range; the table's lock is held.
func (d *Driver) freeUID(e *executor) { delete(d.uids, e.uid) }

// Start writes the executor's bundle and runs it with `runc run`, which
// stays our child for the app's life and exits with its status: the only
// way to learn the exit status of a container without making Hangar a
// child subreaper (which would make it reap, and race os/exec for, every
// orphan on the host). It returns once the app's process runs. See
// runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (*runtime.Executor, error) {
	return d.execs.Start(spec, func(e *executor) (*runtime.Executor, error) { return d.start(ctx, e, spec) })
}

// start runs spec in e, which is locked.
func (d *Driver) start(ctx context.Context, e *executor, spec runtime.Spec) (*runtime.Executor, error) {
	// A Start that failed after making the bundle leaves it to Stop.
	if e.bundle != "" {
		return nil, hangar.Errorf(hangar.KindConflict, "executor %s is already started", spec.ID)
	}
	logger := d.logger.With("executor", spec.ID, "app", spec.App, "version", spec.Version)
	begin := time.Now()
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = hangar.DefaultMemoryMiB
	}

	// The resolver and relays must listen before the app starts, as it
	// may connect at once, but runc's set-up of the container, the larger
	// part of a start, does not need them: Forward runs meanwhile, and the
	// container's init holds the app back until its gate opens (see
	// initScript).
	forwarded := d.forwardAsync(ctx, e.Name, e.Network.Gateway, spec.Forwards, logger)
	// Stop closes the relays, also when Start fails below.
	awaitForwards := func() error {
		f, err := forwarded()
		e.Forwards = f
		return err
	}

	bundle := filepath.Join(d.bundles, e.Name)
	e.bundle = bundle
	if err := d.writeBundle(ctx, bundle, e, spec); err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, errors.Join(err, awaitForwards()))
	}
	quota := time.Duration(d.cfg.CPUs*cpuPeriod) * time.Microsecond
	if err := d.cgroups.makeGroup(d.cgroupPath(e.ID), limits{
		MemoryBytes: int64(spec.MemoryMiB) << 20, CPUQuota: quota, CPUPeriod: cpuPeriod * time.Microsecond, Burst: quota,
		Pids: int64(d.cfg.Pids),
	}); err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, errors.Join(err, awaitForwards()))
	}
	oom, err := d.cgroups.watchOOM(d.cgroupPath(e.ID))
	if err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, errors.Join(err, awaitForwards()))
	}
	e.oom = oom
	gate, open, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, errors.Join(err, awaitForwards()))
	}
	defer open.Close() // unopened: the init exits and runc with it

	cmd := d.ociRun(bundle, e.Name, gate, spec.Stdout)
	err = cmd.Start()
	gate.Close() // the child has its copy
	if err != nil {
		return nil, fmt.Errorf("start executor %s: run runc: %w", spec.ID, errors.Join(err, awaitForwards()))
	}
	e.cmd, e.Done, e.StartedAt = cmd, make(chan struct{}), begin
	go d.reap(e, cmd, spec.MemoryMiB, logger)

	if err := awaitForwards(); err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, err)
	}
	// A write that fails finds the init gone: waitPIDFile says why.
	_, _ = open.Write([]byte("go\n"))
	pid, err := waitPIDFile(ctx, filepath.Join(bundle, "pid"), e.Done)
	if err != nil {
		// Stop kills what started and releases the rest.
		return nil, fmt.Errorf("start executor %s: %w%s", spec.ID, err, runcLogTail(bundle))
	}
	e.PID = pid
	e.Addr = net.JoinHostPort(e.Network.Address, strconv.Itoa(spec.Port))
	x := &runtime.Executor{ID: spec.ID, Addr: e.Addr, Gateway: e.Network.Gateway, PID: pid}
	logger.InfoContext(ctx, "executor started", "addr", x.Addr, "pid", pid, "uid", e.uid,
		"memory_mib", spec.MemoryMiB, "forwards", e.Forwards.Len(), "took", time.Since(begin))
	return x, nil
}

// forwardAsync starts the resolver, relays and firewall of namespace ns
// (vnet.Pool.Forward) in the background and returns what waits for them;
// it may be called any number of times.
func (d *Driver) forwardAsync(ctx context.Context, ns, gateway string, forwards []runtime.Forward, logger *slog.Logger) func() (*vnet.Forwards, error) {
	var f *vnet.Forwards
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		f, err = d.net.Forward(ctx, ns, gateway, forwards, logger)
	}()
	return func() (*vnet.Forwards, error) {
		<-done
		return f, err
	}
}

// ociRun returns the runtime's `run` of the container name in bundle,
// which passes its standard streams on to the init: the gate, and the
// app's output.
func (d *Driver) ociRun(bundle, name string, gate *os.File, stdout io.Writer) *exec.Cmd {
	// Not CommandContext: the process outlives the request that starts it.
	cmd := exec.Command(d.ociPath, "--root", d.ociRoot, "--log", filepath.Join(bundle, "runc.log"),
		"run", "--bundle", bundle, "--pid-file", filepath.Join(bundle, "pid"), name)
	cmd.Stdin = gate
	if stdout != nil {
		cmd.Stdout, cmd.Stderr = stdout, stdout
	}
	cmd.WaitDelay = waitDelay
	// Its own process group: a terminal's ^C must reach Hangar only, which
	// then stops executors in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// initScript is the executor's PID 1, a shell that runs the app as its
// child. The kernel drops signals to a namespace's init that has no
// handler for them, so an app run as PID 1 would ignore SIGTERM (and
// `kill $$` in it would do nothing); this init forwards the usual signals,
// reaps orphans (the shell's wait collects any child) and exits with the
// app's status, 128+n when signal n killed it. It first waits for a line
// on its standard input, the gate Start opens once the executor's relays
// listen, and exits if the gate closes unopened; the app's own standard
// input is /dev/null.
const initScript = `read -r gate || exit 1
"$@" </dev/null &
child=$!
for s in TERM INT HUP QUIT USR1 USR2; do trap "kill -$s $child 2>/dev/null" $s; done
while :; do
	wait $child
	status=$?
	kill -0 $child 2>/dev/null || exit $status
done`

// writeBundle creates the bundle directory: the read-only bind of / that
// becomes the container's root, and config.json.
func (d *Driver) writeBundle(ctx context.Context, bundle string, e *executor, spec runtime.Spec) error {
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o700); err != nil {
		return err
	}
	if d.cfg.Images != nil && spec.Image.AppID != "" {
		return d.writeImageBundle(ctx, bundle, e, spec)
	}
	if err := bindRootfs(rootfs); err != nil {
		return fmt.Errorf("bind the root filesystem: %w", err)
	}
	for name, content := range etcFiles(spec.ID, e.Network.Gateway) {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o644); err != nil {
			return err
		}
	}
	if err := shareDir(spec.Dir, d.cfg.GID); err != nil {
		return fmt.Errorf("open app folder to the executor: %w", err)
	}
	hidden := existingDirs(d.hidden)
	veils := map[string]string{}
	for i, h := range hidden {
		if within(filepath.Clean(spec.Dir), h) {
			veils[h] = filepath.Join(bundle, "veil", strconv.Itoa(i))
			if err := os.MkdirAll(veils[h], 0o755); err != nil {
				return err
			}
		}
	}
	p := d.specParams(bundle, e, spec)
	p.Rootfs, p.Dir, p.Hidden, p.Veils = rootfs, filepath.Clean(spec.Dir), hidden, veils
	return writeSpec(bundle, ociSpec(p))
}

// specParams returns the parts of an executor's spec that do not depend
// on its root filesystem.
func (d *Driver) specParams(bundle string, e *executor, spec runtime.Spec) specParams {
	return specParams{
		ID:          spec.ID,
		Command:     append([]string{"/bin/sh", "-c", initScript, "init"}, spec.Command...),
		Env:         spec.Env,
		UID:         e.uid,
		GID:         d.cfg.GID,
		Netns:       vnet.Path(e.Name),
		CgroupsPath: d.containerGroup(e.ID),
		TmpMiB:      d.cfg.TmpMiB,
		Etc:         bundle,
	}
}

// writeSpec writes s as the bundle's config.json.
func writeSpec(bundle string, s *specs.Spec) error {
	b, err := json.MarshalIndent(s, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600)
}

// existingDirs returns the paths that are directories on the host, not
// through a symbolic link: runc cannot create a mount point in the
// read-only root, and a link would be followed inside it.
func existingDirs(paths []string) []string {
	var out []string
	for _, p := range paths {
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			out = append(out, p)
		}
	}
	return out
}

// waitPIDFile polls until runc has written the app's PID, which it does
// once the process runs, or runc exited first.
func waitPIDFile(ctx context.Context, path string, exited <-chan struct{}) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		if pid, err := readPID(path); err == nil {
			return pid, nil
		}
		select {
		case <-exited:
			// An app that exits at once may have run between the read
			// above and runc's exit: its PID file is there by now.
			if pid, err := readPID(path); err == nil {
				return pid, nil
			}
			return 0, errors.New("runc exited before the app started")
		case <-ctx.Done():
			return 0, fmt.Errorf("wait for runc to start the app: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// runcLogTail returns ": " and runc's last error in bundle, or "".
func runcLogTail(bundle string) string {
	b, err := os.ReadFile(filepath.Join(bundle, "runc.log"))
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return ": " + lines[len(lines)-1]
}

// reap waits for the runtime's run, which deletes the container (and its
// own group) as the app exits, reads the executor's group one last time,
// deletes what a killed or failed run left and records how the app ended.
func (d *Driver) reap(e *executor, cmd *exec.Cmd, memoryMiB int, logger *slog.Logger) {
	err := cmd.Wait()
	if _, ok := errors.AsType[*exec.ExitError](err); ok {
		err = nil // the exit code tells
	}
	st := runtime.Status{Err: err}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled(): // runc itself was killed: the app's status is lost
		st.ExitCode = 128 + int(ws.Signal())
		st.Err = errors.Join(st.Err, fmt.Errorf("runc killed by signal %v", ws.Signal()))
	default:
		// runc reports an app killed by signal n as 128+n, like a shell;
		// an app that exits with such a code itself looks the same.
		st.ExitCode = ws.ExitStatus()
		if n := st.ExitCode - 128; n > 0 && n < 65 {
			st.Err = errors.Join(st.Err, fmt.Errorf("killed by signal %v", syscall.Signal(n)))
		}
	}
	last, statsErr := d.cgroups.stats(d.cgroupPath(e.ID))
	last.OOMKills += e.oom.count()
	if statsErr == nil && last.OOMKills > 0 {
		st.OOMKilled = true
		st.Err = errors.Join(st.Err, fmt.Errorf("out of memory: killed for exceeding the memory limit of %d MiB", memoryMiB))
	}
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	if derr := d.deleteContainer(ctx, e.Name); derr != nil {
		logger.Error("delete container", "err", derr)
	}
	e.last, e.lastErr = last, statsErr
	e.Exit(st)
	logger.Info("executor exited", "exit_code", st.ExitCode, "oom_killed", st.OOMKilled, "err", st.Err,
		"cpu", last.CPU, "memory_bytes", last.MemoryBytes, "throttled", last.Throttled)
}

// Wait blocks until the executor's process exits. See runtime.Driver.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	return d.execs.Wait(ctx, id)
}

// Inspect reports the executor's state. See runtime.Driver.
func (d *Driver) Inspect(_ context.Context, id string) (runtime.Info, error) {
	return d.execs.Inspect(id)
}

// Stats reads the executor's cgroup. See runtime.Driver.
func (d *Driver) Stats(_ context.Context, id string) (runtime.Stats, error) {
	e, done, err := d.execs.Started(id)
	if err != nil {
		return runtime.Stats{}, err
	}
	select {
	case <-done:
		if e.lastErr != nil {
			return runtime.Stats{}, fmt.Errorf("stats of executor %s: %w", id, e.lastErr)
		}
		return e.last, nil
	default:
	}
	s, err := d.cgroups.stats(d.cgroupPath(id))
	if err != nil {
		return runtime.Stats{}, fmt.Errorf("stats of executor %s: %w", id, err)
	}
	s.OOMKills += e.oom.count()
	return s, nil
}

// Exec runs spec.Args in the executor's container with `runc exec`, which
// takes the process from the container's spec: the app's uid and gid, no
// capabilities, no_new_privs, its environment and working directory, and
// it joins the container's namespaces, seccomp filter and cgroups, so its
// limits bind the command too. runc makes the process a session leader:
// when ctx is done, its whole process group is killed. See runtime.Driver.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	e, err := d.execs.Running(id)
	if err != nil {
		return -1, err
	}
	// In the bundle, where Stop removes what an Exec it interrupts leaves.
	f, err := os.CreateTemp(e.bundle, execPIDPattern)
	if err != nil {
		return -1, fmt.Errorf("exec in executor %s: %w", id, err)
	}
	f.Close()
	pidFile := f.Name()
	defer os.Remove(pidFile)
	process, err := execProcess(e.bundle, spec.Args)
	if err != nil {
		return -1, fmt.Errorf("exec in executor %s: %w", id, err)
	}
	defer os.Remove(process)
	cmd := exec.CommandContext(ctx, d.ociPath, "--root", d.ociRoot, "exec", "--process", process, "--pid-file", pidFile, e.Name)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = waitDelay
	cmd.Cancel = func() error {
		// The runtime's exec stays until the process exits, so the PID
		// it wrote is not reused yet. It writes it just after the
		// process starts, which may already have run: wait for it a
		// little. Without one, killing the runtime is all there is to do.
		for range 100 {
			if pid, err := readPID(pidFile); err == nil {
				// runc makes the process a session leader, crun does
				// not: its group, if it has one, then its tree.
				_ = syscall.Kill(-pid, syscall.SIGKILL)
				killTree(pid)
				return nil
			}
			time.Sleep(10 * time.Millisecond)
		}
		return cmd.Process.Kill()
	}
	err = cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if _, ok := errors.AsType[*exec.ExitError](err); err != nil && !ok {
		return -1, fmt.Errorf("exec in executor %s: %w", id, err)
	}
	// runc reports a process killed by signal n as 128+n, as a shell does.
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() { // runc itself was killed
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// killTree kills process pid and its descendants. It stops them first,
// until no new one appears, so that none forks past the kill and escapes
// to the container's init.
func killTree(pid int) {
	stopped := map[int]bool{}
	for fresh := true; fresh; {
		fresh = false
		for _, p := range descendants(pid) {
			if !stopped[p] {
				stopped[p], fresh = true, true
				_ = syscall.Kill(p, syscall.SIGSTOP)
			}
		}
	}
	for p := range stopped {
		_ = syscall.Kill(p, syscall.SIGKILL)
	}
}

// descendants returns pid, if it runs, and the processes descended from
// it, from /proc.
func descendants(pid int) []int {
	children := map[int][]int{}
	alive := false
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(b, ')')
		fields := strings.Fields(string(b[i+1:]))
		if i < 0 || len(fields) < 2 {
			continue
		}
		p, err1 := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		pp, err2 := strconv.Atoi(fields[1])
		if err1 != nil || err2 != nil {
			continue
		}
		children[pp] = append(children[pp], p)
		alive = alive || p == pid
	}
	if !alive {
		return nil
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// execPIDPattern names the files in which the runtime's exec writes the
// PID of the process it starts, execPattern those and the processes' specs.
const execPIDPattern, execPattern = "exec-*.pid", "exec-*"

// execProcess writes the process spec of an exec of args into bundle: the
// app's own (its user, working directory, environment, capabilities and
// no_new_privs), which `exec --process` takes whole. runc would fill in the
// same from the container's spec; crun would run the command as uid 0, in
// /, with new privileges allowed.
func execProcess(bundle string, args []string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", err
	}
	var s specs.Spec
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	if s.Process == nil {
		return "", errors.New("the container's spec has no process")
	}
	p := *s.Process
	p.Args, p.Terminal = args, false
	if b, err = json.Marshal(p); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(bundle, "exec-*.json")
	if err != nil {
		return "", err
	}
	_, err = f.Write(b)
	return f.Name(), errors.Join(err, f.Close())
}

// readPID reads a PID file runc wrote; runc writes it whole (to a
// temporary file it then renames).
func readPID(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err == nil && pid <= 0 {
		err = fmt.Errorf("bad PID %d", pid)
	}
	return pid, err
}

// Stop sends SIGTERM to the app, SIGKILL to every process of the container
// once grace has passed (or ctx is done), then deletes the container and
// releases its bundle, cgroups, uid and network. See runtime.Driver. When
// releasing fails, the executor stays known and a later Stop retries.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	return d.execs.Stop(ctx, id,
		func(e *executor) error {
			d.terminate(ctx, e.Name, e.Done, grace)
			return nil
		},
		func(e *executor) error {
			e.oom.close()
			var errs []error
			if e.bundle != "" {
				if err := removeBundle(e.bundle); err != nil {
					errs = append(errs, err)
				}
			}
			if err := d.net.Teardown(ctx, e.Name); err != nil {
				errs = append(errs, err)
			}
			// Only its own groups: removing the parent here would race
			// with a runc creating another executor's group below it.
			if err := d.cgroups.removeGroups(d.containerGroup(id), d.cgroupPath(id)); err != nil {
				errs = append(errs, err)
			}
			return errors.Join(errs...)
		})
}

// terminate signals the container and waits until runc run is reaped,
// which includes deleting the container.
func (d *Driver) terminate(ctx context.Context, name string, done <-chan struct{}, grace time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	// Errors are expected when the app exits meanwhile; what matters is
	// that done closes, and SIGKILL below makes sure of it.
	if _, err := d.oci(kctx, "kill", name, "TERM"); err != nil {
		d.logger.DebugContext(ctx, "send SIGTERM", "executor", name, "err", err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-done:
		return
	case <-t.C:
	case <-ctx.Done():
	}
	if _, err := d.oci(kctx, "kill", "--all", name, "KILL"); err != nil {
		d.logger.DebugContext(ctx, "send SIGKILL", "executor", name, "err", err)
	}
	select {
	case <-done:
	case <-kctx.Done():
		// runc run hangs: deleting the container ends it.
		d.deleteContainer(context.Background(), name)
		<-done
	}
}

// deleteContainer kills and deletes container name; one already gone is
// fine. A run that ended by itself deleted its container, and the state
// with it: then no runtime process is started, which would only cost a
// deploy's step or an executor's exit its time.
func (d *Driver) deleteContainer(ctx context.Context, name string) error {
	gone := func() bool {
		_, err := os.Stat(filepath.Join(d.ociRoot, name))
		return errors.Is(err, fs.ErrNotExist)
	}
	if gone() {
		return nil
	}
	_, err := d.oci(ctx, "delete", "--force", name)
	// crun's run deletes the container as its app exits, which a
	// concurrent delete may meet half-way.
	if err == nil || isNotExist(err) || gone() {
		return nil
	}
	return err
}

// Cleanup removes what a previous run of an instance with the same Prefix
// (and so the same state dir) left behind after a crash: its containers,
// bundles, network namespaces and cgroups. Executors of this driver are
// left alone. Call it at start-up, before the first Prepare.
func (d *Driver) Cleanup(ctx context.Context) error {
	ours := d.execs.Names()
	var errs []error
	n := 0
	out, err := d.oci(ctx, "list", "--quiet")
	if err != nil {
		errs = append(errs, err)
	}
	for _, name := range strings.Fields(string(out)) {
		if strings.HasPrefix(name, d.net.Prefix()+"-") && !ours[name] {
			if err := d.deleteContainer(ctx, name); err != nil {
				errs = append(errs, err)
			}
			n++
		}
	}
	entries, err := os.ReadDir(d.bundles)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, ent := range entries {
		if !ours[ent.Name()] {
			if err := removeBundle(filepath.Join(d.bundles, ent.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	steps, err := os.ReadDir(filepath.Join(d.cfg.StateDir, "steps"))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, ent := range steps {
		if err := removeStepBundle(filepath.Join(d.cfg.StateDir, "steps", ent.Name())); err != nil {
			errs = append(errs, err)
		}
		n++
	}
	names, err := d.net.Leftovers(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, ns := range names {
		if ours[ns] {
			continue
		}
		id := strings.TrimPrefix(ns, d.net.Prefix()+"-")
		if err := d.net.Teardown(ctx, ns); err != nil {
			errs = append(errs, err)
		}
		if err := d.cgroups.removeGroups(d.containerGroup(id), d.cgroupPath(id)); err != nil {
			errs = append(errs, err)
		}
		n++
	}
	// The driver's parent group goes here, when none of its executors
	// runs; "/hangar", which every Hangar process on the host shares,
	// stays.
	if err := d.cgroups.removeGroups(d.cgroupParent()); err != nil {
		errs = append(errs, err)
	}
	if n > 0 {
		d.logger.InfoContext(ctx, "removed leftover executors", "count", n)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up executors: %w", err)
	}
	return nil
}

// Close removes what the driver made for itself once its executors and
// steps are stopped (a server's fleet stops them as it closes): its parent
// cgroup group and its state dirs, each only if nothing is left in it.
func (d *Driver) Close() error {
	errs := []error{d.cgroups.removeGroups(d.cgroupParent())}
	for _, dir := range []string{d.bundles, filepath.Join(d.cfg.StateDir, "steps"), d.ociRoot, d.cfg.StateDir} {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeBundle unmounts a bundle's root filesystem and removes the bundle.
// It removes known files one by one and never recursively: should the
// unmount not have happened, a recursive removal would walk the host's /.
func removeBundle(bundle string) error {
	rootfs := filepath.Join(bundle, "rootfs")
	if err := unmount(rootfs); err != nil {
		return fmt.Errorf("unmount %s: %w", rootfs, err)
	}
	var errs []error
	// Only runc's mount points are in veil, and it was never mounted on
	// the host: a recursive removal stays inside.
	if err := os.RemoveAll(filepath.Join(bundle, "veil")); err != nil {
		errs = append(errs, err)
	}
	// The files of commands Exec ran when Stop interrupted them.
	pidFiles, _ := filepath.Glob(filepath.Join(bundle, execPattern))
	for _, f := range pidFiles {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, name := range []string{"config.json", "hosts", "resolv.conf", "pid", "runc.log", "rootfs", ""} {
		if err := os.Remove(filepath.Join(bundle, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// runcError is a failed runc command with its stderr.
type runcError struct {
	args   []string
	stderr string
	err    error
}

func (e *runcError) Error() string {
	return fmt.Sprintf("runc %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *runcError) Unwrap() error { return e.err }

// isNotExist reports whether err is the runtime's complaint that the
// container does not exist: runc's, or crun's about its state file.
func isNotExist(err error) bool {
	re, ok := errors.AsType[*runcError](err)
	return ok && (strings.Contains(re.stderr, "does not exist") ||
		strings.Contains(re.stderr, "/status`: No such file or directory"))
}

// oci runs a short command of the OCI runtime against the driver's state
// root.
func (d *Driver) oci(ctx context.Context, args ...string) ([]byte, error) {
	var stdout, stderr strings.Builder
	cmd := exec.CommandContext(ctx, d.ociPath, append([]string{"--root", d.ociRoot}, args...)...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return nil, &runcError{args: args, stderr: strings.TrimSpace(stderr.String()), err: err}
	}
	return []byte(stdout.String()), nil
}
