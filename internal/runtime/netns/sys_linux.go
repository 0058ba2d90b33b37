package netns

import (
	"errors"
	"fmt"
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
