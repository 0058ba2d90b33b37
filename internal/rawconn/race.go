//go:build race

package rawconn

import "syscall"

// The race detector does not see data pass through the kernel: the
// standard library's reads and writes annotate it (a release before each
// write, an acquire after each read, on one variable of its own), which a
// raw system call skips, so that what a goroutine did before sending looks
// unordered with what its peer does after receiving. A read or write of
// zero bytes through package syscall makes the same annotations, also for
// a peer that uses an ordinary net.Conn, and moves no data. Only race
// builds make these calls.

func released(fd uintptr) { syscall.Write(int(fd), nil) }
func acquired(fd uintptr) { syscall.Read(int(fd), nil) }
