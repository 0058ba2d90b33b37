//go:build ignore

// Command peakrss runs a command with the same stdio and, when it exits,
// prints its peak resident set size (the kernel's ru_maxrss) to stderr as
// "peakrss: <KiB> KiB", then exits with the command's status. The upload
// benchmark (bench/upload/run.sh) builds it (go build peakrss.go) to measure
// the CLI; it is Linux-only (ru_maxrss in KiB) and kept out of ./... by its
// build tag, being a tool of the benchmark rather than part of Hangar.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: peakrss <command> [args...]")
		os.Exit(2)
	}
	cmd := exec.Command(os.Args[1], os.Args[2:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		fmt.Fprintln(os.Stderr, "peakrss:", err)
		os.Exit(1)
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		fmt.Fprintf(os.Stderr, "peakrss: %d KiB\n", ru.Maxrss) // KiB on Linux
	}
	os.Exit(cmd.ProcessState.ExitCode())
}
