package fleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// This file runs a shell command on one live executor of an app, as the
// newer DBOS Cloud CLI's `app cmd` does: for inspection and repairs, with
// the app's own isolation, a time limit and a trace in the app's logs.

const (
	// CommandTimeout bounds a command run with ExecutorCommand, as DBOS
	// Cloud bounds `app cmd`.
	CommandTimeout = 10 * time.Second
	// CommandOutputLimit caps each of a command's stdout and stderr;
	// the rest is dropped and a note says how much.
	CommandOutputLimit = 1 << 20
	// CommandTimedOut is the exit code of a command killed at
	// CommandTimeout, as coreutils' timeout reports it.
	CommandTimedOut = 124
)

// Command is a shell command to run on an executor of an app.
type Command struct {
	// Org and App name the app.
	Org, App string
	// Executor is the ID of one of the app's live executors.
	Executor string
	// Command is run with /bin/sh -c.
	Command string
	// User is who runs it, for the logs.
	User string
}

// CommandResult is what a command printed and how it ended.
type CommandResult struct {
	Stdout, Stderr string
	// ExitCode is the command's exit code: 128+n when signal n killed it,
	// CommandTimedOut when it ran out of time.
	ExitCode int
}

// ExecutorCommand runs c.Command with /bin/sh -c on the live executor
// c.Executor of org's app c.App, isolated as the app is (its user,
// namespaces, cgroup, folder and environment), for at most CommandTimeout
// or until ctx's deadline: then it and everything it started are killed,
// and its exit code is CommandTimedOut. The command, who ran it and its
// exit code go to the app's logs and Hangar's, at WARN: a command can
// change what the app does, and killing the app's process makes the
// supervisor replace the executor. It returns KindNotFound when the app or
// the executor (among the app's) does not exist, and KindConflict when the
// executor's process no longer runs.
func (f *Fleet) ExecutorCommand(ctx context.Context, c Command) (CommandResult, error) {
	a, err := f.store.App(ctx, c.Org, c.App)
	if err != nil {
		return CommandResult{}, err
	}
	f.mu.Lock()
	ex := f.live[c.Executor]
	f.mu.Unlock()
	if ex == nil || ex.app != a.ID {
		return CommandResult{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found for application %s", c.Executor, a.Name)
	}
	// A deadline of ctx's that comes first counts as running out of time too.
	tctx, cancel := context.WithTimeout(ctx, CommandTimeout)
	defer cancel()
	stdout, stderr := &cappedBuffer{limit: CommandOutputLimit}, &cappedBuffer{limit: CommandOutputLimit}
	begin := f.cfg.Now()
	code, err := f.driver.Exec(tctx, ex.id, runtime.ExecSpec{Args: []string{"/bin/sh", "-c", c.Command}, Stdout: stdout, Stderr: stderr})
	took := f.cfg.Now().Sub(begin)
	timedOut := errors.Is(err, context.DeadlineExceeded)
	logArgs := []any{"app", a.Name, "version", ex.version, "executor", ex.id, "user", c.User, "command", c.Command}
	if err != nil && !timedOut {
		f.log.WarnContext(ctx, "command on executor failed", append(logArgs, "err", err)...)
		return CommandResult{}, fmt.Errorf("run a command on executor %s: %w", ex.id, err)
	}
	res := CommandResult{Stdout: stdout.String(), Stderr: stderr.String(), ExitCode: code}
	if timedOut {
		res.ExitCode = CommandTimedOut
		res.Stderr += fmt.Sprintf("hangar: the command ran out of time after %s and was killed\n", took.Round(100*time.Millisecond))
	}
	f.log.WarnContext(ctx, "command run on executor", append(logArgs, "exit_code", res.ExitCode, "took", took)...)
	w := f.logs.Writer(a.ID, logSource, ex.version, ex.id)
	logf(w, "hangar: WARN: %s ran a command on executor %s: %q; exit code %d", c.User, ex.id, c.Command, res.ExitCode)
	w.Close()
	return res, nil
}

// cappedBuffer keeps the first limit bytes written to it and counts the
// rest. It is safe for concurrent use.
type cappedBuffer struct {
	limit int

	mu      sync.Mutex
	buf     bytes.Buffer
	dropped int
}

// Write keeps what fits and never fails, so that the command is not
// stopped by a full buffer.
func (b *cappedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	keep := min(len(p), max(b.limit-b.buf.Len(), 0))
	b.buf.Write(p[:keep])
	b.dropped += len(p) - keep
	return len(p), nil
}

// String returns what was kept, followed by a note of what was dropped.
func (b *cappedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped == 0 {
		return b.buf.String()
	}
	return fmt.Sprintf("%s\nhangar: output truncated to its first %d bytes (%d more bytes dropped)\n", b.buf.String(), b.limit, b.dropped)
}
