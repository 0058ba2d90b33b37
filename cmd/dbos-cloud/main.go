// Command dbos-cloud is Hangar's DBOS Cloud CLI.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/hangar-oss/hangar/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}
