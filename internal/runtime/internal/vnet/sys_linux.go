package vnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
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

// bindToDevice is a net.ListenConfig.Control that binds a socket to
// network device dev.
func bindToDevice(dev string) func(_, _ string, c syscall.RawConn) error {
	return func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptString(int(fd), syscall.SOL_SOCKET, syscall.SO_BINDTODEVICE, dev)
		}); err != nil {
			return err
		}
		return serr
	}
}

// listenDevice listens on TCP addr, accepting only connections that arrive
// through network device dev, so that a forward on an executor's gateway is
// unreachable from other executors (which could otherwise reach any host
// address through their own gateway) and from the host itself.
func listenDevice(ctx context.Context, dev, addr string) (net.Listener, error) {
	lc := net.ListenConfig{Control: bindToDevice(dev)}
	return lc.Listen(ctx, "tcp4", addr)
}

// listenPacketDevice is listenDevice for UDP.
func listenPacketDevice(ctx context.Context, dev, addr string) (net.PacketConn, error) {
	lc := net.ListenConfig{Control: bindToDevice(dev)}
	return lc.ListenPacket(ctx, "udp4", addr)
}

// sysctl is the file of a network sysctl of the host's namespace, such as
// "ipv4/conf/eth0/forwarding".
func sysctl(name string) string { return "/proc/sys/net/" + name }

// setSysctl writes value to network sysctl name.
func setSysctl(name, value string) error {
	return os.WriteFile(sysctl(name), []byte(value), 0o644)
}

// ipv6Off turns IPv6 off on link dev. A kernel without IPv6 has nothing to
// turn off.
func ipv6Off(dev string) error {
	err := setSysctl("ipv6/conf/"+dev+"/disable_ipv6", "1")
	if errors.Is(err, fs.ErrNotExist) {
		if _, serr := os.Stat(sysctl("ipv6")); errors.Is(serr, fs.ErrNotExist) {
			return nil
		}
	}
	return err
}

// forwarding reports whether IPv4 forwarding is on for link dev.
func forwarding(dev string) (bool, error) {
	b, err := os.ReadFile(sysctl("ipv4/conf/" + dev + "/forwarding"))
	return strings.TrimSpace(string(b)) == "1", err
}
