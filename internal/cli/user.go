package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func newLoginCmd(e *env) *cobra.Command {
	var refresh string
	var getRefresh bool
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Log in to DBOS cloud",
		Long: "Log in to DBOS cloud. Without --with-refresh-token, this prints a URL and a code: open the\n" +
			"URL, sign in to Hangar's page and approve the code, and the login finishes here (an OAuth\n" +
			"device login). The credentials, with a refresh token that renews the access token when it\n" +
			"expires, go to .dbos/credentials in this directory.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			c, err := e.client("")
			if err != nil {
				return err
			}
			var tok apiclient.DeviceTokenResponse
			if refresh != "" {
				t, err := c.Exchange(ctx, refresh)
				if err != nil {
					return e.failed("Failed to authenticate with refresh token", err)
				}
				tok = apiclient.DeviceTokenResponse{AccessToken: t.AccessToken, RefreshToken: refresh}
			} else if tok, err = e.deviceLogin(ctx, c); err != nil {
				return err
			}
			c.Token = tok.AccessToken
			p, err := c.Profile(ctx)
			if err != nil {
				return e.failed("Failed to login", err)
			}
			if err := e.writeCredentials(apiclient.Credentials{
				Token: tok.AccessToken, RefreshToken: tok.RefreshToken, UserName: p.Name, Organization: p.Organization,
			}); err != nil {
				return err
			}
			e.info("Successfully logged in as %s!", p.Name)
			if getRefresh {
				if refresh == "" {
					e.info("Refresh token: %s", tok.RefreshToken)
				}
				e.info("Refresh token saved to .dbos/credentials")
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&getRefresh, "get-refresh-token", false, "Get a refresh token you can use to programatically log in")
	cmd.Flags().StringVar(&refresh, "with-refresh-token", "", "Use a refresh token to programatically log in")
	return cmd
}

// deviceLogin runs the device flow (RFC 8628) against the server: it shows
// the approval page's URL and the code, then polls every interval (5 s more
// after each slow_down) until the user approves or denies the code or it
// expires.
func (e *env) deviceLogin(ctx context.Context, c *apiclient.Client) (apiclient.DeviceTokenResponse, error) {
	e.info("Please authenticate with DBOS Cloud!")
	dc, err := c.DeviceCode(ctx)
	if err != nil {
		return apiclient.DeviceTokenResponse{}, e.failed("Failed to log in", err)
	}
	e.info("Login URL: %s", dc.VerificationURIComplete)
	e.info("Open it, sign in and approve the code %s; it expires in %d minutes.", dc.UserCode, dc.ExpiresIn/60)
	interval := time.Duration(max(dc.Interval, 1)) * time.Second
	waited := time.Duration(0)
	said := false
	for waited < time.Duration(dc.ExpiresIn)*time.Second {
		if err := e.sleep(ctx, interval); err != nil {
			return apiclient.DeviceTokenResponse{}, err
		}
		waited += interval
		tok, err := c.DeviceToken(ctx, dc.DeviceCode)
		var oe *apiclient.OAuthError
		var ne net.Error
		switch {
		case err == nil:
			return tok, nil
		case errors.As(err, &oe) && oe.Code == apiclient.OAuthAuthorizationPending:
			if !said {
				e.info("Waiting for login...")
				said = true
			}
		case errors.As(err, &oe) && oe.Code == apiclient.OAuthSlowDown:
			interval += 5 * time.Second
		case errors.As(err, &oe) && oe.Code == apiclient.OAuthAccessDenied:
			return apiclient.DeviceTokenResponse{}, errors.New("the login was denied on the approval page: run `dbos-cloud login` again to retry")
		case errors.As(err, &oe) && oe.Code == apiclient.OAuthExpiredToken:
			return apiclient.DeviceTokenResponse{}, errors.New("the login code expired before it was approved: run `dbos-cloud login` again")
		case errors.As(err, &ne):
			e.debug("Polling for the login failed, retrying: %v", err)
		default:
			return apiclient.DeviceTokenResponse{}, e.failed("Failed to log in", err)
		}
	}
	return apiclient.DeviceTokenResponse{}, errors.New("the login code expired before it was approved: run `dbos-cloud login` again")
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

// newUserCmd is Hangar's `user` group: what users manage of their own
// account beyond the official CLI's login, register and profile.
func newUserCmd(e *env) *cobra.Command {
	user := group("user", "Manage your own account: its password (Hangar)")
	user.AddCommand(newUserPasswordCmd(e))
	return user
}

func newUserPasswordCmd(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "password",
		Short: "Set or change your password, to sign in on the device login page (Hangar)",
		Long: "Set or change the password with which you sign in on Hangar's device login page\n" +
			"(dbos-cloud login): 10 to 256 characters, stored as an argon2id hash. On a terminal it asks\n" +
			"for your current password (leave it empty when you have none) and the new one twice,\n" +
			"without echo. Otherwise it reads stdin: the new password on the first line and, when you\n" +
			"have one, the current password on the second.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			req, err := e.readPasswords()
			if err != nil {
				return err
			}
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			if err := s.SetPassword(cmd.Context(), req); err != nil {
				return e.failed("Failed to set the password", err)
			}
			e.info("Password set for %s: sign in with it on the login page of dbos-cloud login.", s.creds.UserName)
			return nil
		},
	}
}

// readPasswords asks for the current and new passwords without echo on a
// terminal, or reads them from stdin: the new one, then the current one.
func (e *env) readPasswords() (apiclient.SetPasswordRequest, error) {
	var req apiclient.SetPasswordRequest
	if f, ok := e.stdin.(*os.File); ok && e.interactive() {
		ask := func(prompt string) (string, error) {
			fmt.Fprint(e.stdout, prompt+": ")
			b, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(e.stdout)
			if err != nil {
				return "", fmt.Errorf("read password: %w", err)
			}
			return string(b), nil
		}
		var again string
		var err error
		if req.CurrentPassword, err = ask("Current password (empty if you have none)"); err != nil {
			return req, err
		}
		if req.Password, err = ask("New password"); err != nil {
			return req, err
		}
		if again, err = ask("New password again"); err != nil {
			return req, err
		}
		if again != req.Password {
			return req, errors.New("the two new passwords differ: nothing changed")
		}
		return req, nil
	}
	sc := bufio.NewScanner(e.stdin)
	if sc.Scan() {
		req.Password = strings.TrimSuffix(sc.Text(), "\r")
	}
	if sc.Scan() {
		req.CurrentPassword = strings.TrimSuffix(sc.Text(), "\r")
	}
	if err := sc.Err(); err != nil {
		return req, fmt.Errorf("read passwords from stdin: %w", err)
	}
	if req.Password == "" {
		return req, errors.New("no new password on stdin: give it on the first line (and the current one, if any, on the second)")
	}
	return req, nil
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
