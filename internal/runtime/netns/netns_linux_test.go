package netns

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// These tests run the driver for real and need root.

// newTestDriver returns a driver with a prefix of its own, so that tests
// running at the same time, here or in other processes, never touch each
// other's namespaces. When the test ends, it checks that the driver left
// nothing behind.
func newTestDriver(t testing.TB) *Driver {
	t.Helper()
	return newTestDriverPrefix(t, fmt.Sprintf("t%08x", rand.Uint32()))
}

func newTestDriverPrefix(t testing.TB, prefix string) *Driver {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the netns driver needs root")
	}
	d, err := New(Config{Prefix: prefix}, discard)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if left := namespaces(t, prefix); len(left) > 0 {
			t.Errorf("namespaces left behind: %v", left)
		}
	})
	return d
}

// namespaces lists the host's namespaces named with prefix, as ip sees
// them ("name (id: 3)" lines).
func namespaces(t testing.TB, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var ns []string
	for line := range strings.Lines(string(out)) {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			ns = append(ns, f[0])
		}
	}
	return ns
}

func linkExists(name string) bool {
	return exec.Command("ip", "link", "show", name).Run() == nil
}

// eventually polls cond until it holds, or fails the test after 5 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		<-tick.C
	}
}

// alive reports whether process pid runs; a zombie does not.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func TestDriver_Conformance(t *testing.T) {
	t.Parallel()
	runtimetest.Run(t, func(t *testing.T) runtime.Driver { return newTestDriver(t) })
}

// TestDriver_StopRemovesEverything checks what the conformance suite cannot
// see: the namespace, the veth pair and processes that left the process
// group are gone after Stop.
func TestDriver_StopRemovesEverything(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	dir := t.TempDir()
	if _, err := d.Prepare(t.Context(), "x"); err != nil {
		t.Fatal(err)
	}
	_, err := d.Start(t.Context(), runtime.Spec{
		ID:  "x",
		Dir: dir,
		// A daemon in its own session escapes the process group.
		Command: []string{"/bin/sh", "-c", "setsid /bin/sh -c 'echo $$ > escaped; exec sleep 300' & exec sleep 300"},
		Port:    3000,
	})
	if err != nil {
		t.Fatal(err)
	}
	var escaped int
	eventually(t, "the daemon runs", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "escaped"))
		escaped, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		return escaped > 0
	})
	ns, veth := d.nsName("x"), vnet.HostIf(d.nsName("x"))
	if !linkExists(veth) {
		t.Fatalf("veth %s missing while the executor runs", veth)
	}
	if err := d.Stop(t.Context(), "x", time.Second); err != nil {
		t.Fatal(err)
	}
	if left := namespaces(t, d.prefix); len(left) > 0 {
		t.Errorf("got namespaces %v after Stop, want %s gone", left, ns)
	}
	if linkExists(veth) {
		t.Errorf("veth %s still exists after Stop", veth)
	}
	eventually(t, "the daemon is gone", func() bool { return !alive(escaped) })
}

// TestDriver_CleanupAfterCrash plays a restart after a crash: a new driver
// with the same prefix removes the old one's executors, and leaves another
// instance's executors alone.
func TestDriver_CleanupAfterCrash(t *testing.T) {
	t.Parallel()
	prefix := fmt.Sprintf("t%08x", rand.Uint32())
	crashed := newTestDriverPrefix(t, prefix)
	other := newTestDriver(t)
	spec := runtime.Spec{ID: "old", Dir: t.TempDir(), Command: []string{"sleep", "300"}, Port: 3000}
	var pids []int
	for _, d := range []*Driver{crashed, other} {
		if _, err := d.Prepare(t.Context(), "old"); err != nil {
			t.Fatal(err)
		}
		x, err := d.Start(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		pids = append(pids, x.PID)
		// A crash leaves executors that run: wait until this one does, in
		// its namespace (ip netns exec enters it after Start returned).
		eventually(t, "the executor runs in its namespace", func() bool {
			out, _ := exec.Command("ip", "netns", "pids", d.nsName("old")).Output()
			return len(strings.Fields(string(out))) > 0
		})
	}
	t.Cleanup(func() { other.Stop(context.Background(), "old", time.Second) })

	restarted := newTestDriverPrefix(t, prefix)
	if err := restarted.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if left := namespaces(t, prefix); len(left) > 0 {
		t.Errorf("got namespaces %v after Cleanup, want none", left)
	}
	if linkExists(vnet.HostIf(prefix + "-old")) {
		t.Errorf("veth of %s-old still exists after Cleanup", prefix)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	st, err := crashed.Wait(ctx, "old")
	if err != nil || st.ExitCode != 137 {
		t.Errorf("crashed executor: got %+v, %v; want it killed (137)", st, err)
	}
	if len(namespaces(t, other.prefix)) != 1 || !alive(pids[1]) {
		t.Errorf("Cleanup touched another instance's executor")
	}
	// The old driver's Stop copes with its executor being gone already.
	if err := crashed.Stop(t.Context(), "old", time.Second); err != nil {
		t.Errorf("Stop after Cleanup: %v", err)
	}
}

// BenchmarkDriver_StartStop measures an executor's whole life: Prepare,
// Start of a process that waits, and Stop.
func BenchmarkDriver_StartStop(b *testing.B) {
	d := newTestDriver(b)
	spec := runtime.Spec{ID: "bench", Dir: b.TempDir(), Command: []string{"sleep", "300"}, Port: 3000}
	var prepare, start, stop time.Duration
	for b.Loop() {
		t0 := time.Now()
		if _, err := d.Prepare(b.Context(), spec.ID); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := d.Start(b.Context(), spec); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if err := d.Stop(b.Context(), spec.ID, time.Second); err != nil {
			b.Fatal(err)
		}
		prepare, start, stop = prepare+t1.Sub(t0), start+t2.Sub(t1), stop+time.Since(t2)
	}
	n := float64(b.N)
	b.ReportMetric(float64(prepare.Microseconds())/n/1000, "ms-prepare/op")
	b.ReportMetric(float64(start.Microseconds())/n/1000, "ms-start/op")
	b.ReportMetric(float64(stop.Microseconds())/n/1000, "ms-stop/op")
}
