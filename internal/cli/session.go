package cli

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// credentialsPath is ./.dbos/credentials, relative to the working directory as
// in the official CLI.
const credentialsPath = ".dbos/credentials"

// session is a client logged in with the credentials file.
type session struct {
	*apiclient.Client
	creds apiclient.Credentials
}

// org is the organization the session acts in.
func (s *session) org() string { return s.creds.Organization }

// session logs in like the official getCloudCredentials: it reads the
// credentials file, refreshes an expired access token with the refresh token,
// and checks the user exists, registering it as username (with an invite
// secret) when it does not.
func (e *env) session(ctx context.Context, username, secret string) (*session, error) {
	b, err := os.ReadFile(e.path(credentialsPath))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("not logged in to %s: run `dbos-cloud login --with-refresh-token <token>` in this directory first", e.domain())
	}
	if err != nil {
		return nil, fmt.Errorf("read credentials: %w", err)
	}
	var creds apiclient.Credentials
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("read credentials %s: %w: run `dbos-cloud logout` and log in again", credentialsPath, err)
	}
	creds.Token = strings.NewReplacer("\r", "", "\n", "").Replace(creds.Token)
	c, err := e.client(creds.Token)
	if err != nil {
		return nil, err
	}
	s := &session{Client: c, creds: creds}
	if tokenExpired(creds.Token, time.Now()) {
		if creds.RefreshToken == "" {
			return nil, errors.New("credentials expired: run `dbos-cloud login` to log in again")
		}
		e.debug("Refreshing access token with refresh token")
		tok, err := c.Exchange(ctx, creds.RefreshToken)
		if err != nil {
			return nil, e.failed("Failed to refresh the access token", err)
		}
		s.creds.Token, s.Token = tok.AccessToken, tok.AccessToken
	}
	p, err := c.Profile(ctx)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && strings.Contains(ae.Message, "user not found in DBOS Cloud"):
		if p, err = e.registerUser(ctx, s, username, secret); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, e.failed("Failed to login", err)
	}
	s.creds.UserName, s.creds.Organization = p.Name, p.Organization
	if err := e.writeCredentials(s.creds); err != nil {
		return nil, err
	}
	e.debug("Successfully logged in as %s!", p.Name)
	return s, nil
}

var validUsername = regexp.MustCompile(`^[a-z0-9_]{3,30}$`)

func (e *env) registerUser(ctx context.Context, s *session, username, secret string) (apiclient.Profile, error) {
	e.info("User not registered in DBOS Cloud. Registering...")
	if username == "" {
		var err error
		if username, err = e.ask("Choose your username", "", "register with `dbos-cloud register -u <username>`"); err != nil {
			return apiclient.Profile{}, err
		}
	}
	if !validUsername.MatchString(username) {
		return apiclient.Profile{}, fmt.Errorf("Invalid username: %s. Usernames must be between 3 and 30 characters long and contain only lowercase letters, underscores, and numbers.", username)
	}
	label := "Failed to register user " + username
	if err := s.RegisterUser(ctx, apiclient.RegisterUserRequest{Name: username, Secret: secret}); err != nil {
		return apiclient.Profile{}, e.failed(label, err)
	}
	p, err := s.Profile(ctx)
	if err != nil {
		return p, e.failed(label, err)
	}
	e.info(" ... Successfully registered and logged in as %s!", p.Name)
	return p, nil
}

// tokenExpired reports whether a JWT's exp has passed, decoding it without
// verification like the official CLI: an undecodable token is expired, one
// without exp never expires.
func tokenExpired(token string, now time.Time) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return true
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return true
	}
	var claims struct {
		Exp float64 `json:"exp"`
	}
	if err := json.Unmarshal(b, &claims); err != nil {
		return true
	}
	return claims.Exp != 0 && !now.Before(time.UnixMilli(int64(claims.Exp*1000)))
}

func (e *env) writeCredentials(c apiclient.Credentials) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	p := e.path(credentialsPath)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(credentialsPath), err)
	}
	return os.WriteFile(p, b, 0o600)
}

// interactive reports whether stdin is a terminal a prompt can read from.
func (e *env) interactive() bool {
	f, ok := e.stdin.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// ask prompts for a line on a terminal, with a default. Without a terminal
// it fails and tells the user to do instead.
func (e *env) ask(prompt, def, instead string) (string, error) {
	if !e.interactive() {
		return "", fmt.Errorf("%s? (stdin is not a terminal): %s", prompt, instead)
	}
	if def != "" {
		prompt += " (" + def + ")"
	}
	fmt.Fprint(e.stdout, prompt+": ")
	line, err := bufio.NewReader(e.stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("read answer: %w", err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return def, nil
	}
	return line, nil
}

// failed reports err as the official CLI does, "[requestID] label: message."
// plus the detailed error for an API error and "label: err" otherwise,
// followed by a hint of what to do next where there is one.
func (e *env) failed(label string, err error) error {
	var msg string
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.RequestID != "" {
		msg = fmt.Sprintf("[%s] %s: %s.", ae.RequestID, label, ae.Message)
		if ae.DetailedError != "" {
			msg += "\n" + ae.DetailedError
		}
	} else {
		msg = fmt.Sprintf("%s: %v", label, err)
	}
	if h := e.hint(err); h != "" {
		msg += "\nHint: " + h
	}
	return errors.New(msg)
}

func (e *env) hint(err error) string {
	var ae *apiclient.Error
	var ue x509.UnknownAuthorityError
	var ne net.Error
	switch {
	case errors.As(err, &ae) && ae.StatusCode == 401:
		return "your login is not valid on " + e.domain() + ": run `dbos-cloud login` again"
	case errors.As(err, &ae) && ae.StatusCode == 404 && strings.HasPrefix(ae.Message, "no route for"):
		return "this Hangar server does not implement this command yet; upgrade the server"
	case errors.As(err, &ue):
		return "trust Hangar's CA certificate: set SSL_CERT_FILE or NODE_EXTRA_CA_CERTS to its PEM file"
	case errors.As(err, &ne):
		return "check that DBOS_DOMAIN (" + e.domain() + ") names a running Hangar server"
	}
	return ""
}
