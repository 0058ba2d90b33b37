package vnet

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// These tests build real namespaces, need root and check the outcome with
// iproute2, which must see the namespaces as its own.

// newTestPool returns a pool with a prefix of its own, so that tests
// running at the same time never touch each other's namespaces, and checks
// at the end that it left none.
func newTestPool(t testing.TB, egress runtime.Egress) *Pool {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip (iproute2) to check the outcome")
	}
	nft, err := exec.LookPath("nft")
	if err != nil {
		t.Skip("needs nft (nftables)")
	}
	p, err := New(Config{Prefix: fmt.Sprintf("v%08x", rand.Uint32()), Egress: egress}, LockPath, ExecNFT(nft))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if left, err := p.Leftovers(t.Context()); err != nil || len(left) > 0 {
			t.Errorf("left behind: %v, %v", left, err)
		}
	})
	return p
}

// ip runs ip with args and returns its output.
func ip(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// threadNamespaces returns the network namespaces of this process's
// threads.
func threadNamespaces(t testing.TB) map[string]bool {
	t.Helper()
	tasks, err := filepath.Glob("/proc/self/task/*/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, task := range tasks {
		if ns, err := os.Readlink(task); err == nil { // a thread may end meanwhile
			m[ns] = true
		}
	}
	return m
}

func TestPool_SetupTeardown(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, runtime.Egress{})
	ns, ns2 := p.Name("a"), p.Name("b")
	n, err := p.Setup(t.Context(), ns)
	t.Cleanup(func() { p.Teardown(t.Context(), ns) })
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	n2, err := p.Setup(t.Context(), ns2)
	t.Cleanup(func() { p.Teardown(t.Context(), ns2) })
	if err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	if n == n2 || n.Gateway == n.Address {
		t.Errorf("got networks %+v and %+v, want distinct addresses", n, n2)
	}
	// Only this pool's namespaces count: other tests in the package enter
	// theirs on threads of the same process meanwhile.
	ours := map[string]string{}
	for _, name := range []string{ns, ns2} {
		var st syscall.Stat_t
		if err := syscall.Stat(Path(name), &st); err != nil {
			t.Fatal(err)
		}
		ours[fmt.Sprintf("net:[%d]", st.Ino)] = name
	}
	for th := range threadNamespaces(t) {
		if name, ok := ours[th]; ok {
			t.Errorf("a thread was left in namespace %s (%s)", name, th)
		}
	}

	if got := ip(t, "netns", "list"); !strings.Contains(got, ns) {
		t.Errorf("ip netns list lacks %s:\n%s", ns, got)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-o", "-4", "addr", "show", "dev", HostIf(ns)}, n.Gateway + "/30"},
		{[]string{"link", "show", "dev", HostIf(ns)}, ",UP"},
		{[]string{"-n", ns, "link", "show", "dev", "lo"}, ",UP"},
		{[]string{"-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"}, n.Address + "/30"},
		{[]string{"-n", ns, "link", "show", "dev", "eth0"}, ",UP"},
		{[]string{"-n", ns, "route", "show", "default"}, "default via " + n.Gateway + " dev eth0"},
	} {
		if got := ip(t, c.args...); !strings.Contains(got, c.want) {
			t.Errorf("ip %s: want %q in\n%s", strings.Join(c.args, " "), c.want, got)
		}
	}
	if left, err := p.Leftovers(t.Context()); err != nil || len(left) != 2 {
		t.Errorf("Leftovers: got %v, %v; want %s and %s", left, err, ns, ns2)
	}
	// The host reaches the executor's address over the pair.
	if out, err := exec.Command("ping", "-c1", "-W2", n.Address).CombinedOutput(); err != nil && !strings.Contains(err.Error(), "not found") {
		t.Errorf("ping %s: %v\n%s", n.Address, err, out)
	}

	// Teardown kills what runs inside, and can be repeated.
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for pids, _ := nsPIDs(ns); len(pids) == 0; pids, _ = nsPIDs(ns) {
		if time.Now().After(deadline) {
			t.Fatal("the process never showed in the namespace")
		}
		<-tick.C
	}
	for range 2 {
		if err := p.Teardown(t.Context(), ns); err != nil {
			t.Fatalf("Teardown: %v", err)
		}
	}
	select {
	case err := <-exited:
		if ws, ok := sleeper.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
			t.Errorf("process in the namespace: got %v, want it killed", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("process in the namespace still runs after Teardown")
	}
	if got := ip(t, "netns", "list"); strings.Contains(got, ns+"\n") || strings.Contains(got, ns+" ") {
		t.Errorf("ip netns list still has %s:\n%s", ns, got)
	}
	if exec.Command("ip", "link", "show", HostIf(ns)).Run() == nil {
		t.Errorf("veth %s still exists after Teardown", HostIf(ns))
	}
	if err := p.Teardown(t.Context(), p.Name("never")); err != nil {
		t.Errorf("Teardown of a namespace never set up: %v", err)
	}
}

// TestPool_SetupFails checks that a namespace whose name is taken fails
// Setup with the cause, and that Teardown removes what is there, a
// namespace file without its mount included.
func TestPool_SetupFails(t *testing.T) {
	t.Parallel()
	p := newTestPool(t, runtime.Egress{})
	ns := p.Name("half")
	if err := shareNSDir(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(ns), nil, 0o444); err != nil {
		t.Fatal(err)
	}
	_, err := p.Setup(t.Context(), ns)
	if err == nil || !strings.Contains(err.Error(), "create network namespace "+ns) || !strings.Contains(err.Error(), "file exists") {
		t.Errorf("Setup: got %v, want the namespace's creation to fail on the existing file", err)
	}
	if err := p.Teardown(t.Context(), ns); err != nil {
		t.Fatalf("Teardown: %v", err)
	}
	if _, err := os.Stat(Path(ns)); !os.IsNotExist(err) {
		t.Errorf("%s: got %v, want it removed", Path(ns), err)
	}
}

// BenchmarkPool_SetupTeardown measures what an executor's network costs:
// Setup (namespace, veth pair, addresses, route) and Teardown.
func BenchmarkPool_SetupTeardown(b *testing.B) {
	p := newTestPool(b, runtime.Egress{})
	ns := p.Name("bench")
	var setup, teardown time.Duration
	var n runtime.Network
	for b.Loop() {
		t0 := time.Now()
		var err error
		if n, err = p.Setup(b.Context(), ns); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := p.Teardown(b.Context(), ns); err != nil {
			b.Fatal(err)
		}
		setup, teardown = setup+t1.Sub(t0), teardown+time.Since(t1)
	}
	_ = n
	f := float64(b.N)
	b.ReportMetric(float64(setup.Microseconds())/f/1000, "ms-setup/op")
	b.ReportMetric(float64(teardown.Microseconds())/f/1000, "ms-teardown/op")
}
