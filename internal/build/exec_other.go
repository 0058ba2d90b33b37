//go:build !unix

package build

import "os/exec"

// setProcessGroup does nothing where there are no process groups: cancelling
// the command kills only its own process.
func setProcessGroup(*exec.Cmd) {}
