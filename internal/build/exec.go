package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// Runner runs build commands. It is the seam that lets the steps be tested
// without running npm, pip or go.
type Runner interface {
	// Run runs c and waits for it to exit. A command that fails (non-zero exit, killed, timed out) is a
	// KindInvalid error whose message names the command and its exit code;
	// a cancelled ctx or a command that cannot be started is an internal
	// error.
	Run(ctx context.Context, c Cmd) error
}

// Cmd is one shell command.
type Cmd struct {
	// Dir is the working directory.
	Dir string
	// Shell is the command line, run by /bin/sh -c.
	Shell string
	// Env is the command's complete environment; nothing is inherited.
	Env []string
	// Stdout receives both standard output and standard error. Nil discards
	// them.
	Stdout io.Writer
	// Timeout bounds the command; zero means only ctx bounds it.
	Timeout time.Duration
	// Image is the image a sandboxing runner runs the command on, with
	// the app folder at runtime.AppDir; ExecRunner ignores it.
	Image runtime.Image
	// WriteLayer makes the command's writes to its root filesystem land in
	// Image.Layer (setup).
	WriteLayer bool
	// Mounts are host directories the command uses besides Dir (caches).
	// Commands name them by Target; for ExecRunner, which binds nothing,
	// Builder.mount makes Target equal Source.
	Mounts []runtime.Mount
	// DB is how the command reaches the app's database; nil when it does
	// not.
	DB *DB
}

// DB is the database a command reaches.
type DB struct {
	// Target is the host "ip:port" of the app's database instance.
	Target string
	// Env returns the command's database variables for an instance
	// reached at host:port.
	Env func(host string, port int) []string
}

// ExecRunner runs commands with os/exec. Each command runs in its own
// process group, and the whole group is killed when ctx is cancelled or the
// timeout expires. Processes a command leaves running after it exits are
// not killed: containing them is the job of the build's cgroup. The zero
// value is ready to use.
type ExecRunner struct{}

var _ Runner = ExecRunner{}

// waitDelay bounds how long Run waits for output after the command exits
// (or is killed), in case a process that left the group still holds it.
const waitDelay = 5 * time.Second

// Run implements Runner.
func (ExecRunner) Run(ctx context.Context, c Cmd) error {
	runCtx := ctx
	if c.Timeout > 0 {
		var cancel context.CancelFunc
		runCtx, cancel = context.WithTimeout(ctx, c.Timeout)
		defer cancel()
	}
	cmd := exec.CommandContext(runCtx, "/bin/sh", "-c", c.Shell)
	cmd.Dir = c.Dir
	cmd.Env = append([]string{}, c.Env...) // non-nil: never inherit Hangar's environment
	if c.DB != nil {
		host, port, err := net.SplitHostPort(c.DB.Target)
		if err != nil {
			return fmt.Errorf("run %q: database %w", c.Shell, err)
		}
		p, _ := strconv.Atoi(port)
		cmd.Env = append(cmd.Env, c.DB.Env(host, p)...)
	}
	cmd.Stdout, cmd.Stderr = c.Stdout, c.Stdout
	cmd.WaitDelay = waitDelay
	setProcessGroup(cmd)

	err := cmd.Run()
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("run %q: %w", c.Shell, ctx.Err())
	case runCtx.Err() != nil:
		return hangar.Errorf(hangar.KindInvalid, "command %q timed out after %s and was killed", c.Shell, c.Timeout)
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return fmt.Errorf("run %q: %w", c.Shell, err)
	}
	if code := ee.ExitCode(); code >= 0 {
		return hangar.Errorf(hangar.KindInvalid, "command %q exited with code %d", c.Shell, code)
	}
	return hangar.Errorf(hangar.KindInvalid, "command %q was stopped (%s)", c.Shell, ee.ProcessState)
}
