// Package rawconn reads and writes TCP connections with raw system calls,
// for the front door's client connections and the router's connections to
// executors (docs/performance.md, "Raw reads and writes"). It imports
// nothing internal; internal/frontdoor and internal/router import it.
//
// A write to a loopback or veth socket runs the receiver's network stack
// in the writer's system call, and under load often lasts longer than the
// Go runtime's sysmon tick (20 µs). A goroutine in an ordinary system call
// gives up its P, and sysmon hands a P held that long to another thread
// when there is other work: a futex wake and two context switches, many
// times a second. The reads and writes here are on non-blocking sockets,
// so they never block: they run with raw system calls, which keep the P,
// and wait for readiness through the runtime's poller like any net.Conn,
// deadlines included.
package rawconn

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write do not leave the Go
// scheduler's P. Everything else is the *net.TCPConn's.
type Conn struct {
	*net.TCPConn
	rc syscall.RawConn
}

// Wrap returns c with raw reads and writes when it is a *net.TCPConn, and
// c itself otherwise.
func Wrap(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{TCPConn: tc, rc: rc}
}

// Read reads as net.Conn's Read does.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		if e == syscall.EAGAIN {
			return false // wait in the poller until readable
		}
		n, errno = int(r), e
		if e == 0 && n > 0 {
			acquired(fd)
		}
		return true
	})
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p as net.Conn's Write does.
func (c *Conn) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		var errno syscall.Errno
		err := c.rc.Write(func(fd uintptr) bool {
			released(fd)
			r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			if e == syscall.EAGAIN {
				return false // wait in the poller until writable
			}
			if e == 0 {
				written += int(r)
			}
			errno = e
			return true
		})
		if err == nil && errno != 0 {
			err = os.NewSyscallError("write", errno)
		}
		if err != nil {
			return written, c.opError("write", err)
		}
	}
	return written, nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
