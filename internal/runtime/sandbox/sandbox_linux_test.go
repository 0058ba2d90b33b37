package sandbox

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

var discard = slog.New(slog.DiscardHandler)

// newTestDriver returns a driver with a prefix and state dir of its own, so
// that tests running at the same time never touch each other's executors.
// When the test ends, it checks that the driver left nothing behind.
func newTestDriver(t testing.TB, modify ...func(*Config)) *Driver {
	t.Helper()
	return newTestDriverPrefix(t, fmt.Sprintf("t%08x", rand.Uint32()), modify...)
}

func newTestDriverPrefix(t testing.TB, prefix string, modify ...func(*Config)) *Driver {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the sandbox driver needs root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("the sandbox driver needs runc: apt-get install runc")
	}
	cfg := Config{Prefix: prefix}
	for _, m := range modify {
		m(&cfg)
	}
	d, err := New(cfg, discard)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		// The parent group and the state dirs stay while the driver
		// lives; Close removes them if nothing is left in them.
		if err := d.Close(); err != nil {
			t.Error(err)
		}
		left := leftovers(t, d)
		if _, err := os.Stat(d.cfg.StateDir); err == nil {
			left = append(left, "state dir "+d.cfg.StateDir)
		}
		if len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})
	return d
}

// leftovers lists what the driver's prefix still holds on the host.
func leftovers(t testing.TB, d *Driver) []string {
	t.Helper()
	var left []string
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, d.cfg.Prefix+"-") {
			left = append(left, "netns "+strings.Fields(l)[0])
		}
	}
	// runc would create its root to list it.
	if _, err := os.Stat(d.ociRoot); err == nil {
		out, _ = exec.Command("runc", "--root", d.ociRoot, "list", "-q").Output()
		for _, c := range strings.Fields(string(out)) {
			left = append(left, "container "+c)
		}
	}
	ents, _ := os.ReadDir(d.bundles)
	for _, e := range ents {
		left = append(left, "bundle "+e.Name())
	}
	ents, _ = os.ReadDir(filepath.Join(d.cfg.StateDir, "steps"))
	for _, e := range ents {
		left = append(left, "step bundle "+e.Name())
	}
	for _, root := range d.cgroups.all {
		if _, err := os.Stat(filepath.Join(root, d.cgroupParent())); err == nil {
			left = append(left, "cgroup "+filepath.Join(root, d.cgroupParent()))
		}
	}
	return left
}

// run starts script in a fresh executor of d, waits for it to exit and
// returns its output and status.
func run(t *testing.T, d *Driver, id string, spec runtime.Spec) (string, runtime.Status) {
	t.Helper()
	if _, err := d.Prepare(t.Context(), id); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	t.Cleanup(func() {
		if err := d.Stop(t.Context(), id, time.Second); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	out := &runtimetest.SyncBuffer{}
	spec.ID, spec.Stdout = id, out
	if spec.Dir == "" {
		spec.Dir = t.TempDir()
	}
	if spec.Port == 0 {
		spec.Port = 3000
	}
	if _, err := d.Start(t.Context(), spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := d.Wait(t.Context(), id)
	if err != nil {
		t.Fatalf("Wait: %v", err)
	}
	return out.String(), st
}

func TestDriver_Conformance(t *testing.T) {
	t.Parallel()
	runtimetest.Run(t, func(t *testing.T) runtime.Driver { return newTestDriver(t) })
}

// TestDriver_Runtimes runs the conformance suite and the OOM check on each
// OCI runtime installed, whichever the host's default is; crun only where
// the host's cgroups suit it.
func TestDriver_Runtimes(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"crun", "runc"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := exec.LookPath(name); err != nil {
				t.Skipf("%s is not installed", name)
			}
			if cg, err := readHierarchies(); err != nil {
				t.Fatal(err)
			} else if name == "crun" && !cg.crunCan() {
				t.Skipf("crun does not run on this host's cgroups: %v in the unified hierarchy", cg.unifiedControllers)
			}
			withRuntime := func(c *Config) { c.Runtime = name }
			t.Run("Conformance", func(t *testing.T) {
				t.Parallel()
				runtimetest.Run(t, func(t *testing.T) runtime.Driver { return newTestDriver(t, withRuntime) })
			})
			t.Run("OOM", func(t *testing.T) {
				t.Parallel()
				testOOM(t, newTestDriver(t, withRuntime))
			})
			t.Run("Pids", func(t *testing.T) {
				t.Parallel()
				testPids(t, newTestDriver(t, withRuntime, func(c *Config) { c.Pids = 16 }))
			})
		})
	}
}

func TestDriver_StartFails(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	if _, err := d.Prepare(t.Context(), "bad"); err != nil {
		t.Fatal(err)
	}
	defer d.Stop(t.Context(), "bad", time.Second)
	begin := time.Now()
	f := filepath.Join(t.TempDir(), "file")
	os.WriteFile(f, nil, 0o644)
	_, err := d.Start(t.Context(), runtime.Spec{ID: "bad", Dir: f, Command: []string{"/bin/true"}, Port: 3000})
	t.Logf("took %v: %v", time.Since(begin), err)
}

// echoServer listens on every host address and returns its port; see
// runtimetest.EchoServer.
func echoServer(t testing.TB) string {
	t.Helper()
	_, port, err := net.SplitHostPort(runtimetest.EchoServer(t, "0.0.0.0:0"))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// hostAddr returns a non-loopback IPv4 address of the host.
func hostAddr(t testing.TB) string {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() && !strings.HasPrefix(n.IP.String(), "10.213.") {
			return n.IP.String()
		}
	}
	t.Skip("the host has no non-loopback IPv4 address")
	return ""
}

// dialPy prints "<label> ok" when it can connect to host:port and read
// the echo server's "pong" within a second, "<label> denied" otherwise.
const dialPy = `
import socket, sys
try:
    with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=1) as s:
        print(sys.argv[1], "ok" if s.recv(4) == b"pong" else "denied")
except OSError:
    print(sys.argv[1], "denied")
`

// TestDriver_Isolation runs probes inside an executor of app A: each line
// the script prints is "<check> ok" or "<check> denied".
func TestDriver_Isolation(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	// A data dir on the root filesystem (not /tmp, which is private
	// anyway), with app A's and app B's folders in it.
	data, err := os.MkdirTemp("/var/lib", "hangar-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(data) })
	appA, appB := filepath.Join(data, "apps", "a"), filepath.Join(data, "apps", "b")
	for _, dir := range []string{appA, appB} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "secret"), []byte("s3cret"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(data, "metadata.db"), []byte("s3cret"), 0o644); err != nil {
		t.Fatal(err)
	}
	d := newTestDriver(t, func(c *Config) { c.HiddenPaths = []string{data} })
	port, fwdPort := echoServer(t), echoServer(t)
	if _, err := d.Prepare(t.Context(), "iso"); err != nil {
		t.Fatal(err)
	}
	n, _ := d.Inspect(t.Context(), "iso")
	gw, host := n.Network.Gateway, hostAddr(t)
	p := port
	script := strings.Join([]string{
		"probe() { name=$1; shift; if \"$@\" >/dev/null 2>&1; then echo \"$name ok\"; else echo \"$name denied\"; fi; }",
		"probe read-own cat " + appA + "/secret",
		"probe read-other-app cat " + appB + "/secret",
		"probe read-data-dir cat " + data + "/metadata.db",
		"probe list-data-dir sh -c 'ls " + data + "/apps | grep -q b'",
		"probe read-root-home ls /root/.bashrc",
		"probe write-root touch /x",
		"probe write-usr touch /usr/x",
		"probe write-etc touch /etc/x",
		"probe write-own touch " + appA + "/new",
		"probe write-tmp touch /tmp/new",
		"echo uid=$(id -u) gid=$(id -g)",
		"grep CapEff /proc/self/status",
		"echo pid1=$(head -c 7 /proc/1/cmdline)",
		"echo procs=$(ls /proc | grep -c '^[0-9]')",
		"py() { /usr/bin/python3 -c '" + dialPy + "' \"$@\"; }",
		"py dial-loopback 127.0.0.1 " + p,
		"py dial-gateway " + gw + " " + p,
		"py dial-host " + host + " " + p,
		"py dial-forward " + gw + " 6000",
	}, "\n")
	t.Cleanup(func() { d.Stop(t.Context(), "iso", time.Second) })
	out := &runtimetest.SyncBuffer{}
	_, err = d.Start(t.Context(), runtime.Spec{
		ID: "iso", Dir: appA, Command: []string{"/bin/sh", "-c", script}, Port: 3000, Stdout: out,
		Forwards: []runtime.Forward{{ListenPort: 6000, Target: "127.0.0.1:" + fwdPort}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := d.Wait(t.Context(), "iso"); err != nil || st.ExitCode != 0 {
		t.Fatalf("Wait: %+v, %v; output:\n%s", st, err, out)
	}
	got := out.String()
	t.Logf("output:\n%s", got)
	want := map[string]string{
		"read-own": "ok", "read-other-app": "denied", "read-data-dir": "denied", "list-data-dir": "denied",
		"read-root-home": "denied", "write-root": "denied", "write-usr": "denied", "write-etc": "denied",
		"write-own": "ok", "write-tmp": "ok",
		"dial-loopback": "denied", "dial-gateway": "denied", "dial-host": "denied", "dial-forward": "ok",
	}
	for check, w := range want {
		if !strings.Contains(got, check+" "+w+"\n") {
			t.Errorf("%s: want %s", check, w)
		}
	}
	e, _ := d.execs.Lookup("iso")
	for _, line := range []string{
		fmt.Sprintf("uid=%d gid=%d", e.uid, d.cfg.GID),
		"CapEff:\t0000000000000000",
		"pid1=/bin/sh\n",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q", line)
		}
	}
	if e.uid == 0 || d.cfg.GID == 0 {
		t.Errorf("runs as uid %d gid %d, want non-root", e.uid, d.cfg.GID)
	}
	// init, the script, the shell of $(...) and ls: nothing of the host.
	if i := strings.Index(got, "procs="); i < 0 {
		t.Error("no process count")
	} else if n, _ := strconv.Atoi(strings.Fields(got[i+6:])[0]); n > 5 {
		t.Errorf("got %d processes visible, want only the executor's own (at most 5)", n)
	}
}

// TestDriver_ExecIsolated checks that a command Exec runs is confined as
// the app is: the executor's own uid, no capabilities, and its cgroup, so
// that the executor's limits bind it too.
func TestDriver_ExecIsolated(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	if _, err := d.Prepare(t.Context(), "exe"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(t.Context(), "exe", time.Second) })
	spec := runtime.Spec{ID: "exe", Dir: t.TempDir(), Command: []string{"/bin/sh", "-c", "exec sleep 600"}, Port: 3000}
	if _, err := d.Start(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	out := &runtimetest.SyncBuffer{}
	code, err := d.Exec(t.Context(), "exe", runtime.ExecSpec{
		Args:   []string{"/bin/sh", "-c", "echo uid=$(id -u) gid=$(id -g); grep CapEff /proc/self/status; cat /proc/self/cgroup"},
		Stdout: out, Stderr: out,
	})
	if err != nil || code != 0 {
		t.Fatalf("Exec: exit code %d, %v\n%s", code, err, out)
	}
	e, _ := d.execs.Lookup("exe")
	got := out.String()
	for _, line := range []string{fmt.Sprintf("uid=%d gid=%d\n", e.uid, d.cfg.GID), "CapEff:\t0000000000000000\n", d.containerGroup("exe") + "\n"} {
		if !strings.Contains(got, line) {
			t.Errorf("output lacks %q:\n%s", line, got)
		}
	}
	if e.uid == 0 {
		t.Error("the executor runs as root")
	}
}

// TestDriver_OOM runs a process that allocates past a 64 MiB limit: the
// kernel kills it and Wait reports it.
func TestDriver_OOM(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/node"); err != nil {
		t.Skip("needs /usr/bin/node")
	}
	testOOM(t, newTestDriver(t))
}

// testPids forks until it fails in d, whose executors may run 16
// processes: a fork bomb must stop at the executor's own limit, not the
// host's.
func testPids(t *testing.T, d *Driver) {
	const bomb = `import os, time
n = 0
try:
    for _ in range(64):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
    print("forked", n)
except OSError as e:
    print("forked", n, "then errno", e.errno)
`
	out, st := run(t, d, "pids", runtime.Spec{Command: []string{"/usr/bin/python3", "-c", bomb}})
	var n, errno int
	if _, err := fmt.Sscanf(out, "forked %d then errno %d", &n, &errno); err != nil || n >= 16 || errno != int(syscall.EAGAIN) {
		t.Errorf("got %q (%+v), want the forks to fail with EAGAIN before 16 processes", out, st)
	}
}

// testOOM runs a memory hog under a 64 MiB limit in d.
func testOOM(t *testing.T, d *Driver) {
	hog := "const a = []; for (;;) { a.push(Buffer.alloc(1 << 20, 1)); }"
	out, st := run(t, d, "oom", runtime.Spec{Command: []string{"/usr/bin/node", "-e", hog}, MemoryMiB: 64})
	if !st.OOMKilled || st.ExitCode != 137 {
		t.Errorf("got %+v, want OOMKilled and exit code 137; output:\n%s", st, out)
	}
	if st.Err == nil || !strings.Contains(st.Err.Error(), "64 MiB") {
		t.Errorf("got error %v, want it to name the 64 MiB limit", st.Err)
	}
	s, err := d.Stats(t.Context(), "oom")
	if err != nil || s.OOMKills == 0 || s.MemoryLimitBytes != 64<<20 {
		t.Errorf("Stats: got %+v, %v; want an OOM kill and a 64 MiB limit", s, err)
	}
}

// TestDriver_CPUQuota runs two busy threads for about 2 s: the quota of 1
// CPU holds them to about one CPU-second per second.
//
// It does not run in parallel with the package's other tests, which would
// compete for the CPU; a host busy with other work can still starve it,
// which the rate alone cannot tell from a small quota. The throttled
// periods can: see below.
func TestDriver_CPUQuota(t *testing.T) {
	d := newTestDriver(t)
	if _, err := d.Prepare(t.Context(), "cpu"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(t.Context(), "cpu", time.Second) })
	busy := "while :; do :; done & while :; do :; done & wait"
	if _, err := d.Start(t.Context(), runtime.Spec{ID: "cpu", Dir: t.TempDir(), Command: []string{"/bin/sh", "-c", busy}, Port: 3000}); err != nil {
		t.Fatal(err)
	}
	before, err := d.Stats(t.Context(), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	// A burst of one period's quota, for a start's threads.
	quota := time.Duration(d.cfg.CPUs*cpuPeriod) * time.Microsecond
	if b, err := os.ReadFile(d.cgroups.burstFile(d.cgroupPath("cpu"))); err == nil {
		if got, want := strings.TrimSpace(string(b)), strconv.FormatInt(quota.Microseconds(), 10); got != want {
			t.Errorf("CPU burst %s µs, want %s (the quota)", got, want)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	idleBefore := hostIdle(t)
	begin := time.Now()
	// Poll rather than sleep: Stats must keep working meanwhile.
	for time.Since(begin) < 2*time.Second {
		if _, err := d.Stats(t.Context(), "cpu"); err != nil {
			t.Fatal(err)
		}
		select {
		case <-t.Context().Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
	after, err := d.Stats(t.Context(), "cpu")
	if err != nil {
		t.Fatal(err)
	}
	wall := time.Since(begin)
	idle := float64(hostIdle(t)-idleBefore) / float64(wall)
	rate := float64(after.CPU-before.CPU) / float64(wall)
	t.Logf("%.2f CPU-seconds per second, host idle %.2f CPUs; throttled %d periods, %v; waited for a CPU %v", rate, idle, after.ThrottledPeriods, after.Throttled, after.CPUWait-before.CPUWait)
	// Two threads that want two CPUs under a quota of one, or on a busy
	// host, wait for a CPU about half the time or more: the signal the
	// fleet limits a starved executor's requests by.
	if wait := after.CPUWait - before.CPUWait; wait < wall/4 {
		t.Errorf("waited for a CPU %v over %v, want at least a quarter of it", wait, wall.Round(time.Millisecond))
	}
	if rate > 1.5 {
		t.Errorf("got %.2f CPU-seconds per second, want at most about 1 (1.5)", rate)
	}
	// Two busy threads use all they get: below the quota, only a host
	// with no idle CPU left explains it.
	if rate < 0.5 && idle > 0.5 {
		t.Errorf("got %.2f CPU-seconds per second while the host idled %.2f CPUs, want about 1 (0.5 to 1.5)", rate, idle)
	}
	// With CPUs to spare, the two threads want two: the quota must bite.
	// (On a busy host they may get only what the quota and its burst
	// allow without it.)
	if idle > 0.5 && after.ThrottledPeriods == 0 {
		t.Errorf("got no throttled periods while the host idled %.2f CPUs, want the quota to bite", idle)
	}
	// However busy the host: the kernel throttles a group only in a
	// period in which it used up its quota, so the executor's CPU time
	// since it started is at least its throttled periods times the quota
	// (less what stays in per-CPU slices of a few ms). A quota below half
	// the configured one shows here, even when the rate above is starved.
	switch n := after.ThrottledPeriods; {
	case n > 0 && after.CPU/time.Duration(n) < quota/2:
		t.Errorf("got %v of CPU time over %d throttled periods (%v each), want at least half the quota of %v each",
			after.CPU, n, after.CPU/time.Duration(n), quota)
	case n == 0 && rate < 0.5:
		t.Logf("the host is busy with other work and the quota never ran out: its size is not checked")
	}
}

// hostIdle returns the host's idle CPU time so far, from /proc/stat.
func hostIdle(t testing.TB) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		t.Fatal(err)
	}
	// cpu  user nice system idle iowait ... in USER_HZ (100 on Linux).
	f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0])
	idle, _ := strconv.ParseInt(f[4], 10, 64)
	iowait, _ := strconv.ParseInt(f[5], 10, 64)
	return time.Duration(idle+iowait) * 10 * time.Millisecond
}

// TestDriver_CleanupAfterCrash plays a restart after a crash: a new driver
// with the same prefix removes the old one's container, bundle, network and
// cgroups.
func TestDriver_CleanupAfterCrash(t *testing.T) {
	t.Parallel()
	prefix := fmt.Sprintf("t%08x", rand.Uint32())
	crashed := newTestDriverPrefix(t, prefix)
	if _, err := crashed.Prepare(t.Context(), "old"); err != nil {
		t.Fatal(err)
	}
	if _, err := crashed.Start(t.Context(), runtime.Spec{ID: "old", Dir: t.TempDir(), Command: []string{"sleep", "300"}, Port: 3000}); err != nil {
		t.Fatal(err)
	}
	restarted := newTestDriverPrefix(t, prefix)
	if err := restarted.Cleanup(t.Context()); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if left := leftovers(t, restarted); len(left) > 0 {
		t.Errorf("left after Cleanup: %v", left)
	}
	st, err := crashed.Wait(t.Context(), "old")
	if err != nil || st.ExitCode != 137 {
		t.Errorf("crashed executor: got %+v, %v; want it killed (137)", st, err)
	}
	// The old driver's Stop copes with its executor being gone already.
	if err := crashed.Stop(t.Context(), "old", time.Second); err != nil {
		t.Errorf("Stop after Cleanup: %v", err)
	}
}

// TestShiftTree hands a tree to a uid range's root but keeps the
// executors' shared group, which an executor started during the
// migrations needs on its folder.
func TestShiftTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	const base, shared = 3_000_000, 4242
	dir := t.TempDir()
	for name, owner := range map[string][2]int{"host": {0, 0}, "executor": {1234, shared}} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner[0], owner[1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(dir, base, shared); err != nil {
		t.Fatal(err)
	}
	if err := shiftTree(dir, base, shared); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string][2]uint32{".": {base, shared}, "host": {base, base}, "executor": {base, shared}} {
		fi, err := os.Lstat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if got := [2]uint32{st.Uid, st.Gid}; got != want {
			t.Errorf("%s: owner %v, want %v", name, got, want)
		}
	}
}
