package build

import "syscall"

// diskFull reports whether dir's filesystem has (almost) no room left: a
// command that failed then most likely failed for it.
func diskFull(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && int64(st.Bavail)*st.Bsize < 1<<20
}
