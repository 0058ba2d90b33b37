package netns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// checkHost reports why this host cannot run the driver, or nil.
func checkHost() error {
	if os.Geteuid() != 0 {
		return hangar.Errorf(hangar.KindUnavailable, "the netns executor driver needs root")
	}
	return nil
}

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

// setProcAttr puts the process in its own process group, so that signals
// reach everything it spawns.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}

// signalGroup sends sig to process group pgid; a group that is gone is not
// an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	return ignoreESRCH(syscall.Kill(-pgid, sig))
}

// killPID sends SIGKILL to pid; a process that is gone is not an error.
func killPID(pid int) error {
	return ignoreESRCH(syscall.Kill(pid, syscall.SIGKILL))
}

func ignoreESRCH(err error) error {
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// exitStatus converts a process state to a shell-style exit code; err is set
// when a signal ended the process.
func exitStatus(ps *os.ProcessState) (code int, err error) {
	ws, ok := ps.Sys().(syscall.WaitStatus)
	if ok && ws.Signaled() {
		return 128 + int(ws.Signal()), fmt.Errorf("killed by signal %v", ws.Signal())
	}
	return ps.ExitCode(), nil
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
