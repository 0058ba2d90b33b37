package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestOverlay_LockedLoopKeepsItsThread builds the probe with and without the
// overlay and counts, in each one's runtime trace, the preemptions of its
// spinning locked goroutine: the stock build shows sysmon's (about 25 in
// 500 ms), the patched build none. It fails when this toolchain's runtime
// no longer takes the patch.
func TestOverlay_LockedLoopKeepsItsThread(t *testing.T) {
	goroot := strings.TrimSpace(run(t, "go", "env", "GOROOT"))
	dir := t.TempDir()
	overlay, err := write(goroot, filepath.Join(dir, "overlay"))
	if err != nil {
		t.Fatal(err)
	}
	stock := filepath.Join(dir, "stock")
	patched := filepath.Join(dir, "patched")
	run(t, "go", "build", "-o", stock, "./testdata/probe")
	run(t, "go", "build", "-overlay", overlay, "-o", patched, "./testdata/probe")

	if n := preemptions(t, stock); n < 10 {
		t.Errorf("stock build: %d preemptions in 500 ms; want sysmon's (>= 10), or the probe shows nothing", n)
	}
	if n := preemptions(t, patched); n > 1 {
		t.Errorf("patched build: %d preemptions in 500 ms; want none", n)
	}
}

func TestWrite_NoAnchorWritesEmptyOverlay(t *testing.T) {
	goroot := t.TempDir()
	rt := filepath.Join(goroot, "src", "runtime")
	if err := os.MkdirAll(rt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rt, "proc.go"), []byte("package runtime\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	overlay, err := write(goroot, t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "0 copies") {
		t.Fatalf("err = %v, want errNoAnchor with 0 copies", err)
	}
	b, err := os.ReadFile(overlay)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"Replace":{}}` {
		t.Errorf("overlay = %s, want an empty Replace", b)
	}
}

// preemptions runs the probe bin and counts the preemptions in its trace.
func preemptions(t *testing.T, bin string) int {
	t.Helper()
	out := bin + ".trace"
	run(t, bin, out)
	return strings.Count(run(t, "go", "tool", "trace", "-d=parsed", out), `Running->Runnable Reason="preempted"`)
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
