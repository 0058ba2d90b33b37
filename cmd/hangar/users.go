package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/server"
	"github.com/hangar-oss/hangar/internal/store"
)

// withStore runs f on the metadata store. Operator commands work while
// hangar serve runs on the same data dir (they use its cluster) and when it
// does not (they start the cluster for themselves).
func withStore(ctx context.Context, cfg config.Config, f func(st *store.DB) error) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	mdb, started, err := server.OpenMetadata(ctx, cfg, false, log)
	if err != nil {
		return err
	}
	if started {
		defer mdb.Stop(context.WithoutCancel(ctx)) //nolint:errcheck
	}
	st, err := store.Open(ctx, mdb.URL)
	if err != nil {
		return err
	}
	defer st.Close()
	return f(st)
}

// withOperator runs f with the operator's user commands on the metadata
// store (withStore).
func withOperator(ctx context.Context, cfg config.Config, f func(o *accounts.Operator) error) error {
	return withStore(ctx, cfg, func(st *store.DB) error {
		return f(accounts.NewOperator(accounts.OperatorConfig{}, st))
	})
}

func newUsersCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	users := &cobra.Command{Use: "users", Short: "Manage users: add, signup, list, token, passwd, disable, enable, delete"}
	users.AddCommand(newUsersAddCmd(cfg, stdout), newUsersSignupCmd(cfg, stdout), newUsersListCmd(cfg, stdout),
		newUsersTokenCmd(cfg, stdout), newUsersPasswdCmd(cfg, stdout), newUsersDisableCmd(cfg, stdout, true),
		newUsersDisableCmd(cfg, stdout, false), newUsersDeleteCmd(cfg, stdout))
	return users
}

func newUsersAddCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	var org, email string
	var passwordStdin bool
	add := &cobra.Command{
		Use:   "add <name>",
		Short: "Create a user and print a refresh token to log in with",
		Long: "Create a user and print a refresh token as the last word of the output. The user gets an\n" +
			"organization of its own, named after it, whose admin it is; with --org it joins that\n" +
			"organization instead (creating it, with the user as admin, when it does not exist).\n" +
			"With --password-stdin it also gets the password read from stdin (see users passwd).\n" +
			"Works while hangar serve runs on the same data dir.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			// Checked before the password is read and the store opened.
			n := accounts.NewUser{Name: args[0], Email: email, Org: org}
			if err := n.Validate(); err != nil {
				return err
			}
			if passwordStdin {
				var err error
				if n.Password, err = readPassword(cmd, stdout); err != nil {
					return err
				}
				if err := n.Validate(); err != nil {
					return err
				}
			}
			return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
				u, tok, err := o.AddUser(ctx, n)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Created user %s in organization %s.\nLog in with: dbos-cloud login --with-refresh-token %s\n", u.Name, u.Org, tok)
				return nil
			})
		},
	}
	add.Flags().StringVar(&org, "org", "", "organization to join (default: a new one named after the user)")
	add.Flags().StringVar(&email, "email", "", "email address")
	add.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the user's password from stdin (one line)")
	return add
}

func newUsersPasswdCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	var clear bool
	cmd := &cobra.Command{
		Use:   "passwd <name>",
		Short: "Set a user's password, read from stdin (one line), for the device login page",
		Long: "Set the password with which a user signs in on the device login page (dbos-cloud login),\n" +
			"read as one line from stdin, so that it can be scripted: echo \"$PW\" | hangar users passwd\n" +
			"alice. On a terminal it is asked for without echo. Passwords have 10 to 256 characters and\n" +
			"are stored as argon2id hashes. --clear removes the password: the user signs in with a\n" +
			"refresh token again. Users change their own with dbos-cloud user password. Works while\n" +
			"hangar serve runs on the same data dir.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			var pw string
			if !clear {
				var err error
				if pw, err = readPassword(cmd, stdout); err != nil {
					return err
				}
				// Checked before the store is opened.
				if err := auth.ValidatePassword(pw); err != nil {
					return err
				}
			}
			return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
				if err := o.SetPassword(ctx, args[0], pw); err != nil {
					return err
				}
				if clear {
					fmt.Fprintf(stdout, "Removed the password of %s.\n", args[0])
				} else {
					fmt.Fprintf(stdout, "Set the password of %s: it signs in on the device login page.\n", args[0])
				}
				return nil
			})
		},
	}
	cmd.Flags().BoolVar(&clear, "clear", false, "remove the password instead")
	return cmd
}

// readPassword reads a password as one line of cmd's stdin, without echo
// on a terminal.
func readPassword(cmd *cobra.Command, stdout io.Writer) (string, error) {
	in := cmd.InOrStdin()
	var line string
	if f, ok := in.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stdout, "Password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stdout)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		line = string(b)
	} else {
		s, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password from stdin: %w", err)
		}
		line = strings.TrimRight(s, "\r\n")
	}
	if line == "" {
		return "", errors.New("no password on stdin: pipe one line, e.g. echo \"$PW\" | hangar users passwd <name>")
	}
	return line, nil
}

func newUsersSignupCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "signup",
		Short: "Create an account whose holder picks the username, and print its refresh token",
		Long: "Create an account without a username and print a refresh token as the last word of the\n" +
			"output. Its holder logs in with it and registers (dbos-cloud register -u <name>, or any\n" +
			"command of the official CLI, which asks for a username): the account gets an organization\n" +
			"of its own, or joins one with an invite secret (dbos-cloud register -u <name> -s <secret>).",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
				id, tok, err := o.AddSignup(ctx)
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Created sign-up account %s: it chooses its username when it registers.\n"+
					"Log in with: dbos-cloud login --with-refresh-token %s\n", id, tok)
				return nil
			})
		},
	}
}

func newUsersListCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List users, their organizations and status",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
				accs, err := o.Accounts(ctx)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NAME\tORGANIZATION\tROLE\tSTATUS\tCREATED\tLAST LOGIN")
				for _, a := range accs {
					name, role, status := a.Name, "member", "active"
					if a.Admin {
						role = "admin"
					}
					if a.Pending {
						name, role, status = a.ID, "-", "not registered"
					}
					if a.Disabled {
						status = "disabled"
					}
					seen := "-"
					if !a.LastSeen.IsZero() {
						seen = a.LastSeen.UTC().Format(time.DateTime)
					}
					org := a.Org
					if org == "" {
						org = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", name, org, role, status, a.CreatedAt.UTC().Format(time.DateTime), seen)
				}
				return tw.Flush()
			})
		},
	}
}

func newUsersTokenCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "token <name>",
		Short: "Print a new refresh token for a user (for a lost token, or after enable)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
				u, tok, err := o.NewToken(ctx, args[0])
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "New refresh token for %s.\nLog in with: dbos-cloud login --with-refresh-token %s\n", u.Name, tok)
				return nil
			})
		},
	}
}

// newUsersDisableCmd is `users disable` (disable) or `users enable`.
func newUsersDisableCmd(cfg *config.Config, stdout io.Writer, disable bool) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "disable <name>",
		Short: "Disable a user: its requests get 401 and its refresh tokens are revoked",
		Args:  cobra.ExactArgs(1),
	}
	if !disable {
		cmd.Use, cmd.Short = "enable <name>", "Enable a disabled user again (give it a new token with users token)"
	}
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		ctx := cmd.Context()
		return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
			if err := o.SetDisabled(ctx, args[0], disable); err != nil {
				return err
			}
			if disable {
				fmt.Fprintf(stdout, "Disabled user %s: its access and refresh tokens no longer work.\n", args[0])
			} else {
				fmt.Fprintf(stdout, "Enabled user %s. Its earlier refresh tokens stay revoked: hangar users token %s prints a new one.\n", args[0], args[0])
			}
			return nil
		})
	}
	return cmd
}

func newUsersDeleteCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	return &cobra.Command{
		Use:   "delete <name>",
		Short: "Delete a user and its tokens",
		Long: "Delete a user (or a sign-up account, by ID) and its refresh tokens. An admin's organization\n" +
			"passes to its longest-standing other member. The last member of an organization that still\n" +
			"has applications or databases cannot be deleted: delete those first.",
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			return withOperator(ctx, *cfg, func(o *accounts.Operator) error {
				if err := o.DeleteUser(ctx, args[0]); err != nil {
					return err
				}
				fmt.Fprintf(stdout, "Deleted user %s.\n", args[0])
				return nil
			})
		},
	}
}

// newKeysCmd is `hangar keys rotate`.
func newKeysCmd(cfg *config.Config, stdout io.Writer) *cobra.Command {
	keys := &cobra.Command{Use: "keys", Short: "Manage the access-token signing keys"}
	keys.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Sign access tokens with a new key; tokens signed with earlier keys stay valid until they expire",
		Long: "Add a new access-token signing key. A running hangar serve signs with it within a minute;\n" +
			"earlier keys keep verifying the tokens they signed until those expire (24 hours), so nobody\n" +
			"is logged out. Refresh tokens are not affected: revoke them with users disable.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			return withStore(ctx, *cfg, func(st *store.DB) error {
				ks, err := auth.RotateKeys(ctx, st, auth.Config{})
				if err != nil {
					return err
				}
				fmt.Fprintf(stdout, "New signing key %s; %d earlier key(s) still verify the tokens they signed.\n", ks[0].ID, len(ks)-1)
				return nil
			})
		},
	})
	return keys
}
