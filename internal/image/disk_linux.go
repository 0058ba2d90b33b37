package image

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A disk for directory <p>/<n> is the image <p>/.disks/<n>.img, mounted at
// <p>/.disks/<n>, whose data directory is bound at <p>/<n>; beside the
// data are the reserve file and, once opened, a marker. .disks is root's
// alone: sandboxes see the bind, never the reserve.
type diskPaths struct{ dir, image, mnt, data, reserve, opened string }

func pathsOf(dir string) diskPaths {
	dir = filepath.Clean(dir)
	mnt := filepath.Join(filepath.Dir(dir), ".disks", filepath.Base(dir))
	return diskPaths{
		dir: dir, image: mnt + ".img", mnt: mnt, data: filepath.Join(mnt, "data"),
		reserve: filepath.Join(mnt, "reserve"), opened: filepath.Join(mnt, "opened"),
	}
}

// Create makes dir an empty disk on which InstalledBytes are free,
// replacing whatever dir was (a disk or a directory: a resumed build
// starts over).
func (d *Disks) Create(ctx context.Context, dir string) error {
	p := pathsOf(dir)
	if err := d.remove(p); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p.mnt), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(p.image, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	err = f.Truncate(d.imageSize())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	// Lazy initialisation: mkfs writes a few MiB, the image stays sparse.
	if err := d.run(ctx, "mkfs.ext4", "-q", "-F", "-m", "0", "-E", "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", p.image); err != nil {
		return fmt.Errorf("make disk %s: %w", dir, err)
	}
	if err := d.mount(ctx, p); err != nil {
		return err
	}
	if err := os.Mkdir(p.data, 0o755); err != nil {
		return err
	}
	free, err := freeBytes(p.mnt)
	if err != nil {
		return err
	}
	if err := setReserve(p.reserve, free-d.cfg.InstalledBytes); err != nil {
		return err
	}
	return bind(p.data, p.dir)
}

// Open leaves WritableBytes free on dir's disk beyond what it holds now.
// It does so once: later calls (a restarted executor) change nothing.
func (d *Disks) Open(_ context.Context, dir string) error {
	p := pathsOf(dir)
	if _, err := os.Stat(p.opened); err == nil {
		return nil
	}
	free, err := freeBytes(p.mnt)
	if err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p.reserve, &st); err != nil {
		return err
	}
	if err := setReserve(p.reserve, free+st.Blocks*512-d.cfg.WritableBytes); err != nil {
		return err
	}
	return os.WriteFile(p.opened, nil, 0o600)
}

// RemoveAll removes dir and everything below it, first unmounting the
// disks there (their loop devices go with their last mount).
func (d *Disks) RemoveAll(_ context.Context, dir string) error {
	if err := unmountUnder(filepath.Clean(dir)); err != nil {
		return fmt.Errorf("unmount below %s: %w", dir, err)
	}
	return os.RemoveAll(dir)
}

// Restore mounts again, after a reboot or a crash, the disks of the
// directories that glob pattern matches (for example
// <data-dir>/apps/*/versions/*), and detaches loop devices left attached
// to their images without a mount.
func (d *Disks) Restore(ctx context.Context, pattern string) error {
	imageGlob := filepath.Join(filepath.Dir(pattern), ".disks", filepath.Base(pattern)+".img")
	images, err := filepath.Glob(imageGlob)
	if err != nil {
		return err
	}
	mounted, loops, err := mounts()
	if err != nil {
		return err
	}
	var errs []error
	for dev, file := range loopBackings() {
		if ok, _ := filepath.Match(imageGlob, file); ok && !loops[dev] {
			d.cfg.Logger.InfoContext(ctx, "detaching a stale loop device", "device", dev, "image", file)
			errs = append(errs, d.run(ctx, "losetup", "-d", dev))
		}
	}
	for _, img := range images {
		p := pathsOf(filepath.Join(filepath.Dir(filepath.Dir(img)), strings.TrimSuffix(filepath.Base(img), ".img")))
		if !mounted[p.mnt] {
			d.cfg.Logger.InfoContext(ctx, "mounting disk", "dir", p.dir)
			if err := d.mount(ctx, p); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if !mounted[p.dir] {
			if err := os.MkdirAll(p.dir, 0o755); err != nil {
				errs = append(errs, err)
				continue
			}
			errs = append(errs, bind(p.data, p.dir))
		}
	}
	return errors.Join(errs...)
}

// remove unmounts and removes p's disk and dir, if any.
func (d *Disks) remove(p diskPaths) error {
	for _, m := range []string{p.dir, p.mnt} {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
			return fmt.Errorf("unmount %s: %w", m, err)
		}
	}
	for _, path := range []string{p.dir, p.mnt, p.image} {
		if err := os.RemoveAll(path); err != nil {
			return err
		}
	}
	return nil
}

// mount loop-mounts p's image at p.mnt. mount(8) sets the loop device to
// clear itself when the filesystem is unmounted.
func (d *Disks) mount(ctx context.Context, p diskPaths) error {
	if err := os.MkdirAll(p.mnt, 0o700); err != nil {
		return err
	}
	if err := d.run(ctx, "mount", "-t", "ext4", "-o", "loop,nosuid,nodev", p.image, p.mnt); err != nil {
		return fmt.Errorf("mount disk %s: %w", p.dir, err)
	}
	return nil
}

// bind mounts src at dst.
func bind(src, dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", src, dst, err)
	}
	return nil
}

// freeBytes is what unprivileged writers may still write to dir's
// filesystem.
func freeBytes(dir string) (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return int64(st.Bavail) * st.Bsize, nil
}

// setReserve makes the reserve file at path hold n bytes of the disk (none
// when n <= 0).
func setReserve(path string, n int64) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	n = max(n, 0)
	if err := f.Truncate(n); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := unix.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
		return fmt.Errorf("reserve %d bytes in %s: %w", n, path, err)
	}
	return nil
}

// mounts returns the mount points of this mount namespace and the loop
// devices mounted somewhere.
func mounts() (points map[string]bool, loops map[string]bool, err error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	points, loops = map[string]bool{}, map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		points[unescapeMount(fields[4])] = true
		for i, f := range fields {
			if f == "-" && i+2 < len(fields) {
				loops[fields[i+2]] = true
			}
		}
	}
	return points, loops, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes of spaces and the like.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// loopBackings maps each attached loop device (/dev/loopN) to its backing
// file.
func loopBackings() map[string]string {
	out := map[string]string{}
	entries, _ := os.ReadDir("/sys/block")
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join("/sys/block", e.Name(), "loop", "backing_file"))
		if err != nil {
			continue // not a loop device, or not attached
		}
		out["/dev/"+e.Name()] = strings.TrimSuffix(strings.TrimSpace(string(b)), " (deleted)")
	}
	return out
}
