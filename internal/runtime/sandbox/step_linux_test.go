package sandbox

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/image/imagetest"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/vnet"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// testUIDBase is the uid range of the steps of these tests.
const testUIDBase = 3 << 20

// runStep runs script in a step on the shared test base and returns its
// output and exit code.
func runStep(t *testing.T, d *Driver, s step, script string) (string, int, error) {
	t.Helper()
	if s.Root == "" {
		root, err := imagetest.Cache(t).Base(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		s.Root = root
	}
	if s.Dir == "" {
		s.Dir = t.TempDir()
	}
	if s.ID == "" {
		s.ID = strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
		s.ID = s.ID[:min(len(s.ID), 40)]
	}
	if s.UIDBase == 0 {
		s.UIDBase = testUIDBase
	}
	s.Args = []string{"/bin/sh", "-c", script}
	s.Env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	var out bytes.Buffer
	s.Stdout = &out
	code, err := d.runStep(t.Context(), s)
	return out.String(), code, err
}

func TestRunStep_Contained(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	secret := filepath.Join(t.TempDir(), "secrets.key")
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	host := exec.Command("sleep", "300")
	if err := host.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Process.Kill(); host.Wait() })
	dir := t.TempDir()
	attempts := []struct {
		name, script string
	}{
		{"write /etc", "echo x > /etc/x"},
		{"write /usr", "echo x > /usr/bin/x"},
		{"read the host's secrets.key", "cat " + secret},
		{"list host processes", "ls /proc | grep -qx " + strconv.Itoa(host.Process.Pid)},
		{"signal a host process", "kill -9 " + strconv.Itoa(host.Process.Pid)},
		{"mount", "mount -t tmpfs none /mnt"},
		{"reach the network", "python3 -c 'import socket; socket.create_connection((\"192.0.2.2\", 22), 2)'"},
	}
	// What it may do: write its own tree, as root of its own range.
	out, code, err := runStep(t, d, step{ID: "contained", Dir: dir}, "id -u && echo ok > /app/built && mkdir -p /app/a/b && touch /tmp/x")
	if err != nil || code != 0 {
		t.Fatalf("write the tree: exit %d, %v: %s", code, err, out)
	}
	fi, err := os.Stat(filepath.Join(dir, "built"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid != testUIDBase {
		t.Errorf("the step's file is owned by uid %d on the host, want %d", uid, testUIDBase)
	}
	for _, a := range attempts {
		out, code, err := runStep(t, d, step{ID: "contained", Dir: dir}, a.script)
		if err != nil {
			t.Fatalf("%s: RunStep: %v", a.name, err)
		}
		t.Logf("attempt: %s -> exit %d: %s", a.name, code, strings.TrimSpace(out))
		if code == 0 {
			t.Errorf("%s: succeeded, want it to fail", a.name)
		}
	}
	if err := host.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("the host process is gone: %v", err)
	}
}

func TestRunStep_KillsLeftovers(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	marker := "hi-leftover-" + strconv.Itoa(os.Getpid())
	_, code, err := runStep(t, d, step{}, "(setsid bash -c 'exec -a "+marker+" sleep 300' &) ; sleep 0.2; cat /proc/[0-9]*/cmdline | tr '\\0' '\\n' | grep -qx "+marker+" || exit 3")
	if err != nil || code != 0 {
		t.Fatalf("RunStep: exit %d, %v", code, err)
	}
	if pids := processesNamed(t, marker); len(pids) > 0 {
		t.Errorf("processes the step left running: %v", pids)
	}

	begin := time.Now()
	_, _, err = runStep(t, d, step{Timeout: time.Second}, "bash -c 'exec -a "+marker+" sleep 300'")
	if !errors.Is(err, ErrStepTimeout) {
		t.Errorf("RunStep past its timeout: %v, want ErrStepTimeout", err)
	}
	if pids := processesNamed(t, marker); len(pids) > 0 {
		t.Errorf("processes the timed-out step left running: %v", pids)
	}
	t.Logf("timed-out step returned after %s", time.Since(begin))
}

func TestRunStep_MemoryLimit(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	out, code, err := runStep(t, d, step{MemoryBytes: 64 << 20}, "python3 -c 'b = bytearray(16 << 20)'")
	if err != nil || code != 0 {
		t.Fatalf("allocating 16 MiB under a 64 MiB limit: exit %d, %v: %s", code, err, out)
	}
	out, code, err = runStep(t, d, step{MemoryBytes: 64 << 20}, "python3 -c 'b = bytearray(256 << 20); print(len(b))'")
	if err != nil {
		t.Fatal(err)
	}
	if code == 0 {
		t.Errorf("allocating 256 MiB under a 64 MiB limit succeeded: %s", out)
	}
}

func TestRunStep_Layer(t *testing.T) {
	t.Parallel()
	d := newTestDriver(t)
	layer := t.TempDir()
	out, code, err := runStep(t, d, step{Layer: layer}, "printf '#!/bin/sh\\necho hi\\n' > /usr/local/bin/hi && chmod +x /usr/local/bin/hi && rm /etc/apt/apt.conf.d/90hangar && hi")
	if err != nil || code != 0 || out != "hi\n" {
		t.Fatalf("setup step: exit %d, %v: %q", code, err, out)
	}
	root, err := imagetest.Cache(t).Base(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "usr/local/bin/hi")); err == nil {
		t.Errorf("the step wrote into the base")
	}
	if _, err := os.Stat(filepath.Join(root, "etc/apt/apt.conf.d/90hangar")); err != nil {
		t.Errorf("the step removed a file of the base: %v", err)
	}
	// Later steps see the layer, read-only.
	out, code, err = runStep(t, d, step{Lowers: []string{filepath.Join(layer, "upper")}}, "hi && test ! -e /etc/apt/apt.conf.d/90hangar && ! touch /usr/local/bin/x")
	if err != nil || code != 0 {
		t.Errorf("step on the layer: exit %d, %v: %q", code, err, out)
	}
}

// processesNamed returns the PIDs of the host processes whose argv[0] is
// name.
func processesNamed(t *testing.T, name string) []int {
	t.Helper()
	var pids []int
	deadline := time.Now().Add(5 * time.Second)
	for {
		pids = pids[:0]
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
			if arg0, _, _ := bytes.Cut(b, []byte{0}); string(arg0) == name {
				pids = append(pids, pid)
			}
		}
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestDriver_RunStepSetupLayer(t *testing.T) {
	t.Parallel()
	t.Run("Plain", func(t *testing.T) { t.Parallel(); testSetupLayer(t, nil, "hi-") })
	// The layer on a disk of its own (docs/disk.md).
	t.Run("Disk", func(t *testing.T) {
		t.Parallel()
		testSetupLayer(t, image.NewDisks(image.DiskConfig{InstalledBytes: 256 << 20, WritableBytes: 64 << 20}), "hd-")
	})
}

func testSetupLayer(t *testing.T, disks *image.Disks, prefix string) {
	images := imagetest.Cache(t)
	d := newTestDriver(t, func(c *Config) { c.Images, c.Disks = images, disks })
	img := runtime.Image{AppID: prefix + strconv.Itoa(os.Getpid()), Layer: "traceroute"}
	if err := d.ResetLayer(t.Context(), img); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.ReleaseApp(context.Background(), img.AppID); err != nil {
			t.Error(err)
		}
	})
	run := func(id string, write bool, script string) (string, int) {
		var out bytes.Buffer
		code, err := d.RunStep(t.Context(), runtime.Step{
			ID: id, Image: img, WriteLayer: write, Dir: t.TempDir(),
			Args: []string{"/bin/sh", "-c", script}, Env: []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}, Stdout: &out,
		})
		if err != nil {
			t.Fatalf("RunStep %s: %v", id, err)
		}
		return out.String(), code
	}
	// A cache mount from below a directory only root may enter.
	private := filepath.Join(t.TempDir(), "private")
	if err := os.MkdirAll(filepath.Join(private, "cache"), 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chmod(private, 0o700)
	var out bytes.Buffer
	code, err := d.RunStep(t.Context(), runtime.Step{
		ID: "mount", Image: runtime.Image{AppID: img.AppID}, Dir: t.TempDir(), Stdout: &out,
		Mounts: []runtime.Mount{{Source: filepath.Join(private, "cache"), Target: "/tmp/cache", Writable: true}},
		Args:   []string{"/bin/sh", "-c", "echo x > /tmp/cache/f"},
	})
	if err != nil || code != 0 {
		t.Errorf("write to a mount: exit %d, %v: %s", code, err, out.String())
	}
	// The seed's example, as written.
	if out, code := run("setup", true, "apt install traceroute"); code != 0 {
		t.Fatalf("apt install traceroute: exit %d:\n%s", code, out)
	}
	if err := d.CommitLayer(t.Context(), img); err != nil {
		t.Fatal(err)
	}
	if out, code := run("use", false, "traceroute --version"); code != 0 {
		t.Errorf("traceroute on the layer: exit %d: %s", code, out)
	}
	if _, err := os.Stat("/usr/bin/traceroute.db"); err == nil {
		t.Errorf("the host got traceroute")
	}
}

// TestDriver_NothingRunsBeforeTheFirewall attacks the order of an
// executor's and a build step's start: their network gets its firewall
// only when their relays start (vnet.Pool.Setup), so a command that ran
// before that would reach the host's own services. With every firewall
// install made a second slower, each command's first connection to a
// host service listening on every address, through the gateway, must
// still be blocked.
func TestDriver_NothingRunsBeforeTheFirewall(t *testing.T) {
	t.Parallel()
	images := imagetest.Cache(t)
	slow := func(nft vnet.NFT) vnet.NFT {
		return func(ctx context.Context, script string) error {
			if strings.Contains(script, "chain") { // an install, not a removal
				time.Sleep(time.Second)
			}
			return nft(ctx, script)
		}
	}
	d := newTestDriver(t, func(c *Config) { c.Images, c.wrapNFT = images, slow })
	img := runtime.Image{AppID: "fw" + strconv.Itoa(os.Getpid())}
	t.Cleanup(func() {
		if err := d.ReleaseApp(context.Background(), img.AppID); err != nil {
			t.Error(err)
		}
	})
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	// probe connects to the host service at once and says whether it got
	// through.
	probe := []string{"/opt/hangar/node/bin/node", "-e", `const s = require("net").connect(process.env.PORT, process.env.GW);
s.setTimeout(1500);
s.on("connect", () => { console.log("CONNECTED"); process.exit(0); });
s.on("timeout", () => { console.log("BLOCKED timeout"); process.exit(0); });
s.on("error", (e) => { console.log("BLOCKED " + e.code); process.exit(0); });`}
	check := func(what, out string) {
		t.Helper()
		if !strings.Contains(out, "BLOCKED") {
			t.Errorf("%s's first connection to a host service: %q, want it blocked", what, out)
		} else {
			t.Logf("%s: %s", what, strings.TrimSpace(out))
		}
	}

	var stepOut bytes.Buffer
	if _, err := d.RunStep(t.Context(), runtime.Step{
		ID: "fw", Image: img, Dir: t.TempDir(), Args: probe, Stdout: &stepOut,
		EnvFor: func(gw string) []string { return []string{"GW=" + gw, "PORT=" + port} },
	}); err != nil {
		t.Fatal(err)
	}
	check("a build step", stepOut.String())

	n, err := d.Prepare(t.Context(), "fw")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), "fw", time.Second) })
	var exOut runtimetest.SyncBuffer
	if _, err := d.Start(t.Context(), runtime.Spec{
		ID: "fw", Dir: t.TempDir(), Image: img, Command: probe, Port: 3000, Stdout: &exOut,
		Env: []string{"GW=" + n.Gateway, "PORT=" + port},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Wait(t.Context(), "fw"); err != nil {
		t.Fatal(err)
	}
	check("an executor", exOut.String())
}
