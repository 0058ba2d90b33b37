package cli

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func newLoginCmd(e *env) *cobra.Command {
	var refresh string
	var getRefresh bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to DBOS cloud",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if refresh == "" {
				return errors.New("log in with --with-refresh-token <token>: ask your Hangar operator for one (hangar users add <name>)")
			}
			ctx := cmd.Context()
			c, err := e.client("")
			if err != nil {
				return err
			}
			tok, err := c.Exchange(ctx, refresh)
			if err != nil {
				return e.failed("Failed to authenticate with refresh token", err)
			}
			c.Token = tok.AccessToken
			p, err := c.Profile(ctx)
			if err != nil {
				return e.failed("Failed to login", err)
			}
			if err := e.writeCredentials(apiclient.Credentials{
				Token: tok.AccessToken, RefreshToken: refresh, UserName: p.Name, Organization: p.Organization,
			}); err != nil {
				return err
			}
			e.info("Successfully logged in as %s!", p.Name)
			if getRefresh {
				e.info("Refresh token saved to .dbos/credentials")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&getRefresh, "get-refresh-token", false, "Get a refresh token you can use to programatically log in")
	cmd.Flags().StringVar(&refresh, "with-refresh-token", "", "Use a refresh token to programatically log in")
	return cmd
}

func newProfileCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "profile",
		Short: "Get user information",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			p, err := s.Profile(cmd.Context())
			if err != nil {
				return e.failed("Failed to retrieve info for user "+s.creds.UserName, err)
			}
			if asJSON {
				return e.printJSON(p)
			}
			e.info("Name: %s", p.Name)
			e.info("Email: %s", p.Email)
			e.info("Subscription Plan: %s", p.SubscriptionPlan)
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newRegisterCmd(e *env) *cobra.Command {
	var username, secret string
	cmd := &cobra.Command{
		Use:   "register",
		Short: "Register a user with DBOS cloud",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := e.session(cmd.Context(), username, secret)
			if err != nil {
				return err
			}
			if s.creds.UserName != username {
				e.warn(`You are trying to register %s, but are currently authenticated as %s. To register a new user, please run "dbos-cloud logout".`, username, s.creds.UserName)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&username, "username", "u", "", "Username")
	cmd.Flags().StringVarP(&secret, "secret", "s", "", "Organization secret")
	cmd.MarkFlagRequired("username")
	return cmd
}

func newLogoutCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Log out of DBOS cloud",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			if err := os.Remove(e.path(credentialsPath)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
			return nil
		},
	}
}

func newRevokeCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "revoke <token>",
		Short: "Revoke a refresh token",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client("")
			if err != nil {
				return err
			}
			if err := c.Revoke(cmd.Context(), args[0]); err != nil {
				return e.failed("Failed to revoke refresh token", err)
			}
			return nil
		},
	}
}

// jsonFlag adds the official --json flag.
func jsonFlag(cmd *cobra.Command, v *bool) {
	cmd.Flags().BoolVar(v, "json", false, "Emit JSON output")
}

// printJSON prints v as one line of JSON, like JSON.stringify.
func (e *env) printJSON(v any) error {
	enc := json.NewEncoder(e.stdout)
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
