package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
	"github.com/hangar-oss/hangar/internal/seccomp"
)

// step is one tenant-controlled build command (setup, an install, a build
// script, a migration) run by RunStep in a container of its own.
type step struct {
	// ID names the step's container and cgroup: 1 to 40 characters of
	// a-z, 0-9 and -, unique among the steps running at once.
	ID string
	// Root is the image's root filesystem (the base), seen read-only.
	Root string
	// Lowers are setup layers stacked on Root, topmost first, read-only.
	Lowers []string
	// Layer, when set, is the directory that receives what the step
	// writes to its root filesystem (setup): the step runs on an overlay
	// of the image with Layer/upper as its upper directory.
	Layer string
	// Binds are host directories bound read-only into the root (the
	// toolchains); their targets must exist in the image.
	Binds []runtime.Mount
	// Mounts are bound after /tmp, by runc.
	Mounts []runtime.Mount
	// Dir is the app folder, bound read-write at runtime.AppDir, the working
	// directory. RunStep hands its files to the step's uid range first.
	Dir string
	// Args is the argv; Env the complete environment.
	Args []string
	Env  []string
	// UIDBase is the first host uid (and gid) of the app's range: root in
	// the step's user namespace is UIDBase, and the range has 65536 ids.
	UIDBase uint32
	// MemoryBytes, CPUs and Pids limit the step's cgroup. Defaults 2 GiB,
	// the driver's CPUs and 4096.
	MemoryBytes int64
	CPUs        float64
	Pids        int64
	// TmpMiB is the size of the step's /tmp, counted against its memory.
	// Default 512.
	TmpMiB int
	// Timeout bounds the step; zero means only ctx bounds it.
	Timeout time.Duration
	// Netns is the path of a network namespace to join, and Gateway the
	// address of its resolver. Default: a new namespace with only a
	// loopback interface.
	Netns, Gateway string
	// Ready, when set, is waited for before the command starts: the
	// namespace's resolver, relays and firewall, which start meanwhile.
	Ready func() error
	// Stdout receives the step's standard output and error. Nil discards
	// them.
	Stdout io.Writer
}

// ErrStepTimeout reports a step killed for running past step.Timeout.
var ErrStepTimeout = errors.New("step timed out")

// RangeSize is the number of uids (and gids) of an app's range.
const RangeSize = 65536

var stepIDPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,39}$`)

// runStep runs s in a container of its own and returns its exit code
// (128+n when signal n killed it). Root in the container is the app's
// range, with its own PID, mount, IPC, UTS, network and user namespaces,
// no_new_privs, the executors' seccomp filter and s's cgroup limits. Only
// Dir, /tmp and, for a step with a Layer, the image are writable. Every
// process of the step is killed when it ends, by its init's exit (its PID
// namespace dies with it) and then runc kills the cgroup. It returns
// ErrStepTimeout when s.Timeout passed and ctx.Err() when ctx ended first;
// a step that cannot be started is an internal error.
// size: the step container's spec and its run, in order.
func (d *Driver) runStep(ctx context.Context, s step) (int, error) {
	if !stepIDPattern.MatchString(s.ID) || len(s.Args) == 0 || s.Dir == "" || s.Root == "" {
		return -1, hangar.Errorf(hangar.KindInvalid, "step %q: bad spec", s.ID)
	}
	if s.MemoryBytes == 0 {
		s.MemoryBytes = 2 << 30
	}
	if s.CPUs == 0 {
		s.CPUs = d.cfg.CPUs
	}
	if s.Pids == 0 {
		s.Pids = 4096
	}
	if s.TmpMiB == 0 {
		s.TmpMiB = 512
	}
	name := d.cfg.Prefix + "-s-" + s.ID
	bundle := filepath.Join(d.cfg.StateDir, "steps", name)
	if err := makeSearchable(bundle); err != nil {
		return -1, fmt.Errorf("step %s: %w", s.ID, err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		// A step that was killed, or failed, may have left its container.
		if err := d.deleteContainer(cctx, name); err != nil {
			d.logger.Error("delete step container", "step", s.ID, "err", err)
		}
		if err := d.cgroups.removeGroups(d.cgroupPath("s-" + s.ID)); err != nil {
			d.logger.Error("remove step cgroup", "step", s.ID, "err", err)
		}
		if err := removeStepBundle(bundle); err != nil {
			d.logger.Error("remove step bundle", "step", s.ID, "err", err)
		}
	}()
	// runc binds Dir as the step's root, a uid that must traverse its
	// parents (a staging folder of the dependency cache is 0700).
	if err := makeSearchable(filepath.Dir(s.Dir)); err != nil {
		return -1, fmt.Errorf("step %s: %w", s.ID, err)
	}
	if err := shiftTree(s.Dir, s.UIDBase, d.cfg.GID); err != nil {
		return -1, fmt.Errorf("step %s: hand the app folder to its uid range: %w", s.ID, err)
	}
	if err := d.stepRootfs(bundle, s); err != nil {
		return -1, fmt.Errorf("step %s: root filesystem: %w", s.ID, err)
	}
	for name, content := range map[string]string{
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n",
		"resolv.conf": stepResolvConf(s.Gateway),
	} {
		if err := os.WriteFile(filepath.Join(bundle, name), []byte(content), 0o644); err != nil {
			return -1, fmt.Errorf("step %s: %w", s.ID, err)
		}
	}
	b, err := json.MarshalIndent(stepSpec(s, filepath.Join(bundle, "rootfs"), bundle, d.cgroupPath("s-"+s.ID)), "", "\t")
	if err != nil {
		return -1, err
	}
	if err := os.WriteFile(filepath.Join(bundle, "config.json"), b, 0o600); err != nil {
		return -1, fmt.Errorf("step %s: %w", s.ID, err)
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if s.Timeout > 0 {
		runCtx, cancel = context.WithTimeout(ctx, s.Timeout)
	}
	defer cancel()
	cmd := exec.Command(d.ociPath, "--root", d.ociRoot, "--log", filepath.Join(bundle, "runc.log"),
		"run", "--bundle", bundle, name)
	out := s.Stdout
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = waitDelay
	if s.Ready != nil {
		if err := s.Ready(); err != nil {
			return -1, fmt.Errorf("step %s: network: %w", s.ID, err)
		}
	}
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("step %s: run runc: %w", s.ID, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-runCtx.Done():
		kctx, kcancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		if _, kerr := d.oci(kctx, "kill", "--all", name, "KILL"); kerr != nil {
			d.logger.Debug("kill step", "step", s.ID, "err", kerr)
		}
		kcancel()
		select {
		case <-done:
		case <-time.After(cleanupTimeout):
			_ = cmd.Process.Kill()
			<-done
		}
		if ctx.Err() != nil {
			return -1, ctx.Err()
		}
		return -1, ErrStepTimeout
	}
	if _, ok := errors.AsType[*exec.ExitError](err); err != nil && !ok {
		return -1, fmt.Errorf("step %s: %w%s", s.ID, err, runcLogTail(bundle))
	}
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return 128 + int(ws.Signal()), nil
	}
	return ws.ExitStatus(), nil
}

// stepResolvConf is the step's /etc/resolv.conf: its gateway's resolver,
// or none without a network.
func stepResolvConf(gateway string) string {
	if gateway != "" {
		return vnet.ResolvConf(gateway)
	}
	return "# No network.\nnameserver 127.0.0.1\noptions timeout:1 attempts:1\n"
}

// stepCaps are the capabilities of a step's root inside its user
// namespace, Docker's default set: enough for apt and dpkg in setup, and
// powerless over anything the app's uid range does not own.
var stepCaps = []string{
	"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
	"CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
}

// stepSpec returns the OCI spec of step s.
func stepSpec(s step, rootfs, bundle, cgroupsPath string) *specs.Spec {
	memory := s.MemoryBytes
	quota := int64(s.CPUs * cpuPeriod)
	period := uint64(cpuPeriod)
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("size=%dm", s.TmpMiB)}},
		{Destination: runtime.AppDir, Type: "bind", Source: s.Dir, Options: []string{"rbind", "rw", "nosuid", "nodev"}},
	}
	for _, f := range []string{"hosts", "resolv.conf"} {
		ms = append(ms, specs.Mount{Destination: "/etc/" + f, Type: "bind", Source: filepath.Join(bundle, f), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	}
	for _, m := range s.Mounts {
		mode := "ro"
		if m.Writable {
			mode = "rw"
		}
		ms = append(ms, specs.Mount{Destination: m.Target, Type: "bind", Source: m.Source, Options: []string{"rbind", mode, "nosuid", "nodev"}})
	}
	namespaces := []specs.LinuxNamespace{
		{Type: specs.UserNamespace},
		{Type: specs.PIDNamespace},
		{Type: specs.NetworkNamespace, Path: s.Netns},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
	}
	idMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: s.UIDBase, Size: RangeSize}}
	return &specs.Spec{
		Version: ociVersion,
		Process: &specs.Process{
			User: specs.User{UID: 0, GID: 0},
			Args: s.Args,
			Env:  s.Env,
			Cwd:  runtime.AppDir,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: stepCaps, Effective: stepCaps, Permitted: stepCaps, Inheritable: []string{}, Ambient: []string{},
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: rootfs, Readonly: s.Layer == ""},
		Hostname: "build",
		Mounts:   ms,
		Linux: &specs.Linux{
			UIDMappings: idMap,
			GIDMappings: idMap,
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memory, Swap: &memory},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:    &specs.LinuxPids{Limit: s.Pids},
			},
			CgroupsPath: cgroupsPath,
			Namespaces:  namespaces,
			Seccomp:     seccomp.Profile(),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// shiftTree hands the files of dir that lie outside the uid range at base
// to the range's root, so that the step's root may change them. A group
// of shared, the executors' (shareDir), is kept: an executor started
// while the migrations run (runtime.Forward.Hold) keeps its folder. It
// never follows symbolic links.
func shiftTree(dir string, base, shared uint32) error {
	inRange := func(id uint32) bool { return id >= base && id-base < RangeSize }
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok || inRange(st.Uid) && (inRange(st.Gid) || st.Gid == shared) {
			return nil
		}
		gid := int(base)
		if st.Gid == shared {
			gid = -1
		}
		return os.Lchown(path, int(base), gid)
	})
}

// makeSearchable creates dir and lets anyone traverse it and its parents
// (not list them): runc sets up the root filesystem as the step's root,
// an unprivileged uid on the host.
func makeSearchable(dir string) error {
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	for p := dir; p != "/"; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o111); err != nil {
				return err
			}
		}
	}
	return nil
}
