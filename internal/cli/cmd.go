package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// newAppCmdCmd is `app cmd`, from the newer official CLI: a shell command
// on one executor of the app, which prints its output and exits with its
// exit code.
func newAppCmdCmd(e *env) *cobra.Command {
	var executor string
	cmd := &cobra.Command{
		Use:   "cmd [app-name] -- <command>...",
		Short: "Run a shell command on an executor of this application (10 s at most)",
		Long: `Run a shell command on an executor of this application and exit with its exit code.

The command runs with /bin/sh -c in the application's folder, with its
environment, as its user and within its limits, for 10 seconds at most (then
it is killed and exits 124). Each output is cut after 1 MiB. The command, who
ran it and its exit code are written to the application's logs. Killing the
application's process makes Hangar replace the executor.

Words after -- form the command; without --, all arguments do and the
application is the one in the working directory. The executor is the first
serving one unless --executor names one (see ` + "`app executors`" + `).`,
		Example: `  dbos-cloud app cmd 'id -u; ls'
  dbos-cloud app cmd my-app --executor ex-01jabc -- cat /proc/self/status`,
		Args: func(cmd *cobra.Command, args []string) error {
			_, words, err := cmdArgs(cmd, args)
			if err == nil && len(words) == 0 {
				err = errors.New("give the command to run, after --")
			}
			return err
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name, words, _ := cmdArgs(cmd, args)
			command := strings.Join(words, " ")
			if len(command) > apiclient.MaxCommandBytes {
				return fmt.Errorf("the command has %d bytes, over the limit of %d", len(command), apiclient.MaxCommandBytes)
			}
			ctx := cmd.Context()
			s, err := e.session(ctx, "", "")
			if err != nil {
				return err
			}
			app, err := e.appName(name, defaultConfigFile, true)
			if err != nil {
				return err
			}
			if executor == "" {
				if executor, err = e.servingExecutor(ctx, s, app); err != nil {
					return err
				}
				e.debug("Running the command on executor %s", executor)
			}
			res, err := s.ExecutorCommand(ctx, s.org(), app, executor, command)
			if err != nil {
				return e.failed("Failed to execute command", err)
			}
			io.WriteString(e.stdout, res.Stdout)
			io.WriteString(e.stderr, res.Stderr)
			if res.ExitCode != 0 {
				return exitCode(res.ExitCode)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&executor, "executor", "e", "", "The executor to run the command on (default: the first serving one)")
	return cmd
}

// cmdArgs splits app cmd's arguments into the application name (before --)
// and the command's words.
func cmdArgs(cmd *cobra.Command, args []string) (app string, words []string, err error) {
	dash := cmd.ArgsLenAtDash()
	switch {
	case dash < 0:
		return "", args, nil
	case dash > 1:
		return "", nil, fmt.Errorf("name at most one application before --, not %q", args[:dash])
	}
	return first(args[:dash]), args[dash:], nil
}

// servingExecutor returns the ID of the app's first serving executor.
func (e *env) servingExecutor(ctx context.Context, s *session, app string) (string, error) {
	var exs []apiclient.ExecutorStats
	p := "/hangar/v1/" + url.PathEscape(s.org()) + "/applications/" + url.PathEscape(app) + "/executors"
	if err := s.Do(ctx, http.MethodGet, p, nil, &exs); err != nil {
		return "", e.failed("Failed to find an executor of "+app+" (name one with --executor)", err)
	}
	for _, ex := range exs {
		if ex.State == "SERVING" {
			return ex.ID, nil
		}
	}
	return "", fmt.Errorf("no executor of %s serves: deploy it first, or name one with --executor (see `dbos-cloud app executors`)", app)
}

// exitCode is the exit code of a command that ran; Main exits with it,
// printing nothing more.
type exitCode int

func (c exitCode) Error() string { return fmt.Sprintf("exit code %d", int(c)) }
