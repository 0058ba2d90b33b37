//go:build !linux

package netns

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"syscall"
)

func checkHost() error { return errors.ErrUnsupported }

func lockHost(string) (func(), error) { return nil, errors.ErrUnsupported }

func setProcAttr(*exec.Cmd) {}

func signalGroup(int, syscall.Signal) error { return errors.ErrUnsupported }

func killPID(int) error { return errors.ErrUnsupported }

func exitStatus(ps *os.ProcessState) (int, error) { return ps.ExitCode(), nil }

func listenDevice(context.Context, string, string) (net.Listener, error) {
	return nil, errors.ErrUnsupported
}
