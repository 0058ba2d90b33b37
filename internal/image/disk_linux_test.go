package image_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-oss/hangar/internal/image"
)

// newDisks returns small Disks (so the test writes little) and a parent
// directory that the test's end unmounts and removes.
func newDisks(t *testing.T) (*image.Disks, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("disks need root (loop devices)")
	}
	if _, err := exec.LookPath("mkfs.ext4"); err != nil {
		t.Skip("no mkfs.ext4 (e2fsprogs)")
	}
	d := image.NewDisks(image.DiskConfig{InstalledBytes: 64 << 20, WritableBytes: 32 << 20})
	parent := filepath.Join(t.TempDir(), "versions")
	t.Cleanup(func() {
		if err := d.RemoveAll(t.Context(), filepath.Dir(parent)); err != nil {
			t.Error(err)
		}
	})
	return d, parent
}

// fill writes n bytes with fallocate to a new file in dir.
func fill(dir, name string, n int64) error {
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.Fallocate(int(f.Fd()), 0, 0, n)
}

// removeCommitted removes dir/name and commits the disk's journal: ext4
// reuses the blocks a file freed only once the transaction that freed
// them commits, and a fill right after the removal failed with ENOSPC in
// CI without it.
func removeCommitted(t *testing.T, dir, name string) {
	t.Helper()
	if err := os.Remove(filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
	d, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if err := unix.Syncfs(int(d.Fd())); err != nil {
		t.Fatal(err)
	}
}

func TestDisks_Bounds(t *testing.T) {
	t.Parallel()
	d, parent := newDisks(t)
	dir := filepath.Join(parent, "v1")
	begin := time.Now()
	if err := d.Create(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("Create took %s", time.Since(begin)) // the cost a deploy pays
	// The build's bound: 64 MiB in all.
	if err := fill(dir, "big", 65<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 65 MiB to a 64 MiB build: %v, want ENOSPC", err)
	}
	removeCommitted(t, dir, "big")
	if err := fill(dir, "installed", 40<<20); err != nil {
		t.Fatalf("writing 40 MiB of a 64 MiB build: %v", err)
	}
	begin = time.Now()
	if err := d.Open(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	t.Logf("Open took %s", time.Since(begin))
	// The executors' bound: 32 MiB beyond the 40 installed, not the 24
	// the build left, nor more on a second Open.
	if err := d.Open(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if err := fill(dir, "run", 33<<20); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("writing 33 MiB past a 32 MiB bound: %v, want ENOSPC", err)
	}
	removeCommitted(t, dir, "run")
	if err := fill(dir, "run", 31<<20); err != nil {
		t.Fatalf("writing 31 MiB of a 32 MiB bound: %v", err)
	}
	// What the disk holds is what dir shows: nothing beside it.
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "installed,run" {
		t.Errorf("dir holds %s, want installed,run", got)
	}
}

func TestDisks_RestoreAndRemove(t *testing.T) {
	t.Parallel()
	d, parent := newDisks(t)
	dir := filepath.Join(parent, "v1")
	if err := d.Create(t.Context(), dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A reboot: nothing mounted. And a crash that left a loop device
	// attached to the image without a mount.
	img := filepath.Join(parent, ".disks", "v1.img")
	for _, m := range []string{dir, filepath.Join(parent, ".disks", "v1")} {
		if err := syscall.Unmount(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("losetup", "--find", "--show", img).Output()
	if err != nil {
		t.Fatal(err)
	}
	stale := strings.TrimSpace(string(out))
	t.Cleanup(func() { _ = exec.Command("losetup", "-d", stale).Run() })
	if err := d.Restore(t.Context(), filepath.Join(parent, "*")); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "kept")); err != nil || string(b) != "x" {
		t.Errorf("after Restore, kept = %q, %v; want x", b, err)
	}
	// Every loop device of the image now backs a mount: the stale one
	// was detached (its number may serve the new mount).
	mountinfo, _ := os.ReadFile("/proc/self/mountinfo")
	for _, e := range mustGlob(t, "/sys/block/loop*/loop/backing_file") {
		dev := "/dev/" + filepath.Base(filepath.Dir(filepath.Dir(e)))
		if b, _ := os.ReadFile(e); strings.TrimSpace(string(b)) == img && !strings.Contains(string(mountinfo), " "+dev+" ") {
			t.Errorf("loop device %s of %s left attached without a mount after Restore", dev, img)
		}
	}
	if err := d.Create(t.Context(), dir); err != nil { // again: starts over
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kept")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after a second Create, kept: %v; want gone", err)
	}
	if err := d.RemoveAll(t.Context(), parent); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(parent); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after RemoveAll: %v; want nothing", err)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), parent) {
		t.Errorf("mounts left below %s after RemoveAll", parent)
	}
	// Loop devices clear themselves once their filesystem is unmounted,
	// a little later: poll until none backs an image below parent.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var left []string
		for _, e := range mustGlob(t, "/sys/block/loop*/loop/backing_file") {
			if b, _ := os.ReadFile(e); strings.HasPrefix(string(b), parent) {
				left = append(left, e)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("loop devices still attached after RemoveAll: %v", left)
		}
	}
}

func mustGlob(t *testing.T, pattern string) []string {
	t.Helper()
	m, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
