package sandbox

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/runtime"
)

const hybridMountinfo = `22 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
32 30 0:29 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 30 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 30 0:37 /sub /mnt/sub rw,relatime - cgroup2 cgroup2 rw
`

func TestParseMountinfo(t *testing.T) {
	t.Parallel()
	h := parseMountinfo([]byte(hybridMountinfo))
	want := hierarchies{
		v1:      map[string]string{"cpu": "/sys/fs/cgroup/cpu", "cpuacct": "/sys/fs/cgroup/cpuacct", "memory": "/sys/fs/cgroup/memory", "pids": "/sys/fs/cgroup/pids"},
		unified: "/sys/fs/cgroup/unified",
		all:     []string{"/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"},
	}
	if diff := cmp.Diff(want, h, cmp.AllowUnexported(hierarchies{})); diff != "" {
		t.Errorf("hybrid (-want +got):\n%s", diff)
	}
	if h.v2() {
		t.Error("hybrid host taken for cgroup v2")
	}
	v2 := parseMountinfo([]byte("30 22 0:27 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n"))
	if !v2.v2() || v2.unified != "/sys/fs/cgroup" {
		t.Errorf("unified host: got %+v, want v2 at /sys/fs/cgroup", v2)
	}
	// crun takes a hybrid host only with an empty unified hierarchy.
	if !h.crunCan() {
		t.Error("crun refused on a hybrid host with no unified controllers")
	}
	if h.unifiedControllers = []string{"hugetlb"}; h.crunCan() {
		t.Error("crun taken on a hybrid host whose unified hierarchy holds hugetlb")
	}
	if v2.unifiedControllers = []string{"cpu", "memory"}; !v2.crunCan() {
		t.Error("crun refused on a cgroup v2 host")
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	want := runtime.Stats{
		MemoryBytes: 1 << 20, MemoryLimitBytes: 64 << 20, MemoryPeakBytes: 3 << 20, Pids: 4, CPU: 1500 * time.Millisecond,
		ThrottledPeriods: 7, Throttled: 250 * time.Millisecond, OOMKills: 1,
	}
	t.Run("V1", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		g := "/hangar/hg/x"
		writeFiles(t, root, map[string]string{
			"memory" + g + "/memory.usage_in_bytes":     "1048576\n",
			"memory" + g + "/memory.limit_in_bytes":     "67108864\n",
			"memory" + g + "/memory.max_usage_in_bytes": "3145728\n",
			"pids" + g + "/pids.current":                "4\n",
			"memory" + g + "/memory.oom_control":        "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n",
			"cpuacct" + g + "/cpuacct.usage":            "1500000000\n",
			"cpu" + g + "/cpu.stat":                     "nr_periods 20\nnr_throttled 7\nthrottled_time 250000000\n",
			// A thread gone by the time it is read counts nothing; the
			// driver's TestDriver_CPUQuota reads live ones.
			"cpu" + g + "/ctr/tasks": "999999999\n",
		})
		h := hierarchies{v1: map[string]string{"memory": root + "/memory", "cpu": root + "/cpu", "cpuacct": root + "/cpuacct", "pids": root + "/pids"}}
		got, err := h.stats(g)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
		// Without the pids controller, the count is unknown.
		delete(h.v1, "pids")
		got, err = h.stats(g)
		if err != nil || got.Pids != 0 || got.MemoryPeakBytes != want.MemoryPeakBytes {
			t.Errorf("without pids: got %+v, %v; want no pids count and the rest", got, err)
		}
	})
	t.Run("V2", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		g := "/hangar/hg/x"
		writeFiles(t, root, map[string]string{
			g + "/memory.current": "1048576\n",
			g + "/memory.max":     "67108864\n",
			g + "/memory.peak":    "3145728\n",
			g + "/pids.current":   "4\n",
			g + "/memory.events":  "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n",
			g + "/cpu.stat":       "usage_usec 1500000\nuser_usec 1000000\nsystem_usec 500000\nnr_periods 20\nnr_throttled 7\nthrottled_usec 250000\n",
			g + "/cpu.pressure":   "some avg10=1.00 avg60=0.50 avg300=0.10 total=300000\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=7\n",
		})
		got, err := hierarchies{unified: root}.stats(g)
		if err != nil {
			t.Fatal(err)
		}
		want := want
		want.CPUWait = 300 * time.Millisecond
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("(-want +got):\n%s", diff)
		}
	})
	t.Run("V2Unlimited", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		writeFiles(t, root, map[string]string{
			"g/memory.current": "1\n", "g/memory.max": "max\n", "g/memory.events": "", "g/cpu.stat": "",
		})
		got, err := hierarchies{unified: root}.stats("g")
		if err != nil || got.MemoryLimitBytes != 0 || got.MemoryPeakBytes != 0 || got.Pids != 0 {
			t.Errorf("got %+v, %v; want no limit, and no peak or pids count (before Linux 5.19, no pids controller)", got, err)
		}
	})
}

func TestRemoveGroups(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, d := range []string{"a/hangar/hg/x", "b/hangar/hg/y", "b/hangar/hg/z"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	h := hierarchies{all: []string{root + "/a", root + "/b"}}
	// In b, z keeps the parents busy (ENOTEMPTY here, EBUSY on cgroupfs).
	if err := h.removeGroups("/hangar/hg/x", "/hangar/hg/y", "/hangar/hg", "/hangar"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(root + "/a/hangar"); !os.IsNotExist(err) {
		t.Errorf("a/hangar: got %v, want it removed", err)
	}
	if _, err := os.Stat(root + "/b/hangar/hg/z"); err != nil {
		t.Errorf("b/hangar/hg/z: got %v, want it kept", err)
	}
}

func TestMakeGroup(t *testing.T) {
	t.Parallel()
	l := limits{MemoryBytes: 64 << 20, CPUQuota: 50 * time.Millisecond, CPUPeriod: 100 * time.Millisecond, Burst: 50 * time.Millisecond, Pids: 32}
	// holds checks the contents of files under root.
	holds := func(t *testing.T, root string, want map[string]string) {
		t.Helper()
		for file, w := range want {
			b, err := os.ReadFile(filepath.Join(root, file))
			if err != nil || string(b) != w {
				t.Errorf("%s = %q, %v; want %q", file, b, err, w)
			}
		}
	}
	t.Run("V1", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		h := hierarchies{v1: map[string]string{"memory": root + "/memory", "cpu": root + "/cpu", "cpuacct": root + "/cpuacct", "pids": root + "/pids"}}
		if err := h.makeGroup("/hangar/hg/x", l); err != nil {
			t.Fatal(err)
		}
		holds(t, root, map[string]string{
			"memory/hangar/hg/x/memory.limit_in_bytes":       "67108864",
			"memory/hangar/hg/x/memory.memsw.limit_in_bytes": "67108864",
			"cpu/hangar/hg/x/cpu.cfs_period_us":              "100000",
			"cpu/hangar/hg/x/cpu.cfs_quota_us":               "50000",
			"cpu/hangar/hg/x/cpu.cfs_burst_us":               "50000",
			"pids/hangar/hg/x/pids.max":                      "32",
		})
		// cpuacct and the others get the group from the runtime.
		if _, err := os.Stat(root + "/cpuacct/hangar"); !os.IsNotExist(err) {
			t.Errorf("cpuacct/hangar: got %v, want it left to the runtime", err)
		}
	})
	t.Run("V2", func(t *testing.T) {
		t.Parallel()
		root := t.TempDir()
		h := hierarchies{unified: root}
		if err := h.makeGroup("/hangar/hg/x", l); err != nil {
			t.Fatal(err)
		}
		holds(t, root, map[string]string{
			"cgroup.subtree_control":           "+memory +cpu +pids",
			"hangar/cgroup.subtree_control":    "+memory +cpu +pids",
			"hangar/hg/cgroup.subtree_control": "+memory +cpu +pids",
			"hangar/hg/x/memory.max":           "67108864",
			"hangar/hg/x/memory.swap.max":      "0",
			"hangar/hg/x/cpu.max":              "50000 100000",
			"hangar/hg/x/cpu.max.burst":        "50000",
			"hangar/hg/x/pids.max":             "32",
		})
		// The executor's group enables nothing: the runtime does, for the
		// container's group it makes inside.
		if _, err := os.Stat(root + "/hangar/hg/x/cgroup.subtree_control"); !os.IsNotExist(err) {
			t.Errorf("x/cgroup.subtree_control: got %v, want it left to the runtime", err)
		}
	})
}
