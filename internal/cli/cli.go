// Package cli implements Hangar's dbos-cloud command: a drop-in for the
// official DBOS Cloud CLI 2.10.24 (same commands, aliases, flags, defaults,
// credentials file and output) that speaks to a Hangar server. Every command
// writes to injected writers and reads its environment through an injected
// getenv. It imports only internal/apiclient; only cmd/dbos-cloud imports
// it.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// version is the official CLI version this one mirrors.
const version = "2.10.24-hangar"

// env is what every command gets: the process's IO, environment and working
// directory, and the clock it waits on.
// size: one method per command: commands are env's methods, each in its own file.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// dir is the working directory: credentials, dbos-config.yaml and the
	// archive are relative to it, as in the official CLI.
	dir string
	// sleep waits d or until ctx is done.
	sleep func(ctx context.Context, d time.Duration) error
	// verbose is --verbose: debug lines and HTTP tracing on stderr.
	verbose bool
}

// Main runs the dbos-cloud command line and returns the exit code: 0 on
// success, 1 when a command fails, 2 on a usage error; `app cmd` exits
// with the remote command's code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv, dir: ".", sleep: sleep}
	return e.run(ctx, args)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// failure is an error a command returned, as opposed to a usage error that
// cobra found before running it.
type failure struct{ err error }

func (f failure) Error() string { return f.err.Error() }

func (e *env) run(ctx context.Context, args []string) int {
	root := e.newRootCmd()
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	var f failure
	switch {
	case err == nil:
		return 0
	case errors.As(err, &f):
		if code, ok := errors.AsType[exitCode](f.err); ok {
			return int(code) // a remote command's, which printed its own output
		}
		fmt.Fprintln(e.stderr, err)
		return 1
	default:
		fmt.Fprintf(e.stderr, "error: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return 2
	}
}

func (e *env) newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "dbos-cloud",
		Short:         "Deploy and manage DBOS applications on Hangar, a self-hosted DBOS Cloud",
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE:          showHelp,
	}
	root.SetVersionTemplate("{{.Version}}\n")
	root.SetIn(e.stdin)
	root.SetOut(e.stdout)
	root.SetErr(e.stderr)
	root.Flags().BoolP("version", "V", false, "output the version number")
	root.PersistentFlags().BoolVar(&e.verbose, "verbose", false, "Verbose output: debug lines and HTTP requests (method, URL, status, duration) on stderr")
	root.AddCommand(
		newLoginCmd(e), newProfileCmd(e), newRegisterCmd(e), newLogoutCmd(e), newRevokeCmd(e),
		newAppCmd(e), newDBCmd(e), newDashboardCmd(e), newOrgCmd(e), newWorkflowCmd(e), newUserCmd(e),
	)
	markFailures(root)
	return root
}

// group returns a command that only holds subcommands: without one it prints
// its help, and an unknown one is a usage error.
func group(use, short string, aliases ...string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Aliases: aliases, Args: cobra.NoArgs, RunE: showHelp}
}

func showHelp(cmd *cobra.Command, _ []string) error { return cmd.Help() }

// markFailures wraps every command's RunE so that its errors are failures
// (exit 1); anything else cobra returns is a usage error (exit 2).
func markFailures(c *cobra.Command) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			if err := run(cmd, args); err != nil {
				return failure{err}
			}
			return nil
		}
	}
	for _, sub := range c.Commands() {
		markFailures(sub)
	}
}

func (e *env) info(format string, args ...any) { fmt.Fprintf(e.stdout, format+"\n", args...) }

func (e *env) warn(format string, args ...any) {
	fmt.Fprintf(e.stderr, "Warning: "+format+"\n", args...)
}

func (e *env) debug(format string, args ...any) {
	if e.verbose {
		fmt.Fprintf(e.stderr, format+"\n", args...)
	}
}

// path resolves p against the working directory.
func (e *env) path(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(e.dir, p)
}

// domain is the server's host[:port], from DBOS_DOMAIN like the official CLI.
func (e *env) domain() string {
	if d := e.getenv("DBOS_DOMAIN"); d != "" {
		return d
	}
	return "cloud.dbos.dev"
}

// httpClient trusts the system roots plus the CA files named by SSL_CERT_FILE
// and NODE_EXTRA_CA_CERTS, so one setting serves both CLIs.
func (e *env) httpClient() (*http.Client, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	for _, v := range []string{"SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS"} {
		path := e.getenv(v)
		if path == "" {
			continue
		}
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("read %s (%s): %w", v, path, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s (%s) holds no PEM certificate", v, path)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	var rt http.RoundTripper = tr
	if e.verbose {
		rt = tracer{next: tr, w: e.stderr}
	}
	return &http.Client{Transport: rt}, nil
}

// client returns an API client for the configured domain with token.
func (e *env) client(token string) (*apiclient.Client, error) {
	hc, err := e.httpClient()
	if err != nil {
		return nil, err
	}
	return &apiclient.Client{BaseURL: "https://" + e.domain(), Token: token, HTTP: hc}, nil
}

// tracer prints each request's method, URL, status and duration; never
// headers or bodies, which hold tokens and secrets.
type tracer struct {
	next http.RoundTripper
	w    io.Writer
}

func (t tracer) RoundTrip(r *http.Request) (*http.Response, error) {
	start := time.Now()
	resp, err := t.next.RoundTrip(r)
	d := time.Since(start).Round(time.Millisecond)
	if err != nil {
		fmt.Fprintf(t.w, "http: %s %s: %v (%s)\n", r.Method, r.URL.Redacted(), err, d)
		return nil, err
	}
	fmt.Fprintf(t.w, "http: %s %s -> %s (%s)\n", r.Method, r.URL.Redacted(), resp.Status, d)
	return resp, nil
}
