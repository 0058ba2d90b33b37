package netns

import (
	"context"
	"errors"
	"fmt"
	"github.com/hangar-oss/hangar/internal/golden"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// fakeIP records ip commands and answers them from a script.
type fakeIP struct {
	mu    sync.Mutex
	calls []string
	out   map[string]string // stdout by command line
	fail  map[string]string // stderr by command line, for commands that fail
}

func (f *fakeIP) run(_ context.Context, args ...string) ([]byte, error) {
	line := strings.Join(args, " ")
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "ip "+line)
	if stderr, ok := f.fail[line]; ok {
		return nil, &vnet.IPError{Args: args, Stderr: stderr, Err: errors.New("exit status 1")}
	}
	return []byte(f.out[line]), nil
}

func (f *fakeIP) plan() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.calls, "\n") + "\n"
}

func newFakeDriver(t *testing.T, ip *fakeIP) *Driver {
	t.Helper()
	d, err := newDriver(Config{}, discard, ip.run, "/usr/sbin/ip", filepath.Join(t.TempDir(), "lock"))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDriver_PrepareStopPlan(t *testing.T) {
	t.Parallel()
	ip := &fakeIP{out: map[string]string{
		"-o -4 addr show": "9: hgh000000000000    inet 10.213.0.1/30 scope global hgh000000000000\n",
	}}
	d := newFakeDriver(t, ip)
	n, err := d.Prepare(t.Context(), "app-1")
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	if diff := cmp.Diff(runtime.Network{Gateway: "10.213.0.5", Address: "10.213.0.6"}, n); diff != "" {
		t.Errorf("Prepare (-want +got):\n%s", diff)
	}
	if err := d.Stop(t.Context(), "app-1", time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	golden.Check(t, golden.File("prepare_stop"), ip.plan())
}

func TestDriver_PrepareRollsBack(t *testing.T) {
	t.Parallel()
	ip := &fakeIP{fail: map[string]string{
		"-n hg-app-1 addr add 10.213.0.2/30 dev eth0": "RTNETLINK answers: Permission denied",
	}}
	d := newFakeDriver(t, ip)
	_, err := d.Prepare(t.Context(), "app-1")
	if err == nil || hangar.KindOf(err) != hangar.KindInternal || !strings.Contains(err.Error(), "Permission denied") {
		t.Fatalf("Prepare: got %v, want an internal error with ip's complaint", err)
	}
	golden.Check(t, golden.File("prepare_rollback"), ip.plan())
	// The ID is free again.
	delete(ip.fail, "-n hg-app-1 addr add 10.213.0.2/30 dev eth0")
	if _, err := d.Prepare(t.Context(), "app-1"); err != nil {
		t.Errorf("Prepare after a failed Prepare: %v", err)
	}
}

func TestDriver_CleanupPlan(t *testing.T) {
	t.Parallel()
	ip := &fakeIP{
		out: map[string]string{
			"netns list":         "hg-old (id: 4)\nhgx-other (id: 3)\nhg2-x\nhg-live (id: 1)\nother\n",
			"netns pids hg-old":  "2147483647\n", // above any pid_max: no such process
			"-o -4 addr show":    "",
			"netns pids hg-live": "",
		},
		fail: map[string]string{
			// The veth pair vanished already with its namespace.
			"link del " + vnet.HostIf("hg-old"): `Cannot find device "` + vnet.HostIf("hg-old") + `"`,
		},
	}
	d := newFakeDriver(t, ip)
	if _, err := d.Prepare(t.Context(), "live"); err != nil {
		t.Fatal(err)
	}
	ip.calls = nil
	// Killing a process that is gone already is fine.
	if err := d.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	golden.Check(t, golden.File("cleanup"), ip.plan())
}

// The rest of this file runs the driver for real and needs root.

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

// namespaces lists the host's namespaces named with prefix.
func namespaces(t testing.TB, prefix string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatalf("ip netns list: %v", err)
	}
	var ns []string
	for _, n := range vnet.ParseNetnsList(out) {
		if strings.HasPrefix(n, prefix+"-") {
			ns = append(ns, n)
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
	st, err := crashed.Wait(t.Context(), "old")
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
