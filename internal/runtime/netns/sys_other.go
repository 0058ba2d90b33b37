//go:build !linux

package netns

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
)

func checkHost() error { return errors.ErrUnsupported }

func setProcAttr(*exec.Cmd) {}

func signalGroup(int, syscall.Signal) error { return errors.ErrUnsupported }

func exitStatus(ps *os.ProcessState) (int, error) { return ps.ExitCode(), nil }
