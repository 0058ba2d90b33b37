// Package cli implements Hangar's dbos-cloud command: a drop-in for the
// official DBOS Cloud CLI that speaks to a Hangar server. Every command writes
// to injected writers and reads its environment through an injected getenv.
// It imports only internal/apiclient.
package cli

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// env is what every command gets: the process's IO and environment.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
}

// Main runs the dbos-cloud command line and returns the exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr, getenv: getenv}
	root := &cobra.Command{
		Use:           "dbos-cloud",
		Short:         "Deploy and manage DBOS applications on Hangar (a self-hosted DBOS Cloud)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.AddCommand(newLoginCmd(e))
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "Error:", err)
		return 1
	}
	return 0
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
	return &http.Client{Transport: tr}, nil
}

// client returns an API client for the configured domain with token.
func (e *env) client(token string) (*apiclient.Client, error) {
	hc, err := e.httpClient()
	if err != nil {
		return nil, err
	}
	return &apiclient.Client{BaseURL: "https://" + e.domain(), Token: token, HTTP: hc}, nil
}

// credentialsPath is ./.dbos/credentials, relative to the working directory as
// in the official CLI.
const credentialsPath = ".dbos/credentials"

func writeCredentials(c apiclient.Credentials) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(credentialsPath), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(credentialsPath), err)
	}
	return os.WriteFile(credentialsPath, b, 0o600)
}
