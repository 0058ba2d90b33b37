package main

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/store"
)

func newUsersCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	users := &cobra.Command{Use: "users", Short: "Manage users"}
	var org, email string
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Create a user and print a refresh token to log in with",
		Long: "Create a user (in an organization named after them unless --org is given) and print a refresh\n" +
			"token as the last word of the output. Works while hangar serve runs on the same data dir.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if err := cfg.Validate(); err != nil {
				return err
			}
			name := args[0]
			if org == "" {
				org = name
			}
			if err := hangar.ValidateUserName(name); err != nil {
				return err
			}
			if err := hangar.ValidateUserName(org); err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			mdb, started, err := openMetadata(ctx, *cfg, false, log)
			if err != nil {
				return err
			}
			if started {
				defer mdb.cluster.Stop(ctx) //nolint:errcheck
			}
			st, err := store.Open(ctx, mdb.url)
			if err != nil {
				return err
			}
			defer st.Close()
			u := hangar.User{ID: uuid.NewString(), Name: name, Email: email, Org: org}
			if err := st.CreateUser(ctx, u); err != nil {
				return err
			}
			tok := auth.NewRefreshToken()
			if err := st.AddRefreshToken(ctx, uuid.NewString(), u.ID, tok); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "Created user %s in organization %s.\nLog in with: dbos-cloud login --with-refresh-token %s\n", name, org, tok)
			return nil
		},
	}
	add.Flags().StringVar(&org, "org", "", "organization (default: the user's name)")
	add.Flags().StringVar(&email, "email", "", "email address")
	users.AddCommand(add)
	return users
}
