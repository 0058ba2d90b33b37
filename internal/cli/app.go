package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// appArg is the official optional application-name argument.
const appArg = "[app-name]"

func newAppCmd(e *env) *cobra.Command {
	cmd := group("application", "Manage your DBOS applications", "applications", "app", "apps")
	cmd.AddCommand(
		newAppRegisterCmd(e), newAppUpdateCmd(e), newDeployCmd(e), newChangeDBCmd(e), newAppDeleteCmd(e),
		newAppListCmd(e), newAppStatusCmd(e), newAppVersionsCmd(e), newAppDeploymentsCmd(e), newAppExecutorsCmd(e), newAppCmdCmd(e), newAppLogsCmd(e), newSecretsCmd(e),
	)
	return cmd
}

// appCommand returns a command on one application, named by its optional
// argument or by the working directory's config; run gets a session and the
// name.
func appCommand(e *env, use, short string, quiet *bool, run func(ctx context.Context, s *session, app string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use + " " + appArg,
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			app, err := e.appName(first(args), defaultConfigFile, quiet != nil && *quiet)
			if err != nil {
				return err
			}
			return run(cmd.Context(), s, app)
		},
	}
}

func first(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

// intFlag parses --executors-memory-mib and friends, which the official
// CLI sends as given.
func intFlag(name, v string) (apiclient.FlexInt, error) {
	if v == "" {
		return apiclient.FlexInt{}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return apiclient.FlexInt{}, fmt.Errorf("--%s must be an integer, not %q", name, v)
	}
	return apiclient.FlexInt{Value: n, Set: true}, nil
}

func newAppRegisterCmd(e *env) *cobra.Command {
	var db, memory string
	var timeTravel bool
	cmd := appCommand(e, "register", "Register this application", nil, func(ctx context.Context, s *session, app string) error {
		mem, err := intFlag("executors-memory-mib", memory)
		if err != nil {
			return err
		}
		return e.registerApp(ctx, s, app, db, timeTravel, mem, defaultConfigFile)
	})
	cmd.Flags().StringVarP(&db, "database", "d", "", "Specify a Postgres database instance for this application")
	cmd.Flags().BoolVar(&timeTravel, "enable-timetravel", false, "Enable time travel for the application")
	cmd.Flags().StringVar(&memory, "executors-memory-mib", "", "Specify the memory in MiB for the executors of this application")
	cmd.MarkFlagRequired("database")
	return cmd
}

func (e *env) registerApp(ctx context.Context, s *session, app, db string, timeTravel bool, memory apiclient.FlexInt, configFile string) error {
	c, err := e.loadConfig(configFile)
	if err != nil {
		return err
	}
	e.info("Registering application: %s", app)
	req := apiclient.RegisterAppRequest{Name: app, Database: db, Language: c.Language, ExecutorsMemoryMib: memory}
	if timeTravel {
		req.ProvenanceDB = db
	}
	id, err := s.RegisterApp(ctx, s.org(), req)
	if err != nil {
		var ae *apiclient.Error
		if errors.As(err, &ae) && strings.Contains(ae.Message, "database "+db+" not found") {
			return fmt.Errorf("%w\nDid you provision this database? Hint: run `dbos-cloud db provision %s -U <database-username>` to provision the database and try again", e.failed("Failed to register application "+app, err), db)
		}
		return e.failed("Failed to register application "+app, err)
	}
	e.info("%s ID: %s", app, id)
	e.info("Successfully registered %s!", app)
	return nil
}

func newAppUpdateCmd(e *env) *cobra.Command {
	var memory, minVMs string
	cmd := appCommand(e, "update", "Update this application", nil, func(ctx context.Context, s *session, app string) error {
		var req apiclient.UpdateAppRequest
		var err error
		if req.ExecutorsMemoryMib, err = intFlag("executors-memory-mib", memory); err != nil {
			return err
		}
		if req.MinVMs, err = intFlag("min-executors", minVMs); err != nil {
			return err
		}
		e.info("Updating application: %s", app)
		if err := s.UpdateApp(ctx, s.org(), app, req); err != nil {
			return e.failed("Failed to update application "+app, err)
		}
		e.info("Successfully updated %s!", app)
		return nil
	})
	cmd.Flags().StringVar(&memory, "executors-memory-mib", "", "Specify the memory in MiB for the executors of this application")
	cmd.Flags().StringVar(&minVMs, "min-executors", "", "Specify the minimum number of executors the app should scale to")
	return cmd
}

func newAppDeleteCmd(e *env) *cobra.Command {
	var dropDB bool
	cmd := appCommand(e, "delete", "Delete this application", nil, func(ctx context.Context, s *session, app string) error {
		e.info("Submitting deletion request for %s", app)
		if err := s.DeleteApp(ctx, s.org(), app, apiclient.DeleteAppRequest{DropDB: dropDB}); err != nil {
			return e.failed("Failed to delete application "+app, err)
		}
		e.info("Submitted deletion request for %s", app)
		for count := 1; ; count++ {
			if count%5 == 0 {
				e.info("Waiting for %s to be deleted", app)
			}
			if count > 180 {
				return errors.New("Application taking too long to be deleted")
			}
			apps, err := s.Apps(ctx, s.org())
			if err != nil {
				return e.failed("Failed to delete application "+app, err)
			}
			if !hasApp(apps, app, "") {
				break
			}
			if err := e.sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		e.info("Successfully deleted application: %s", app)
		return nil
	})
	cmd.Flags().BoolVar(&dropDB, "dropdb", false, "Drop application database")
	return cmd
}

// hasApp reports whether apps holds app, with status when it is not empty.
func hasApp(apps []apiclient.Application, app, status string) bool {
	for _, a := range apps {
		if a.Name == app && (status == "" || a.Status == status) {
			return true
		}
	}
	return false
}

func newAppListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List all applications",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			apps, err := s.Apps(cmd.Context(), s.org())
			if err != nil {
				return e.failed("Failed to list applications", err)
			}
			if asJSON {
				return e.printJSON(apps)
			}
			if len(apps) == 0 {
				e.info("No applications found")
			}
			for _, a := range apps {
				e.printApp(a)
				e.info("-------------------------")
			}
			return nil
		},
	}
	jsonFlag(cmd, &asJSON)
	return cmd
}

// printApp is the official prettyPrintApplication, followed by the health
// of the app's executors when the server is Hangar.
func (e *env) printApp(a apiclient.Application) {
	e.info("Application Name: %s", a.Name)
	e.info("ID: %s", a.ID)
	e.info("Postgres Instance Name: %s", a.PostgresInstanceName)
	e.info("Application Database Name: %s", a.ApplicationDatabaseName)
	e.info("Status: %s", a.Status)
	e.info("Version: %s", a.Version)
	e.info("App URL: %s", a.AppURL)
	h := a.AppHealth
	if h == nil {
		return
	}
	e.info("Executors: %d serving", h.Executors)
	if h.CrashLoop != "" {
		e.info("Crash loop: %s", h.CrashLoop)
	}
	if p := h.LastProblem; p != nil {
		e.info("Last executor problem: %s %s: %s", deployTime(p.Time), p.Kind, p.Message)
	}
}

func newAppStatusCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := appCommand(e, "status", "Retrieve this application's status", &asJSON, func(ctx context.Context, s *session, app string) error {
		if !asJSON {
			e.info("Retrieving info for application: %s", app)
		}
		a, err := s.App(ctx, s.org(), app)
		if err != nil {
			return e.failed("Failed to retrieve info for application "+app, err)
		}
		if asJSON {
			return e.printJSON(a)
		}
		e.printApp(a)
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newAppVersionsCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := appCommand(e, "versions", "Retrieve a list of an application's versions", &asJSON, func(ctx context.Context, s *session, app string) error {
		if !asJSON {
			e.info("Retrieving info for application: %s", app)
		}
		vs, err := s.AppVersions(ctx, s.org(), app)
		if err != nil {
			return e.failed("Failed to retrieve versions for application "+app, err)
		}
		if asJSON {
			return e.printJSON(vs)
		}
		if len(vs) == 0 {
			e.info("No versions found")
		}
		for _, v := range vs {
			e.info("Application Name: %s", v.ApplicationName)
			e.info("Version: %s", v.Version)
			e.info("Creation Timestamp: %s", v.CreationTime)
			e.info("-------------------------")
		}
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newAppLogsCmd(e *env) *cobra.Command {
	var last, pageSize int
	var follow bool
	cmd := appCommand(e, "logs", "Print this application's logs", nil, func(ctx context.Context, s *session, app string) error {
		err := e.printLogs(ctx, s, app, last, pageSize, follow)
		if err != nil && !errors.Is(err, context.Canceled) {
			return e.failed("Failed to retrieve logs of application "+app, err)
		}
		return nil
	})
	cmd.PreRunE = func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Changed("last") && last <= 0 {
			return errors.New("the --last parameter must be an integer greater than 0")
		}
		if pageSize <= 0 {
			return errors.New("the --pagesize parameter must be an integer greater than 0")
		}
		return nil
	}
	cmd.Flags().IntVarP(&last, "last", "l", 0, "How far back to query, in seconds from current time. By default, we retrieve all data")
	cmd.Flags().IntVarP(&pageSize, "pagesize", "p", 1000, "How many lines to fetch at once when paginating")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "Keep printing new log lines as they arrive, until interrupted (Hangar)")
	return cmd
}

// printLogs pages through the logs like the official CLI: the first page by
// last (0 = all), the next ones from each page's next_timestamp until the
// end. With follow, it then polls from next_timestamp every second.
func (e *env) printLogs(ctx context.Context, s *session, app string, last, pageSize int, follow bool) error {
	q := url.Values{"last": {strconv.Itoa(last)}, "limit": {strconv.Itoa(pageSize)}}
	page, err := s.AppLogs(ctx, s.org(), app, q)
	if err != nil {
		return err
	}
	if page.End && page.Body == "" && !follow {
		e.info("No logs found for the specified parameters")
		return nil
	}
	for {
		if body := strings.TrimRight(page.Body, " \t\r\n"); body != "" || !follow {
			e.info("%s", body)
		}
		if page.End {
			if !follow {
				return nil
			}
			if err := e.sleep(ctx, time.Second); err != nil {
				return err
			}
		}
		since := page.NextTimestamp
		page, err = s.AppLogs(ctx, s.org(), app, url.Values{"limit": {strconv.Itoa(pageSize)}, "since": {since}})
		if err != nil {
			return err
		}
		if page.NextTimestamp == "" {
			page.NextTimestamp = since
		}
	}
}
