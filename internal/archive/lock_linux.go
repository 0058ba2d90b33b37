package archive

import (
	"os"
	"syscall"
)

// lock marks f as an upload under way: flock(2) holds until f is closed or
// its process dies, on local and network file systems alike.
func lock(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// tryLock reports whether f's upload no longer runs, taking its lock.
func tryLock(f *os.File) bool {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}
