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
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a TCP connection whose Read and Write do not leave the Go
// scheduler's P. Everything else is the *net.TCPConn's.
//
// Bound to a Waiter (an event loop's task, package evloop), it leaves the
// runtime's poller and its reads and writes wait through the task
// (loop.go).
type Conn struct {
	*net.TCPConn
	rc   syscall.RawConn
	r, w op

	registered any          // the Waiter's loop fd was last registered with
	first      bool         // registered first (WrapFirst)
	rd, wd     atomic.Int64 // deadlines, Unix nanoseconds (0: none)
	run        int          // detached: bytes read and written since it last waited

	// Detached (loop.go): the socket left the runtime's poller for an
	// event loop's; fd is then a duplicate Hangar owns. mu orders the
	// switch with other goroutines' Abort and deadlines, and guards
	// waiter (an interface under a mutex: an atomic pointer would need a
	// box allocated per Bind, twice a request).
	mu       sync.Mutex
	waiter   Waiter
	fd       int
	detached bool
	closed   bool
	aborted  atomic.Bool

	interrupt atomic.Bool // Interrupt: the next read that would wait returns
}

// A Waiter waits for a socket's readiness in place of the runtime's
// poller: an event loop's task (*evloop.Task).
type Waiter interface {
	// Running reports whether the calling code is the waiter's own: a
	// goroutine other than the task sees false.
	Running() bool
	// Register adds fd to the waiter's loop, Unregister removes it; Loop
	// identifies that loop. first: the loop serves fd's events before
	// those of sockets registered without it.
	Register(fd int, first bool) error
	Unregister(fd int)
	Loop() any
	// Wait waits until fd may be ready, deadline passes or Wake; the
	// caller then retries. Past deadline it returns
	// os.ErrDeadlineExceeded; other errors (a canceled task) end the
	// read or write.
	Wait(fd int, deadline time.Time) error
	// Wake ends a Wait early; any goroutine may call it.
	Wake()
	// Yield lets the waiter's loop serve its other sockets before the
	// caller goes on.
	Yield()
}

// op is one direction's system call, made by fn, a method value bound
// once: a closure made per call would escape through RawConn and cost
// allocations on every read and write. mu makes concurrent Reads (or
// Writes) take turns, as net.Conn's do.
type op struct {
	mu    sync.Mutex
	fn    func(fd uintptr) bool
	p     []byte
	n     int
	errno syscall.Errno
}

// Wrap returns c with raw reads and writes when it is a *net.TCPConn, and
// c itself otherwise.
func Wrap(c net.Conn) net.Conn { return wrap(c, false) }

// WrapFirst is Wrap for a connection whose events an event loop serves
// first in each of its turns (Waiter.Register): the router's connections
// to executors, whose responses finish requests in flight.
func WrapFirst(c net.Conn) net.Conn { return wrap(c, true) }

func wrap(c net.Conn, first bool) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rw := &Conn{TCPConn: tc, rc: rc, first: first}
	rw.r.fn, rw.w.fn = rw.r.read, rw.w.write
	return rw
}

// read reads into o.p once the socket has data; false waits for it in the
// poller.
func (o *op) read(fd uintptr) bool {
	r, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&o.p[0])), uintptr(len(o.p)))
	if e == syscall.EAGAIN {
		return false
	}
	o.n, o.errno = int(r), e
	if e == 0 && r > 0 {
		acquired(fd)
	}
	return true
}

// write writes from o.p once the socket has room, adding to o.n; false
// waits for room in the poller.
func (o *op) write(fd uintptr) bool {
	released(fd)
	r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&o.p[o.n])), uintptr(len(o.p)-o.n))
	if e == syscall.EAGAIN {
		return false
	}
	if e == 0 {
		o.n += int(r)
	}
	o.errno = e
	return true
}

// Read reads as net.Conn's Read does.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if c.detached {
		return c.readDetached(p)
	}
	o := &c.r
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p, o.n, o.errno = p, 0, 0
	err := c.rc.Read(o.fn)
	o.p = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case o.errno != 0:
		return 0, c.opError("read", os.NewSyscallError("read", o.errno))
	case o.n == 0:
		return 0, io.EOF
	}
	return o.n, nil
}

// Write writes all of p as net.Conn's Write does.
func (c *Conn) Write(p []byte) (int, error) {
	if c.detached {
		return c.writeDetached(p)
	}
	o := &c.w
	o.mu.Lock()
	defer o.mu.Unlock()
	o.p, o.n = p, 0
	defer func() { o.p = nil }()
	for o.n < len(p) {
		o.errno = 0
		err := c.rc.Write(o.fn)
		if err == nil && o.errno != 0 {
			err = os.NewSyscallError("write", o.errno)
		}
		if err != nil {
			return o.n, c.opError("write", err)
		}
	}
	return o.n, nil
}

func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
