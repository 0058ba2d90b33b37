package rawconn

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A connection bound to an event loop's task leaves the runtime's poller:
// a socket the runtime's epoll also watched would wake one of its idle
// threads on every event, for nothing, twice a request. Bind duplicates
// the socket and closes the runtime's descriptor; reads and writes then
// run on the duplicate and wait through the task (another goroutine's, in
// poll(2)); Attach gives the socket back to the runtime (for net/http).
// Deadlines are kept here for both.

// FD returns the detached connection's descriptor.
func (c *Conn) FD() int { return c.fd }

// Detached reports whether c left the runtime's poller.
func (c *Conn) Detached() bool { return c.detached }

// Bind makes c's reads and writes by w's task wait through w, detaching c
// from the runtime's poller first; nil unbinds (c stays detached, for the
// next task). Only the goroutine or task that uses c may call it.
func (c *Conn) Bind(w Waiter) error {
	if w == nil {
		c.setWaiter(nil)
		return nil
	}
	if !c.detached {
		if err := c.detach(); err != nil {
			return err
		}
	}
	if c.registered != w.Loop() {
		if err := w.Register(c.fd, c.first); err != nil {
			return err
		}
		c.registered = w.Loop()
	}
	c.setWaiter(w)
	return nil
}

func (c *Conn) setWaiter(w Waiter) {
	c.mu.Lock()
	c.waiter = w
	c.mu.Unlock()
}

func (c *Conn) getWaiter() Waiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.waiter
}

func (c *Conn) detach() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted.Load() {
		return net.ErrClosed
	}
	fd, err := -1, error(nil)
	if cerr := c.rc.Control(func(s uintptr) { fd, err = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("fcntl", err)
	}
	c.TCPConn.Close()
	c.fd, c.detached = fd, true
	return nil
}

// Attach gives a detached c back to the runtime's poller, unbound. Only
// the goroutine or task that uses c may call it.
func (c *Conn) Attach() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.waiter != nil && c.detached {
		// The socket outlives the duplicate: its events must not reach
		// the loop under a number another socket may take.
		c.waiter.Unregister(c.fd)
		c.registered = nil
	}
	c.waiter = nil
	if !c.detached {
		return nil
	}
	if c.closed {
		return net.ErrClosed
	}
	f := os.NewFile(uintptr(c.fd), "")
	nc, err := net.FileConn(f)
	f.Close()
	c.closed = true
	if err != nil {
		return err
	}
	tc := nc.(*net.TCPConn)
	rc, err := tc.SyscallConn()
	if err != nil {
		tc.Close()
		return err
	}
	c.TCPConn, c.rc, c.detached, c.closed = tc, rc, false, false
	if d := c.rd.Load(); d != 0 {
		tc.SetReadDeadline(deadline(d))
	}
	if d := c.wd.Load(); d != 0 {
		tc.SetWriteDeadline(deadline(d))
	}
	if c.aborted.Load() {
		tc.Close()
	}
	return nil
}

// task returns the waiter the calling code waits through, or nil.
func (c *Conn) task() Waiter {
	if w := c.getWaiter(); w != nil && w.Running() {
		return w
	}
	return nil
}

// Yield lets the bound task's loop serve its other sockets before the
// calling task goes on; it does nothing unbound or off the task.
func (c *Conn) Yield() {
	if w := c.task(); w != nil {
		w.Yield()
	}
}

// wake ends a bound task's wait, so that it sees a new deadline or the
// connection aborted.
func (c *Conn) wake() {
	if w := c.getWaiter(); w != nil {
		w.Wake()
	}
}

func deadline(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return max(t.UnixNano(), 1)
}

// SetReadDeadline sets the read deadline; any goroutine may call it.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline sets the write deadline; any goroutine may call it.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

// SetDeadline sets both deadlines; any goroutine may call it.
func (c *Conn) SetDeadline(t time.Time) error { return c.setDeadline(t, true, true) }

func (c *Conn) setDeadline(t time.Time, r, w bool) error {
	var err error
	c.mu.Lock()
	if r {
		c.rd.Store(nanos(t))
	}
	if w {
		c.wd.Store(nanos(t))
	}
	if !c.detached {
		switch {
		case r && w:
			err = c.TCPConn.SetDeadline(t)
		case r:
			err = c.TCPConn.SetReadDeadline(t)
		default:
			err = c.TCPConn.SetWriteDeadline(t)
		}
	}
	c.mu.Unlock()
	c.wake()
	return err
}

// Abort ends the connection from any goroutine: reads and writes in
// progress and to come fail; the user of c still closes it.
func (c *Conn) Abort() {
	c.mu.Lock()
	c.aborted.Store(true)
	if c.detached && !c.closed {
		unix.Shutdown(c.fd, unix.SHUT_RDWR)
	} else if !c.detached {
		c.TCPConn.Close()
	}
	c.mu.Unlock()
	c.wake()
}

// Close closes the connection. Detached, only its user may: the
// descriptor's number could be reused under a read of another goroutine.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.detached {
		return c.TCPConn.Close()
	}
	if c.closed {
		return c.opError("close", net.ErrClosed)
	}
	c.closed = true
	return unix.Close(c.fd)
}

// readDetached reads from the duplicate; the system call keeps the P, as
// op.read's.
func (c *Conn) readDetached(p []byte) (int, error) {
	for {
		if c.aborted.Load() || c.closed {
			return 0, c.opError("read", net.ErrClosed)
		}
		r, _, e := syscall.RawSyscall(syscall.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
		switch {
		case e == syscall.EAGAIN:
			if c.interrupt.Load() && c.interrupt.Swap(false) {
				return 0, c.opError("read", ErrInterrupted)
			}
			if err := c.await(false); err != nil {
				return 0, c.opError("read", err)
			}
			continue
		case e == syscall.EINTR:
			continue
		case e != 0:
			return 0, c.opError("read", os.NewSyscallError("read", e))
		case r == 0:
			return 0, io.EOF
		}
		acquired(uintptr(c.fd))
		c.ran(int(r))
		return int(r), nil
	}
}

// Interrupt makes the detached c's read in progress, or its next one,
// return ErrInterrupted once it finds nothing to read, rather than wait:
// for an event loop's task whose reads another task of its loop must
// stop (an HTTP/2 connection's, to write the frames its streams made). It
// does not resume the task (evloop's Task.Schedule does).
func (c *Conn) Interrupt() { c.interrupt.Store(true) }

// ErrInterrupted ends a read stopped by Interrupt. It is a timeout, and
// temporary, as a deadline's error: a TLS connection over c keeps the
// record it was reading and may be read again.
var ErrInterrupted error = interrupted{}

type interrupted struct{}

func (interrupted) Error() string   { return "read interrupted" }
func (interrupted) Timeout() bool   { return true }
func (interrupted) Temporary() bool { return true }

// writeDetached writes all of p to the duplicate.
func (c *Conn) writeDetached(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if c.aborted.Load() || c.closed {
			return n, c.opError("write", net.ErrClosed)
		}
		released(uintptr(c.fd))
		r, _, e := syscall.RawSyscall(syscall.SYS_WRITE, uintptr(c.fd), uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
		switch {
		case e == syscall.EAGAIN:
			if err := c.await(true); err != nil {
				return n, c.opError("write", err)
			}
		case e == syscall.EINTR:
		case e != 0:
			return n, c.opError("write", os.NewSyscallError("write", e))
		default:
			n += int(r)
			c.ran(int(r))
		}
	}
	return n, nil
}

// yieldEvery is how many bytes a detached connection reads and writes
// without waiting before its task yields the loop (Waiter.Yield): a
// stream whose executor and client both keep up never waits, and would
// otherwise hold every other connection of its loop for as long as it
// lasts. 64 KiB take the loop ~0.25 ms to relay as a plain body,
// ~2.5 ms as one-byte chunks (docs/frontdoor.md).
const yieldEvery = 64 << 10

// ran counts n bytes moved without waiting, and yields the bound task's
// loop every yieldEvery.
func (c *Conn) ran(n int) {
	if c.run += n; c.run < yieldEvery {
		return
	}
	c.run = 0
	if w := c.task(); w != nil {
		w.Yield()
	}
}

// await waits until the duplicate may be ready: through the bound task
// when the task calls, else in poll(2).
func (c *Conn) await(write bool) error {
	d := c.rd.Load()
	if write {
		d = c.wd.Load()
	}
	c.run = 0
	dl := deadline(d)
	if w := c.task(); w != nil {
		return w.Wait(c.fd, dl)
	}
	timeout := -1
	if !dl.IsZero() {
		left := time.Until(dl)
		if left <= 0 {
			return os.ErrDeadlineExceeded
		}
		timeout = int((left + time.Millisecond - 1) / time.Millisecond)
	}
	events := int16(unix.POLLIN)
	if write {
		events = unix.POLLOUT
	}
	// Bounded, so that a deadline moved or an abort is seen.
	_, err := unix.Poll([]unix.PollFd{{Fd: int32(c.fd), Events: events}}, min(timeout, 100))
	if err != nil && err != unix.EINTR {
		return os.NewSyscallError("poll", err)
	}
	return nil
}
