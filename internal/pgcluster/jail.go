package pgcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hangar-oss/hangar/internal/relay"
	"github.com/hangar-oss/hangar/internal/seccomp"
)

// Sandbox runs every program of a cluster (initdb, postgres, pg_basebackup
// and what the server itself spawns: archive_command, COPY … TO PROGRAM)
// under runc, in a container of its own: its own uid, no capabilities,
// no_new_privs, a seccomp filter, its own PID, IPC, UTS, mount and network
// namespaces and cgroup limits. The container's file system holds only the
// cluster's DataDir (read-write, at the same path as on the host), the
// PostgreSQL installation and the shared libraries (read-only), a shell and
// the few programs the WAL archive commands use, and an /etc/passwd of one
// line; its network is a loopback interface of its own. The server is
// reached through its Unix socket in DataDir (URL) and through Dial, which
// connects to its TCP port inside that network.
type Sandbox struct {
	// ID names the server's container and cgroup; helper containers add
	// the program's name (-initdb, -pg_basebackup). Required: [A-Za-z0-9_.-], at most 100 bytes.
	ID string
	// UID and GID the cluster's programs run as; required, not 0. No
	// /etc/passwd entry on the host is needed: the container has its own.
	UID, GID uint32
	// BundleDir holds the OCI bundles and the container's root file
	// system; required. It must not be inside DataDir: the cluster's uid
	// must not write it.
	BundleDir string
	// CgroupParent is the cgroup the containers' cgroups are created under.
	// Default "/hangar-db".
	CgroupParent string
	// MemoryBytes, CPUs and Pids limit the server's container. Defaults
	// 1 GiB, 1 CPU, 512 processes.
	MemoryBytes int64
	CPUs        float64
	Pids        int64
	// Runc is the runc binary. Default "runc" on PATH.
	Runc string
	// RuncRoot is runc's state directory. Default "/run/hangar-db".
	RuncRoot string
}

// sandboxPort is the port the server listens on inside its own network.
const sandboxPort = 5432

// jail runs a cluster's programs in its Sandbox.
type jail struct {
	sb      Sandbox
	dataDir string
	binDir  string
	rootfs  string
}

func newJail(sb Sandbox, dataDir, binDir string) (*jail, error) {
	if sb.ID == "" || len(sb.ID) > 100 || strings.Trim(sb.ID, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
		return nil, fmt.Errorf("invalid sandbox ID %q", sb.ID)
	}
	if sb.UID == 0 || sb.GID == 0 {
		return nil, errors.New("the sandbox's UID and GID must not be 0")
	}
	if !filepath.IsAbs(sb.BundleDir) || within(sb.BundleDir, dataDir) {
		return nil, fmt.Errorf("sandbox bundle dir %q must be absolute and outside the data dir", sb.BundleDir)
	}
	if sb.CgroupParent == "" {
		sb.CgroupParent = "/hangar-db"
	}
	if sb.MemoryBytes == 0 {
		sb.MemoryBytes = 1 << 30
	}
	if sb.CPUs == 0 {
		sb.CPUs = 1
	}
	if sb.Pids == 0 {
		sb.Pids = 512
	}
	if sb.RuncRoot == "" {
		sb.RuncRoot = "/run/hangar-db"
	}
	if sb.Runc == "" {
		sb.Runc = "runc"
	}
	p, err := exec.LookPath(sb.Runc)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	sb.Runc = p
	return &jail{sb: sb, dataDir: dataDir, binDir: binDir, rootfs: filepath.Join(sb.BundleDir, "rootfs")}, nil
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}

// prepareRootfs creates the container's root: empty but for /etc/passwd,
// /etc/group and the /bin, /lib… links of a merged-/usr system. Everything
// else is mounted (see spec).
func (j *jail) prepareRootfs() error {
	etc := filepath.Join(j.rootfs, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("sandbox root: %w", err)
	}
	files := map[string]string{
		"passwd": fmt.Sprintf("postgres:x:%d:%d:PostgreSQL:/nonexistent:/usr/sbin/nologin\n", j.sb.UID, j.sb.GID),
		"group":  fmt.Sprintf("postgres:x:%d:\n", j.sb.GID),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(data), 0o644); err != nil {
			return fmt.Errorf("sandbox root: %w", err)
		}
	}
	for _, d := range []string{"bin", "sbin", "lib", "lib64"} {
		target, err := os.Readlink("/" + d)
		if err != nil {
			continue // a real directory (mounted, see hostDirs) or absent
		}
		link := filepath.Join(j.rootfs, d)
		if cur, err := os.Readlink(link); err == nil && cur == target {
			continue
		}
		os.Remove(link)
		if err := os.Symlink(target, link); err != nil {
			return fmt.Errorf("sandbox root: %w", err)
		}
	}
	return nil
}

// hostDirs are the host directories the container sees, read-only, when
// they exist: the shared libraries, the C.UTF-8 locale and the time zone
// database (Debian's PostgreSQL uses the system's). /bin, /lib and /lib64
// are listed for systems without a merged /usr, where they are real
// directories.
var hostDirs = []string{
	"/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64", "/usr/lib/locale",
	"/usr/share/zoneinfo", "/lib", "/lib64",
}

// hostPrograms are what the WAL archive and restore commands run, besides
// the PostgreSQL programs: a shell and a few tools. COPY … TO PROGRAM can
// run them too, but inside the container.
var hostPrograms = []string{"sh", "cp", "mv", "sync", "gzip", "cat", "test"}

// mounts returns the container's mounts.
func (j *jail) mounts() []specs.Mount {
	ro := []string{"rbind", "ro", "nosuid", "nodev"}
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		// Dynamic shared memory (parallel queries); it counts against the
		// memory limit.
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=" + strconv.FormatInt(j.sb.MemoryBytes, 10)}},
	}
	// The PostgreSQL installation: bin, lib and share of every version.
	pgRoot := filepath.Dir(filepath.Dir(j.binDir)) // /usr/lib/postgresql
	dirs := []string{pgRoot}
	if share := "/usr/share/postgresql"; pgRoot == "/usr/lib/postgresql" {
		dirs = append(dirs, share)
	}
	for _, d := range append(dirs, hostDirs...) {
		if fi, err := os.Lstat(d); err != nil || !fi.IsDir() {
			continue // absent, or a link the root's own links cover
		}
		ms = append(ms, specs.Mount{Destination: d, Type: "bind", Source: d, Options: ro})
	}
	for _, prog := range hostPrograms {
		p, err := exec.LookPath(prog)
		if err != nil {
			continue
		}
		if p, err = filepath.EvalSymlinks(p); err != nil {
			continue
		}
		ms = append(ms, specs.Mount{Destination: "/usr/bin/" + prog, Type: "bind", Source: p, Options: []string{"bind", "ro", "nosuid", "nodev"}})
	}
	return append(ms, specs.Mount{Destination: j.dataDir, Type: "bind", Source: j.dataDir, Options: []string{"rbind", "rw", "nosuid", "nodev"}})
}

// spec returns the OCI spec of a container that runs args.
func (j *jail) spec(id string, args []string) *specs.Spec {
	noCaps := []string{}
	memory := j.sb.MemoryBytes
	period := uint64(100000)
	quota := int64(j.sb.CPUs * float64(period))
	pids := j.sb.Pids
	return &specs.Spec{
		Version: specs.Version,
		Process: &specs.Process{
			User: specs.User{UID: j.sb.UID, GID: j.sb.GID},
			Args: args,
			Env:  []string{"PATH=/usr/bin", "LANG=C.UTF-8", "HOME=" + j.dataDir},
			Cwd:  j.dataDir,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: noCaps, Effective: noCaps, Inheritable: noCaps, Permitted: noCaps, Ambient: noCaps,
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: j.rootfs, Readonly: true},
		Hostname: "postgres",
		Mounts:   j.mounts(),
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				Memory:  &specs.LinuxMemory{Limit: &memory, Swap: &memory},
				CPU:     &specs.LinuxCPU{Quota: &quota, Period: &period},
				Pids:    &specs.LinuxPids{Limit: pids},
			},
			CgroupsPath: j.sb.CgroupParent + "/" + id,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace}, // runc brings its loopback up
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			Seccomp: seccomp.Profile("unshare"),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
			},
			ReadonlyPaths: []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"},
		},
	}
}

// writeBundle writes the bundle of container id running args and returns
// its directory.
func (j *jail) writeBundle(id string, args []string) (string, error) {
	if err := j.prepareRootfs(); err != nil {
		return "", err
	}
	dir := filepath.Join(j.sb.BundleDir, id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("sandbox bundle: %w", err)
	}
	b, err := json.MarshalIndent(j.spec(id, args), "", "\t")
	if err != nil {
		return "", fmt.Errorf("sandbox bundle: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), b, 0o600); err != nil {
		return "", fmt.Errorf("sandbox bundle: %w", err)
	}
	return dir, nil
}

// runc runs a runc command and returns its combined output.
func (j *jail) runc(ctx context.Context, args ...string) ([]byte, error) {
	return j.runcCmd(ctx, args...).CombinedOutput()
}

// runcCmd is a runc command against the jail's state root.
func (j *jail) runcCmd(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, j.sb.Runc, append([]string{"--root", j.sb.RuncRoot}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs one program in a container of its own, as the runner of an
// unsandboxed cluster would, and returns its combined output. dir is
// ignored: programs start in DataDir. The container is gone on return.
func (j *jail) run(ctx context.Context, _ string, name string, args ...string) ([]byte, error) {
	id := j.sb.ID + "-" + filepath.Base(name)
	j.remove(ctx, id) // left by a crash
	bundle, err := j.writeBundle(id, append([]string{name}, args...))
	if err != nil {
		return nil, err
	}
	defer j.remove(context.WithoutCancel(ctx), id)
	cmd := j.runcCmd(ctx, "run", "--bundle", bundle, id)
	// Canceled, the program is killed through runc, so that `runc run`
	// sees it exit and deletes the container, its cgroup included. Killed
	// itself, runc would leave the cgroup to a delete that can come before
	// the program is gone (WaitDelay still kills it if this fails).
	cmd.Cancel = func() error {
		_, err := j.runc(context.WithoutCancel(ctx), "kill", id, "KILL")
		return err
	}
	return cmd.CombinedOutput()
}

// start starts the server's container in the background, with its output
// appended to logFile.
func (j *jail) start(ctx context.Context, args []string, logFile string) error {
	j.remove(ctx, j.sb.ID)
	bundle, err := j.writeBundle(j.sb.ID, args)
	if err != nil {
		return err
	}
	// Not through a link the server's user put there: that would hand it
	// another file open for writing.
	log, err := os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if errors.Is(err, syscall.ELOOP) { // a link: start a new log
		os.Remove(logFile)
		log, err = os.OpenFile(logFile, os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	}
	if err != nil {
		return fmt.Errorf("open server log: %w", err)
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, j.sb.Runc, "--root", j.sb.RuncRoot, "run", "--detach", "--bundle", bundle, j.sb.ID)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("runc run %s: %w", j.sb.ID, err)
	}
	return nil
}

// state returns the server container's init PID and whether it runs; pid
// 0 when there is no such container. A stopped container is deleted.
func (j *jail) state(ctx context.Context) (pid int, err error) {
	// The JSON alone: what runc (a Go program) prints on stderr, such as
	// the runtime's traces when GODEBUG asks for them, is not part of it.
	var stderr strings.Builder
	cmd := j.runcCmd(ctx, "state", j.sb.ID)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		if strings.Contains(stderr.String(), "does not exist") {
			return 0, nil
		}
		return 0, fmt.Errorf("runc state %s: %w\n%s", j.sb.ID, err, stderr.String())
	}
	var st struct {
		Status string `json:"status"`
		Pid    int    `json:"pid"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return 0, fmt.Errorf("runc state %s: %w", j.sb.ID, err)
	}
	if st.Status != "running" {
		j.remove(ctx, j.sb.ID)
		return 0, nil
	}
	return st.Pid, nil
}

// signal sends sig (a name such as INT) to the server.
func (j *jail) signal(ctx context.Context, sig string) error {
	if out, err := j.runc(ctx, "kill", j.sb.ID, sig); err != nil {
		return fmt.Errorf("runc kill %s %s: %w\n%s", j.sb.ID, sig, err, out)
	}
	return nil
}

// remove deletes container id, killing what still runs in it; a missing
// container is not an error.
func (j *jail) remove(ctx context.Context, id string) {
	j.runc(ctx, "delete", "--force", id)
}

// Dial connects to the server's TCP port inside its sandbox's network (its
// only TCP listener): the public endpoint, where only TLS is accepted. It
// needs Config.Sandbox and a running server.
func (c *Cluster) Dial(ctx context.Context) (net.Conn, error) {
	if c.jail == nil {
		return nil, errors.New("pgcluster: Dial needs a sandbox")
	}
	c.mu.Lock()
	pid := c.pid
	c.mu.Unlock()
	if pid == 0 {
		return nil, errors.New("pgcluster: server not running")
	}
	return relay.DialIn(ctx, pid, "127.0.0.1:"+strconv.Itoa(sandboxPort))
}
