//go:build !unix

package pgcluster

import (
	"errors"
	"syscall"
)

// Running PostgreSQL as another OS user needs root, which New only allows
// on Unix; elsewhere runUser is always nil.

func sysProcAttr(*runUser) *syscall.SysProcAttr { return nil }

func reachable(string, *runUser) error { return errors.ErrUnsupported }

func reap(int) <-chan struct{} { return nil }
