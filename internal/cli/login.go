package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func newLoginCmd(e *env) *cobra.Command {
	var refresh string
	var getRefresh bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to Hangar",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if refresh == "" {
				return fmt.Errorf("log in with --with-refresh-token <token>: ask your Hangar operator for one (hangar users add <name>)")
			}
			ctx := cmd.Context()
			c, err := e.client("")
			if err != nil {
				return err
			}
			tok, err := c.Exchange(ctx, refresh)
			if err != nil {
				return fmt.Errorf("log in to %s: %w", e.domain(), err)
			}
			c.Token = tok.AccessToken
			p, err := c.Profile(ctx)
			if err != nil {
				return fmt.Errorf("read profile: %w", err)
			}
			if err := writeCredentials(apiclient.Credentials{
				Token: tok.AccessToken, RefreshToken: refresh, UserName: p.Name, Organization: p.Organization,
			}); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "Successfully logged in as %s (organization %s) to %s\n", p.Name, p.Organization, e.domain())
			if getRefresh {
				fmt.Fprintf(e.stdout, "Refresh token: %s\n", refresh)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&refresh, "with-refresh-token", "", "Use a refresh token to programatically log in")
	cmd.Flags().BoolVar(&getRefresh, "get-refresh-token", false, "Print the refresh token you can use to programatically log in")
	return cmd
}
