package vnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
)

// lockHost takes the host-wide lock that serializes network allocation
// between all Hangar instances on this host, and returns its release.
func lockHost(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { f.Close() }, nil // closing the file releases the lock
}

// killPID sends SIGKILL to pid; a process that is gone is not an error.
func killPID(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// listenDevice listens on TCP addr, accepting only connections that arrive
// through network device dev, so that a forward on an executor's gateway is
// unreachable from other executors (which could otherwise reach any host
// address through their own gateway) and from the host itself.
func listenDevice(ctx context.Context, dev, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, dev)
		}); err != nil {
			return err
		}
		return serr
	}}
	return lc.Listen(ctx, "tcp4", addr)
}
