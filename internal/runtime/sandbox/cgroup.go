package sandbox

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// runc creates and limits the cgroups from the spec, on v1 and v2 alike;
// this file only reads them (stats, OOM kills) and removes the parent
// groups runc leaves behind. It finds the hierarchies in
// /proc/self/mountinfo rather than assuming /sys/fs/cgroup/<controller>.

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
	return parseMountinfo(b), nil
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
	return s, nil
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

// setBurst lets cgroup path (as in the spec's cgroupsPath) run past its CPU
// quota by up to burst, what it left unused in earlier periods (CFS burst,
// Linux 5.14): a start's threads (V8's compiler, the GC, libuv's pool) then
// are not throttled while the average stays at the quota. runc 1.1 does
// not know the spec's burst field, so it is written here. A kernel
// without the file keeps the plain quota.
func (h hierarchies) setBurst(path string, burst time.Duration) error {
	err := os.WriteFile(h.burstFile(path), []byte(strconv.FormatInt(burst.Microseconds(), 10)), 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// burstFile is the file that holds cgroup path's CPU burst, in µs.
func (h hierarchies) burstFile(path string) string {
	if h.v2() {
		return filepath.Join(h.unified, path, "cpu.max.burst")
	}
	return filepath.Join(h.v1["cpu"], path, "cpu.cfs_burst_us")
}
