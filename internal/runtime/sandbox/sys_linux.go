package sandbox

import (
	"errors"
	"os"
	"syscall"

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
