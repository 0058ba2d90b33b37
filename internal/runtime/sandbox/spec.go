package sandbox

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
	"github.com/hangar-oss/hangar/internal/seccomp"
)

// This file builds the OCI runtime spec of an executor. It is pure, so that
// the whole spec is golden-tested without root.

// ociVersion is the runtime-spec version the specs declare: what both
// runtimes know (crun 1.8 refuses the Go module's 1.2.x), and all these
// specs use.
const ociVersion = "1.0.2"

// cpuPeriod is the CFS period; the quota is CPUs times this.
const cpuPeriod = 100_000 // µs

// specParams is everything that varies between executors' specs.
type specParams struct {
	// ID is the executor ID, used as the hostname.
	ID string
	// Rootfs is the read-only bind of the host's / that becomes the root.
	Rootfs string
	// Dir is the app folder, bound read-write at its own path (or from
	// DirSource) and the working directory.
	Dir       string
	DirSource string
	// Binds are read-only binds (toolchains on an image).
	Binds   []runtime.Mount
	Command []string
	Env     []string
	UID     uint32
	GID     uint32
	// Netns is the path of the network namespace to join.
	Netns string
	// CgroupsPath is the container's own group, from the hierarchies'
	// roots, inside the executor's group that holds its limits.
	CgroupsPath string
	TmpMiB      int
	// Hidden lists the directories covered by an empty tmpfs. The caller
	// passes only directories that exist on the host.
	Hidden []string
	// Veils maps the hidden paths that contain Dir to empty directories of
	// the bundle, bound over them instead of a tmpfs: runc gives a tmpfs
	// the mode of the directory it covers, and a data dir of mode 700
	// would bar the app from its own folder.
	Veils map[string]string
	// Etc is the bundle directory that holds the executor's own hosts and
	// resolv.conf.
	Etc string
}

// ociSpec returns the executor's spec: runc's default spec (mounts, masked
// and read-only /proc paths, minimal /dev) hardened with a non-root user,
// no capabilities, no_new_privs and a seccomp filter, on a read-only root
// where the hidden paths are empty, /tmp is private and only the app
// folder is writable.
func ociSpec(p specParams) *specs.Spec {
	env := slices.Clone(p.Env)
	// runc sets HOME from the user's passwd entry when the environment
	// lacks it, which for an unnamed uid is "/", not writable: point it at
	// the private /tmp, where npm and friends may keep caches.
	if !slices.ContainsFunc(env, func(kv string) bool { return strings.HasPrefix(kv, "HOME=") }) {
		env = append(env, "HOME=/tmp")
	}
	noCaps := []string{}
	return &specs.Spec{
		Version: ociVersion,
		Process: &specs.Process{
			User: specs.User{UID: p.UID, GID: p.GID},
			Args: p.Command,
			Env:  env,
			Cwd:  p.Dir,
			Capabilities: &specs.LinuxCapabilities{
				Bounding: noCaps, Effective: noCaps, Inheritable: noCaps, Permitted: noCaps, Ambient: noCaps,
			},
			NoNewPrivileges: true,
		},
		Root:     &specs.Root{Path: p.Rootfs, Readonly: true},
		Hostname: p.ID,
		Mounts:   mounts(p),
		Linux: &specs.Linux{
			Resources: &specs.LinuxResources{
				Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
				// Memory, CPU and pids are limited by the group this
				// one is created in (makeGroup).
			},
			CgroupsPath: p.CgroupsPath,
			Namespaces: []specs.LinuxNamespace{
				{Type: specs.PIDNamespace},
				{Type: specs.NetworkNamespace, Path: p.Netns},
				{Type: specs.IPCNamespace},
				{Type: specs.UTSNamespace},
				{Type: specs.MountNamespace},
			},
			Seccomp: seccomp.Profile(),
			MaskedPaths: []string{
				"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
				"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
			},
			ReadonlyPaths: []string{
				"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
			},
		},
	}
}

// mounts returns runc's default mounts, then the hidden paths, /tmp and the
// app folder. Order matters: runc mounts in order and creates missing mount
// points in what is already mounted, so the app folder comes last, when
// the tmpfs above it (a hidden path or /tmp) is in place: the read-only
// root could not take a new directory.
func mounts(p specParams) []specs.Mount {
	ms := []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc"},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		// The app may read its own limits (Node sizes its heap from them).
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
	hidden := slices.Clone(p.Hidden)
	slices.Sort(hidden) // parents first
	for _, h := range hidden {
		if src, ok := p.Veils[h]; ok {
			// Owned by root, mode 755: traversable, not writable to the
			// app, and runc can create the app folder's mount point in it.
			ms = append(ms, specs.Mount{Destination: h, Type: "bind", Source: src, Options: []string{"bind", "nosuid", "nodev", "noexec"}})
			continue
		}
		ms = append(ms, specs.Mount{Destination: h, Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "noexec", "size=64k"}})
	}
	// The host's /etc/hosts lacks the executor's hostname, and its
	// nameservers are out of reach (executors have no route out): every
	// lookup would wait for a timeout, as Python's HTTP server does at
	// start for its own name. These make the name known and other lookups
	// fail at once.
	for _, f := range []string{"hosts", "resolv.conf"} {
		ms = append(ms, specs.Mount{Destination: "/etc/" + f, Type: "bind", Source: filepath.Join(p.Etc, f), Options: []string{"bind", "ro", "nosuid", "nodev", "noexec"}})
	}
	ms = append(ms,
		specs.Mount{Destination: "/tmp", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev", "mode=1777", fmt.Sprintf("size=%dm", p.TmpMiB)}},
		specs.Mount{Destination: p.Dir, Type: "bind", Source: cmp.Or(p.DirSource, p.Dir), Options: []string{"rbind", "rw", "nosuid", "nodev"}},
	)
	for _, b := range p.Binds {
		ms = append(ms, specs.Mount{Destination: b.Target, Type: "bind", Source: b.Source, Options: []string{"rbind", "ro", "nosuid", "nodev"}})
	}
	return ms
}

// cleanPaths returns paths cleaned, without duplicates and without "/",
// which would hide everything.
func cleanPaths(paths []string) ([]string, error) {
	var out []string
	for _, p := range paths {
		if !filepath.IsAbs(p) {
			return nil, fmt.Errorf("hidden path %q is not absolute", p)
		}
		p = filepath.Clean(p)
		if p == "/" {
			return nil, fmt.Errorf("hidden path / would hide the whole root filesystem")
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// etcFiles returns the contents of the /etc/hosts and /etc/resolv.conf of
// executor id, whose gateway is gateway.
func etcFiles(id, gateway string) map[string]string {
	return map[string]string{
		"hosts":       "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t" + id + "\n",
		"resolv.conf": vnet.ResolvConf(gateway),
	}
}

// within reports whether path is dir or inside it.
func within(path, dir string) bool {
	return path == dir || strings.HasPrefix(path, strings.TrimSuffix(dir, "/")+"/")
}
