package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/hangar-oss/hangar/internal/runtime"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// checkHost reports why this host cannot run the driver, or nil.
func checkHost() error {
	if os.Geteuid() != 0 {
		return hangar.Errorf(hangar.KindUnavailable,
			"the sandbox executor driver needs root: run hangar as root, or choose the unsandboxed development driver with --driver=netns")
	}
	return nil
}

// bindRootfs mounts the host's / read-only at dir. The bind is not
// recursive: the container sees the root filesystem only, none of the
// filesystems mounted on it (/proc, /run, a data disk), and private
// propagation keeps later host mounts out of it.
func bindRootfs(dir string) error {
	if err := syscall.Mount("/", dir, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	for _, flags := range []uintptr{syscall.MS_PRIVATE, syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY} {
		if err := syscall.Mount("", dir, "", flags, ""); err != nil {
			return errors.Join(err, unmount(dir))
		}
	}
	return nil
}

// unmount detaches the mount at dir; nothing mounted there is fine.
func unmount(dir string) error {
	err := syscall.Unmount(dir, syscall.MNT_DETACH)
	if err == nil || errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.ENOENT) {
		return nil
	}
	return err
}

// shareDir makes the top of the app folder dir writable to group gid, so
// that the executor may create files there. What the build put inside
// keeps its owner and mode: the app cannot rewrite its own code.
func shareDir(dir string, gid uint32) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := os.Lchown(dir, -1, int(gid)); err != nil {
		return err
	}
	return os.Chmod(dir, fi.Mode().Perm()|0o070)
}

// stepRootfs mounts the root filesystem of step s at bundle/rootfs: the
// image read-only (a bind of Root, or an overlay of Lowers on Root), or
// for a step with a Layer an overlay whose upper is Layer/upper and whose
// base is an idmapped view of Root, in which host root shows as the app's
// root (docs/images.md); then the app folder read-write at runtime.AppDir and the
// binds read-only. Hangar mounts them, not runc: runc would open their
// sources as the step's root, which may not traverse Hangar's 0700 data
// dir.
func (d *Driver) stepRootfs(bundle string, s step) error {
	rootfs := filepath.Join(bundle, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return err
	}
	switch {
	case s.Layer != "":
		lower := filepath.Join(bundle, "lower")
		if err := os.MkdirAll(lower, 0o755); err != nil {
			return err
		}
		if err := idmapMount(s.Root, lower, s.UIDBase); err != nil {
			return fmt.Errorf("idmap %s: %w", s.Root, err)
		}
		upper, work := filepath.Join(s.Layer, "upper"), filepath.Join(s.Layer, "work")
		for _, dir := range []string{upper, work} {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
		// The upper's top directory is the root directory of the step.
		if err := os.Lchown(upper, int(s.UIDBase), int(s.UIDBase)); err != nil {
			return err
		}
		lowers := strings.Join(append(append([]string{}, s.Lowers...), lower), ":")
		opts := "lowerdir=" + lowers + ",upperdir=" + upper + ",workdir=" + work
		if err := syscall.Mount("overlay", rootfs, "overlay", 0, opts); err != nil {
			return fmt.Errorf("mount overlay %s: %w", opts, err)
		}
	default:
		if err := mountImage(s, rootfs); err != nil {
			return err
		}
	}
	if err := syscall.Mount(s.Dir, filepath.Join(rootfs, runtime.AppDir), "", syscall.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind %s: %w", s.Dir, err)
	}
	for _, b := range s.Binds {
		if err := bindReadOnly(b.Source, filepath.Join(rootfs, b.Target)); err != nil {
			return fmt.Errorf("bind %s: %w", b.Source, err)
		}
	}
	return nil
}

// bindReadOnly binds src at dst, read-only, with private propagation.
func bindReadOnly(src, dst string) error {
	if err := syscall.Mount(src, dst, "", syscall.MS_BIND, ""); err != nil {
		return err
	}
	for _, flags := range []uintptr{syscall.MS_PRIVATE, syscall.MS_BIND | syscall.MS_REMOUNT | syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV} {
		if err := syscall.Mount("", dst, "", flags, ""); err != nil {
			return errors.Join(err, unmount(dst))
		}
	}
	return nil
}

// idmapMount mounts an idmapped view of src at dst, in which uid and gid k
// show as base+k, for k below RangeSize.
func idmapMount(src, dst string, base uint32) error {
	// A process in a new user namespace with the mapping lends it to
	// mount_setattr; it waits on its stdin until we are done.
	cmd := exec.Command("/bin/sh", "-c", "read x")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	m := []syscall.SysProcIDMap{{ContainerID: 0, HostID: int(base), Size: RangeSize}}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUSER, UidMappings: m, GidMappings: m}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start user namespace: %w", err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	if err != nil {
		return err
	}
	defer ns.Close()
	tree, err := unix.OpenTree(unix.AT_FDCWD, src, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return fmt.Errorf("open_tree: %w", err)
	}
	defer unix.Close(tree)
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV, Userns_fd: uint64(ns.Fd())}
	if err := unix.MountSetattr(tree, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		return fmt.Errorf("mount_setattr: %w", err)
	}
	if err := unix.MoveMount(tree, "", unix.AT_FDCWD, dst, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount: %w", err)
	}
	return nil
}

// removeStepBundle unmounts a step's root filesystem (with what is bound
// in it) and removes its bundle. Like removeBundle, it removes known names
// only, never recursively.
func removeStepBundle(bundle string) error {
	var errs []error
	for _, dir := range []string{"rootfs", "lower"} {
		if err := unmount(filepath.Join(bundle, dir)); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, name := range []string{"config.json", "hosts", "resolv.conf", "runc.log", "rootfs", "lower", ""} {
		if err := os.Remove(filepath.Join(bundle, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// mountImage mounts s's image read-only at rootfs: a bind of Root, or an
// overlay of Lowers on Root.
func mountImage(s step, rootfs string) error {
	if len(s.Lowers) == 0 {
		return bindReadOnly(s.Root, rootfs)
	}
	opts := "lowerdir=" + strings.Join(append(append([]string{}, s.Lowers...), s.Root), ":")
	if err := syscall.Mount("overlay", rootfs, "overlay", syscall.MS_RDONLY, opts); err != nil {
		return fmt.Errorf("mount overlay %s: %w", opts, err)
	}
	return nil
}
