package pgcluster

import (
	"context"
	"errors"
	"os/exec"
	"time"
)

// runner runs one PostgreSQL program in dir and returns its combined output.
// A failed exit is reported as an error with an ExitCode method, as
// *exec.ExitError has. Tests substitute a fake.
type runner func(ctx context.Context, dir, name string, args ...string) ([]byte, error)

// execRunner runs programs as as (nil: the current user).
func execRunner(as *runUser) runner {
	return func(ctx context.Context, dir, name string, args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = sysProcAttr(as)
		// pg_ctl's postmaster redirects its output to the log file; should a
		// descendant keep our pipes open anyway, do not wait for it forever.
		cmd.WaitDelay = 5 * time.Second
		return cmd.CombinedOutput()
	}
}

// exitCode returns the exit code carried by err, if any.
func exitCode(err error) (int, bool) {
	var e interface{ ExitCode() int }
	if errors.As(err, &e) {
		return e.ExitCode(), true
	}
	return 0, false
}
