package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/config"
)

// run parses args and runs one command; internal/server wires the server.
func run(ctx context.Context, args []string, getenv config.Getenv, stdout, stderr io.Writer) error {
	cfg := config.Defaults(getenv)
	root := &cobra.Command{
		Use:           "hangar",
		Short:         "Hangar: a self-hosted DBOS Cloud",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&cfg.DataDir, "data-dir", cfg.DataDir, "directory for all of Hangar's state (env HANGAR_DATA_DIR)")
	pf.StringVar(&cfg.DatabaseURL, "database-url", cfg.DatabaseURL, "metadata PostgreSQL URL; empty runs an embedded cluster in the data dir (env HANGAR_DATABASE_URL)")
	root.AddCommand(newServeCmd(&cfg, stdout, stderr), newUsersCmd(&cfg, stdout), newKeysCmd(&cfg, stdout))
	return root.ExecuteContext(ctx)
}
