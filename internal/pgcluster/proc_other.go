//go:build !unix

package pgcluster

import (
	"context"
	"errors"
	"syscall"
	"time"
)

// Running PostgreSQL as another OS user needs root, which New only allows
// on Unix; elsewhere runUser is always nil.

func sysProcAttr(*runUser) *syscall.SysProcAttr { return nil }

func reachable(string, *runUser) error { return errors.ErrUnsupported }

func reap(int) <-chan struct{} { return nil }

func waitGone(context.Context, int, time.Duration) error { return nil }
