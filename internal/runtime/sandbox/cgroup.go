package sandbox

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
	"golang.org/x/sys/unix"
)

// An executor's limits live in a group Hangar makes (makeGroup), and the
// OCI runtime puts the container in a group of its own inside it (the
// spec's cgroupsPath, with no limits). The limits and counters (OOM kills,
// CPU, peak memory) thus outlive the container's group, which a runtime
// may remove as the app exits (crun always does, runc unless --keep). This
// file makes those groups, reads them and removes them. It finds the
// hierarchies in /proc/self/mountinfo rather than assuming
// /sys/fs/cgroup/<controller>.

// hierarchies says where the cgroup controllers Hangar reads are mounted.
type hierarchies struct {
	// v1 maps a v1 controller (memory, cpu, cpuacct, pids) to its mount
	// point.
	v1 map[string]string
	// unified is the cgroup2 mount point, "" without one.
	unified string
	// all lists every cgroup mount point, v1 and v2, for removing
	// leftover groups.
	all []string
	// unifiedControllers are the controllers of the cgroup2 mount.
	unifiedControllers []string
}

// crunCan reports whether crun runs on these hierarchies: it refuses a
// hybrid layout (v1 controllers beside a cgroup2 mount) whose unified
// hierarchy holds controllers, which systemd's hybrid layout never does.
func (h hierarchies) crunCan() bool {
	return h.v2() || len(h.unifiedControllers) == 0
}

// v2 reports whether the controllers live in the unified hierarchy. On a
// hybrid host (v1 controllers and a cgroup2 mount without them) runc uses
// v1, and so does this.
func (h hierarchies) v2() bool { return h.v1["memory"] == "" && h.unified != "" }

// parseMountinfo finds the cgroup mounts in /proc/self/mountinfo.
func parseMountinfo(b []byte) hierarchies {
	h := hierarchies{v1: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// 34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 3 || f[3] != "/" {
			continue // a bind of a subgroup, not a hierarchy's root
		}
		switch g[0] {
		case "cgroup2":
			h.unified = f[4]
		case "cgroup":
			for _, opt := range strings.Split(g[2], ",") {
				switch opt {
				case "memory", "cpu", "cpuacct", "pids":
					h.v1[opt] = f[4]
				}
			}
		default:
			continue
		}
		h.all = append(h.all, f[4])
	}
	return h
}

func readHierarchies() (hierarchies, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return hierarchies{}, err
	}
	h := parseMountinfo(b)
	if h.unified != "" {
		c, err := os.ReadFile(filepath.Join(h.unified, "cgroup.controllers"))
		if err != nil {
			return h, err
		}
		h.unifiedControllers = strings.Fields(string(c))
	}
	return h, nil
}

// stats reads the accounting of cgroup path (as in the spec's cgroupsPath).
func (h hierarchies) stats(path string) (runtime.Stats, error) {
	if h.v2() {
		return statsV2(filepath.Join(h.unified, path))
	}
	if h.v1["memory"] == "" || h.v1["cpu"] == "" || h.v1["cpuacct"] == "" {
		return runtime.Stats{}, errors.New("no cgroup memory, cpu and cpuacct controllers found")
	}
	s, err := statsV1(filepath.Join(h.v1["memory"], path), filepath.Join(h.v1["cpu"], path), filepath.Join(h.v1["cpuacct"], path))
	if err != nil || h.v1["pids"] == "" {
		return s, err // without the pids controller, Pids stays 0
	}
	s.Pids, err = readUint(filepath.Join(h.v1["pids"], path, "pids.current"))
	return s, err
}

func statsV1(memory, cpu, cpuacct string) (runtime.Stats, error) {
	var s runtime.Stats
	var err error
	if s.MemoryBytes, err = readUint(filepath.Join(memory, "memory.usage_in_bytes")); err != nil {
		return s, err
	}
	// Read after the usage, so that the peak is never below it.
	if s.MemoryPeakBytes, err = readUint(filepath.Join(memory, "memory.max_usage_in_bytes")); err != nil {
		return s, err
	}
	if s.MemoryLimitBytes, err = readUint(filepath.Join(memory, "memory.limit_in_bytes")); err != nil {
		return s, err
	}
	// v1 reports "no limit" as a page-rounded LONG_MAX.
	if s.MemoryLimitBytes >= 1<<62 {
		s.MemoryLimitBytes = 0
	}
	oom, err := readKeyed(filepath.Join(memory, "memory.oom_control"))
	if err != nil {
		return s, err
	}
	s.OOMKills = oom["oom_kill"]
	usage, err := readUint(filepath.Join(cpuacct, "cpuacct.usage"))
	if err != nil {
		return s, err
	}
	s.CPU = time.Duration(usage)
	st, err := readKeyed(filepath.Join(cpu, "cpu.stat"))
	if err != nil {
		return s, err
	}
	s.ThrottledPeriods, s.Throttled = st["nr_throttled"], time.Duration(st["throttled_time"])
	s.CPUWait = runDelays(cpu)
	return s, nil
}

// runDelays sums the run delays (time runnable, waiting for a CPU) of the
// threads in cgroup v1 dir and its descendants, as /proc/<tid>/schedstat
// has them; threads gone meanwhile count nothing.
func runDelays(dir string) time.Duration {
	var sum time.Duration
	filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || e.Name() != "tasks" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for tid := range strings.FieldsSeq(string(b)) {
			st, err := os.ReadFile("/proc/" + tid + "/schedstat")
			if f := strings.Fields(string(st)); err == nil && len(f) >= 2 {
				if ns, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					sum += time.Duration(ns)
				}
			}
		}
		return nil
	})
	return sum
}

// pressureTotal reads the "some" total of a v2 pressure file, in µs; 0
// when the kernel has no pressure accounting (no file, or turned off).
func pressureTotal(path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "some "); ok {
			for f := range strings.FieldsSeq(rest) {
				if v, ok := strings.CutPrefix(f, "total="); ok {
					us, _ := strconv.ParseUint(v, 10, 64)
					return time.Duration(us) * time.Microsecond
				}
			}
		}
	}
	return 0
}

func statsV2(dir string) (runtime.Stats, error) {
	var s runtime.Stats
	var err error
	if s.MemoryBytes, err = readUint(filepath.Join(dir, "memory.current")); err != nil {
		return s, err
	}
	// memory.peak came with Linux 5.19, and pids.current needs the pids
	// controller: without them, 0 says unknown.
	if s.MemoryPeakBytes, err = readUint(filepath.Join(dir, "memory.peak")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	if s.Pids, err = readUint(filepath.Join(dir, "pids.current")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	if s.MemoryLimitBytes, err = readUint(filepath.Join(dir, "memory.max")); err != nil {
		return s, err
	}
	ev, err := readKeyed(filepath.Join(dir, "memory.events"))
	if err != nil {
		return s, err
	}
	s.OOMKills = ev["oom_kill"]
	st, err := readKeyed(filepath.Join(dir, "cpu.stat"))
	if err != nil {
		return s, err
	}
	s.CPU = time.Duration(st["usage_usec"]) * time.Microsecond
	s.ThrottledPeriods = st["nr_throttled"]
	s.Throttled = time.Duration(st["throttled_usec"]) * time.Microsecond
	s.CPUWait = pressureTotal(filepath.Join(dir, "cpu.pressure"))
	return s, nil
}

// readUint reads a file holding one number; "max" (v2's no limit) is 0.
func readUint(path string) (uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	s := strings.TrimSpace(string(b))
	if s == "max" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse %s: %w", path, err)
	}
	return n, nil
}

// readKeyed reads a file of "key value" lines.
func readKeyed(path string) (map[string]uint64, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	m := map[string]uint64{}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), " "); ok {
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				m[k] = n
			}
		}
	}
	return m, nil
}

// removeGroups removes the groups dirs (as cgroupsPath, deepest first) in
// every hierarchy. runc deletes an executor's own group but not the parents
// it created; a parent that still holds another executor's group is busy
// and stays, which is not an error.
func (h hierarchies) removeGroups(dirs ...string) error {
	var errs []error
	for _, root := range slices.Compact(slices.Sorted(slices.Values(h.all))) {
		for _, d := range dirs {
			err := os.Remove(filepath.Join(root, d))
			if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.EBUSY) && !errors.Is(err, syscall.ENOTEMPTY) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// limits are an executor group's limits.
type limits struct {
	MemoryBytes int64 // memory, with no swap
	// CPU is the CFS quota per period; Burst lets the group run past it by
	// what it left unused in earlier periods (CFS burst, Linux 5.14), so
	// that a start's threads (V8's compiler, the GC, libuv's pool) are not
	// throttled while the average stays at the quota. A kernel without
	// burst keeps the plain quota.
	CPUQuota, CPUPeriod, Burst time.Duration
	Pids                       int64
}

// makeGroup creates cgroup path (as in a spec's cgroupsPath, from the
// hierarchies' roots) in the memory, cpu and pids controllers and writes
// l into it. The controllers it does not limit (cpuacct, cpuset, devices…)
// get the group from the runtime, as the parent of the container's own.
func (h hierarchies) makeGroup(path string, l limits) error {
	us := func(d time.Duration) string { return strconv.FormatInt(d.Microseconds(), 10) }
	var files [][2]string // in order: v1 memsw must not go below memory
	var dirs []string
	if h.v2() {
		dir := filepath.Join(h.unified, path)
		// A group has the controllers its parent enables for its children.
		for p := h.unified; p != dir; {
			if err := os.WriteFile(filepath.Join(p, "cgroup.subtree_control"), []byte("+memory +cpu +pids"), 0); err != nil {
				return fmt.Errorf("enable the memory, cpu and pids controllers in %s: %w", p, err)
			}
			next, _, _ := strings.Cut(strings.TrimPrefix(dir, p+"/"), "/")
			p = filepath.Join(p, next)
			if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
		}
		files = [][2]string{
			{filepath.Join(dir, "memory.max"), strconv.FormatInt(l.MemoryBytes, 10)},
			{filepath.Join(dir, "memory.swap.max"), "0"},
			{filepath.Join(dir, "cpu.max"), us(l.CPUQuota) + " " + us(l.CPUPeriod)},
			{h.burstFile(path), us(l.Burst)},
			{filepath.Join(dir, "pids.max"), strconv.FormatInt(l.Pids, 10)},
		}
	} else {
		for _, c := range []string{"memory", "cpu", "pids"} {
			if h.v1[c] == "" {
				return fmt.Errorf("no cgroup %s controller found", c)
			}
			dirs = append(dirs, filepath.Join(h.v1[c], path))
		}
		mem, cpu, pids := dirs[0], dirs[1], dirs[2]
		files = [][2]string{
			{filepath.Join(mem, "memory.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)},
			{filepath.Join(mem, "memory.memsw.limit_in_bytes"), strconv.FormatInt(l.MemoryBytes, 10)},
			{filepath.Join(cpu, "cpu.cfs_period_us"), us(l.CPUPeriod)},
			{filepath.Join(cpu, "cpu.cfs_quota_us"), us(l.CPUQuota)},
			{h.burstFile(path), us(l.Burst)},
			{filepath.Join(pids, "pids.max"), strconv.FormatInt(l.Pids, 10)},
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range files {
		err := os.WriteFile(f[0], []byte(f[1]), 0)
		// Burst needs Linux 5.14, memsw swap accounting (swapaccount=1).
		optional := f[0] == h.burstFile(path) || strings.HasSuffix(f[0], "memsw.limit_in_bytes")
		if err != nil && !(optional && errors.Is(err, fs.ErrNotExist)) {
			return fmt.Errorf("limit cgroup %s: %w", path, err)
		}
	}
	return nil
}

// burstFile is the file that holds cgroup path's CPU burst, in µs.
func (h hierarchies) burstFile(path string) string {
	if h.v2() {
		return filepath.Join(h.unified, path, "cpu.max.burst")
	}
	return filepath.Join(h.v1["cpu"], path, "cpu.cfs_burst_us")
}

// oomWatch counts the OOM events of a v1 memory group. There, a group's
// oom_kill counter leaves out kills in its child groups, and the
// container's group, where the kernel counts them, may be gone when the
// app has exited; the kernel also signals an eventfd registered on the
// limiting group's memory.oom_control each time that group runs out of
// memory. A nil watch (cgroup v2, whose memory.events counts the kills of
// child groups) counts nothing.
type oomWatch struct {
	mu sync.Mutex
	fd int // -1 once closed
	n  uint64
}

// watchOOM registers an oomWatch on group path, on cgroup v1 only.
func (h hierarchies) watchOOM(path string) (*oomWatch, error) {
	if h.v2() {
		return nil, nil
	}
	dir := filepath.Join(h.v1["memory"], path)
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return nil, err
	}
	// The registration holds what it needs; the control file can go.
	defer ctl.Close()
	fd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), fmt.Appendf(nil, "%d %d", fd, ctl.Fd()), 0); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("watch OOM events of %s: %w", path, err)
	}
	return &oomWatch{fd: fd}, nil
}

// count returns the OOM events so far.
func (w *oomWatch) count() uint64 {
	if w == nil {
		return 0
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var b [8]byte
	if w.fd >= 0 {
		if n, err := unix.Read(w.fd, b[:]); err == nil && n == len(b) {
			w.n += binary.NativeEndian.Uint64(b[:])
		}
	}
	return w.n
}

func (w *oomWatch) close() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fd >= 0 {
		unix.Close(w.fd)
		w.fd = -1
	}
}
