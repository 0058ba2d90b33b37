// Package runtime defines the contract between Hangar's orchestration and the
// drivers that run executors (one running instance of an app version): the
// Driver interface and the Spec, ExecSpec, Executor, Network, Status, Info
// and Stats types. Drivers live in sub-packages (netns, sandbox, later
// microvm) and are tested with the runtimetest conformance suite. It imports
// only the standard library and internal/hangar; orchestration packages
// (deploy) and drivers may import it.
package runtime

import (
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Driver runs executors. The life of an executor is Prepare, Start, any
// number of Wait and Exec calls, and Stop, which the caller must call for
// every prepared executor, also when Start failed or the process already
// exited.
type Driver interface {
	// Prepare allocates the network of executor id and returns it, so that
	// the caller can build addresses the app must use (for example database
	// URLs through the Gateway) into Spec.Env before Start. It returns
	// KindInvalid for a bad id, KindConflict when id is already prepared and
	// KindUnavailable when the host cannot run executors.
	Prepare(ctx context.Context, id string) (Network, error)
	// Start starts spec.Command inside the network Prepare allocated for
	// spec.ID and returns once the process runs; it does not wait for the app
	// to listen. It returns KindInvalid for a bad spec, KindNotFound when
	// spec.ID is not prepared, KindConflict when it was already started and
	// KindUnavailable when the host cannot run executors.
	Start(ctx context.Context, spec Spec) (*Executor, error)
	// Stop sends SIGTERM to the executor's processes, kills them once grace
	// has passed (or ctx is done), then releases everything Prepare and Start
	// allocated. Stopping an unknown or already stopped executor returns nil.
	Stop(ctx context.Context, id string, grace time.Duration) error
	// Wait blocks until the executor's process exits and reports how. It
	// returns KindNotFound when id is unknown, stopped or never started, and
	// ctx.Err() when ctx is done first.
	Wait(ctx context.Context, id string) (Status, error)
	// Inspect reports what the driver knows of executor id now, without
	// blocking on it. It returns KindNotFound when id is unknown or stopped.
	Inspect(ctx context.Context, id string) (Info, error)
	// Stats reports the resource use of executor id as its cgroup accounts
	// it; once the process exited, it reports the last reading. It returns
	// KindNotFound when id is unknown, stopped or never started, and
	// KindUnavailable when the driver does not account resources.
	Stats(ctx context.Context, id string) (Stats, error)
	// Exec runs spec.Args inside executor id, isolated as its app is (the
	// same user, namespaces, cgroup and limits, working directory and
	// environment), and waits until it exits. When ctx is done first, it
	// kills the process and everything it started and returns ctx.Err().
	// It returns the exit code, 128+n when signal n killed the process.
	// It returns KindInvalid for empty Args, KindNotFound when id is
	// unknown or stopped, and KindConflict when its app does not run
	// (prepared but not started, or exited).
	Exec(ctx context.Context, id string, spec ExecSpec) (exitCode int, err error)
}

// ExecSpec is a process Exec runs in a running executor.
type ExecSpec struct {
	// Args is the argv; Args[0] is looked up in the executor's PATH.
	Args []string
	// Stdin is the process's input; nil means none.
	Stdin io.Reader
	// Stdout and Stderr receive its output; nil discards it.
	Stdout, Stderr io.Writer
}

// Validate checks an ExecSpec; drivers call it first in Exec. Its errors
// are KindInvalid.
func (s ExecSpec) Validate() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return hangar.Errorf(hangar.KindInvalid, "exec: empty command")
	}
	return nil
}

// State is where an executor is in its life.
type State string

// The states of an executor, in order.
const (
	StatePrepared State = "prepared" // Prepare succeeded, Start not yet
	StateRunning  State = "running"  // Start succeeded, the process runs
	StateExited   State = "exited"   // the process exited; Stop not yet
)

// Info is a snapshot of an executor.
type Info struct {
	ID    string
	State State
	// Network is what Prepare allocated.
	Network Network
	// Addr and PID are as in Executor; empty while StatePrepared.
	Addr string
	PID  int
	// StartedAt is when Start started the process; zero while
	// StatePrepared.
	StartedAt time.Time
	// Status is how the process ended; set in StateExited only.
	Status Status
}

// Stats is an executor's resource use, as its cgroup accounts it.
type Stats struct {
	// MemoryBytes is the memory in use now (page cache included, as the
	// kernel charges it), and MemoryLimitBytes the limit; 0 means none.
	MemoryBytes, MemoryLimitBytes uint64
	// MemoryPeakBytes is the most memory in use at once since the executor
	// started (cgroup v1 memory.max_usage_in_bytes, v2 memory.peak); 0
	// means unknown, as on cgroup v2 before Linux 5.19.
	MemoryPeakBytes uint64
	// Pids counts the executor's processes and threads now (the pids
	// controller's pids.current); 0 once they all exited.
	Pids uint64
	// CPU is the CPU time used since the executor started, all threads.
	CPU time.Duration
	// ThrottledPeriods counts the scheduler periods in which the CPU quota
	// ran out, and Throttled is the time the executor was held back.
	ThrottledPeriods uint64
	Throttled        time.Duration
	// CPUWait is how long the executor's threads were ready to run but
	// waited for a CPU (its quota spent, or the host's CPUs busy): cgroup
	// v2's cpu.pressure "some" total, the time at least one thread
	// waited; on v1, the sum of its threads' run delays
	// (/proc/<tid>/schedstat), which forgets threads that ended. 0 when
	// the kernel does not account it.
	CPUWait time.Duration
	// OOMKills counts processes the kernel killed for exceeding the memory
	// limit.
	OOMKills uint64
}

// Spec describes the process an executor runs.
type Spec struct {
	// ID is the executor ID, also passed to the app as DBOS__VMID: 1 to 63
	// characters of a-z, 0-9 and -, starting with a letter or digit.
	ID string
	// Org, App and Version label the executor in logs (and, on drivers
	// that make objects of it, those objects).
	Org, App, Version string
	// Dir is the absolute path of the working directory (the app folder).
	Dir string
	// Command is the argv to run; Hangar passes {"/bin/sh", "-c", "<start
	// commands joined with &&>"}.
	Command []string
	// Env is the process's full environment.
	Env []string
	// Port is the app's HTTP port inside the executor (3000, 8000 or 8080).
	Port int
	// MemoryMiB is the executor's memory limit. Drivers that cannot enforce it
	// yet only record it.
	MemoryMiB int
	// Stdout receives the process's stdout and stderr; nil discards them.
	Stdout io.Writer
	// Image is the root filesystem a sandboxing driver runs the app on; the
	// app then sees Dir at AppDir. Zero: the driver's default.
	Image Image
	// Forwards lists the TCP ports the executor reaches on its Gateway address
	// and that the driver relays to host addresses: {ListenPort: 5432,
	// Target: "127.0.0.1:54321"} lets the app use <Gateway>:5432 to reach a
	// database that listens on host loopback only. Only this executor can
	// reach its forwards.
	Forwards []Forward
}

// Forward relays TCP connections the executor opens to Gateway:ListenPort to
// Target, a host "ip:port".
type Forward struct {
	ListenPort int
	Target     string
	// Hold, when not nil, holds the connections: the relay accepts them
	// but connects them to Target only once Hold is closed; a Stop
	// meanwhile ends them, and a driver may end one held for more than
	// 10 s (what clients usually wait for a connection). A deploy starts
	// the new version's executor while its migrations run this way: the
	// app loads, but reaches its database only once they are done
	// (docs/performance.md).
	Hold <-chan struct{}
}

// Executor is a started executor.
type Executor struct {
	ID string
	// Addr is the host-reachable "ip:port" of the app's HTTP port.
	Addr string
	// Gateway is the IP address the executor sees the host as.
	Gateway string
	// PID is the host PID of the executor's main process.
	PID int
}

// Network is the network Prepare allocated for an executor.
type Network struct {
	// Gateway is the IP address the executor sees the host as; forwards
	// listen on it.
	Gateway string
	// Address is the executor's own IP address, reachable from the host.
	Address string
}

// Status is how an executor's process ended.
type Status struct {
	// ExitCode is the process's exit code, or 128+n when signal n killed it
	// (143 for SIGTERM, 137 for SIGKILL), as a shell reports it.
	ExitCode int
	// Err describes an abnormal end (a signal, or an error collecting the
	// process's output); it is nil after a normal exit, whatever the code.
	Err error
	// OOMKilled reports that the kernel killed a process of the executor
	// for exceeding its memory limit (usually the cause of a 137).
	OOMKilled bool
}

var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// ValidateID checks an executor ID.
func ValidateID(id string) error {
	if !idRE.MatchString(id) {
		return hangar.Errorf(hangar.KindInvalid, "invalid executor ID %q: use 1 to 63 characters of a-z, 0-9 and -, starting with a letter or digit", id)
	}
	return nil
}

// Validate checks a Spec; drivers call it first in Start. Its errors are
// KindInvalid.
func (s Spec) Validate() error {
	if err := ValidateID(s.ID); err != nil {
		return err
	}
	if !filepath.IsAbs(s.Dir) {
		return hangar.Errorf(hangar.KindInvalid, "executor %s: working directory %q is not an absolute path", s.ID, s.Dir)
	}
	if len(s.Command) == 0 || s.Command[0] == "" {
		return hangar.Errorf(hangar.KindInvalid, "executor %s: empty command", s.ID)
	}
	if err := validPort(s.Port); err != nil {
		return hangar.Errorf(hangar.KindInvalid, "executor %s: app %v", s.ID, err)
	}
	seen := make(map[int]bool, len(s.Forwards))
	for _, f := range s.Forwards {
		if err := validPort(f.ListenPort); err != nil {
			return hangar.Errorf(hangar.KindInvalid, "executor %s: forward %v", s.ID, err)
		}
		if seen[f.ListenPort] {
			return hangar.Errorf(hangar.KindInvalid, "executor %s: port %d is forwarded twice", s.ID, f.ListenPort)
		}
		seen[f.ListenPort] = true
		if _, _, err := net.SplitHostPort(f.Target); err != nil {
			return hangar.Errorf(hangar.KindInvalid, "executor %s: forward target %q is not host:port", s.ID, f.Target)
		}
	}
	return nil
}

func validPort(p int) error {
	if p < 1 || p > 65535 {
		return fmt.Errorf("port %d is out of range 1 to 65535", p)
	}
	return nil
}
