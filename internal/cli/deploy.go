package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// deployOptions are app deploy's and app change-database-instance's.
type deployOptions struct {
	app             string
	previousVersion string
	// database is the instance to register a new app with.
	database   string
	timeTravel bool
	// targetDB is the instance to move the app to.
	targetDB   string
	configFile string
}

func newDeployCmd(e *env) *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "deploy " + appArg,
		Short: "Deploy this application to the cloud and run associated database migration commands",
		Long: "Deploy this application to the cloud and run associated database migration commands.\n\n" +
			"The application directory is zipped (the official CLI's choice of files) into a temporary\n" +
			"file; an archive over 500 MiB is refused before anything is uploaded (the environment\n" +
			"variable HANGAR_MAX_ARCHIVE_BYTES sets another limit). It is uploaded with a progress bar\n" +
			"on stderr, then each deploy step's output is printed as the server runs it.",
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.app = first(args)
			return e.deploy(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVarP(&o.previousVersion, "previous-version", "p", "", "Specify a previous version to restore")
	cmd.Flags().StringVarP(&o.database, "database", "d", "", "Specify a Postgres database instance for this application. This cannot be changed after the application is first deployed.")
	cmd.Flags().BoolVar(&o.timeTravel, "enable-timetravel", false, "Enable time travel for the application. This cannot be changed after the application is first deployed.")
	cmd.Flags().StringVar(&o.configFile, "configFile", defaultConfigFile, "DBOS Config file path")
	return cmd
}

func newChangeDBCmd(e *env) *cobra.Command {
	var o deployOptions
	cmd := &cobra.Command{
		Use:   "change-database-instance " + appArg,
		Short: "Change this application's database instance and redeploy it",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.app = first(args)
			return e.deploy(cmd.Context(), o)
		},
	}
	cmd.Flags().StringVarP(&o.previousVersion, "previous-version", "p", "", "Specify a previous version to restore")
	cmd.Flags().StringVarP(&o.targetDB, "database", "d", "", "Specify the new database instance name for this application")
	cmd.Flags().StringVar(&o.configFile, "configFile", defaultConfigFile, "DBOS Config file path")
	// The official CLI declares --configFile here without a value.
	cmd.Flags().Lookup("configFile").NoOptDefVal = defaultConfigFile
	cmd.MarkFlagRequired("database")
	return cmd
}

// deploy is the official deployAppCode: it registers the app when it is new
// (choosing or provisioning its database instance), uploads the archive (or
// names a previous version) and waits until the app is AVAILABLE.
func (e *env) deploy(ctx context.Context, o deployOptions) error {
	e.debug("Using config file %s", o.configFile)
	s, err := e.session(ctx, "", "")
	if err != nil {
		return err
	}
	raw, err := os.ReadFile(e.path(o.configFile))
	if err != nil {
		return fmt.Errorf("read config: %w: run this command in the application's directory or pass --configFile", err)
	}
	if o.app, err = e.appName(o.app, o.configFile, false); err != nil {
		return err
	}
	config := e.interpolate(raw)
	c, err := parseConfig(config, o.configFile)
	if err != nil {
		return err
	}
	if err := e.checkLanguage(c.Language); err != nil {
		return err
	}
	app, err := s.App(ctx, s.org(), o.app)
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae) && strings.Contains(ae.Message, "application "+o.app+" not found"):
		db, err := e.chooseDB(ctx, s, o.database)
		if err != nil {
			return err
		}
		if o.timeTravel {
			e.info("Enabling time travel for this application")
		} else {
			e.info("Time travel is disabled for this application")
		}
		if err := e.registerApp(ctx, s, o.app, db, o.timeTravel, apiclient.FlexInt{}, o.configFile); err != nil {
			return err
		}
	case err != nil:
		return e.failed("Failed to retrieve info for application "+o.app, err)
	default:
		e.info("Application %s exists, updating...", o.app)
		if o.database != "" && app.PostgresInstanceName != o.database {
			e.warn("Application %s is deployed with database instance %s. Ignoring the provided database instance name %s.", o.app, app.PostgresInstanceName, o.database)
		}
		if app.ApplicationDatabaseName != "" && c.Database.AppDBName != "" && c.Database.AppDBName != app.ApplicationDatabaseName {
			return fmt.Errorf("Application %s is deployed with app_db_name %s, but %s specifies %s. Please update the app_db_name field in %s to match the database name.",
				o.app, app.ApplicationDatabaseName, o.configFile, c.Database.AppDBName, o.configFile)
		}
	}
	out, err := e.submitDeploy(ctx, s, o, config)
	if err != nil {
		label := "Failed to deploy application " + o.app
		if errors.As(err, &ae) && strings.Contains(ae.Message, "application "+o.app+" not found") {
			return fmt.Errorf("%w\nDid you register this application? Hint: run `dbos-cloud app register -d <database-instance-name>` to register your app and try again", e.failed(label, err))
		}
		return e.failed(label, err)
	}
	e.info("Submitted deploy request for %s. Assigned version: %s", o.app, out.ApplicationVersion)
	if err := e.waitAvailable(ctx, s, o.app, out.ApplicationVersion); err != nil {
		return err
	}
	e.info("Successfully deployed %s!", o.app)
	e.info("Access your application at https://%s-%s.%s/", s.org(), o.app, e.domain())
	return nil
}

// checkLanguage checks the app directory holds what the language needs.
// Hangar also deploys Go apps, which the official CLI refuses.
func (e *env) checkLanguage(lang string) error {
	need := map[string]string{"node": "package.json", "python": "requirements.txt", "go": "go.mod"}[lang]
	if need == "" {
		return fmt.Errorf("dbos-config.yaml contains invalid language %s: use node, python or go", lang)
	}
	b, err := os.ReadFile(e.path(need))
	if err != nil {
		return fmt.Errorf("No %s found. Please create one before deploying.", need)
	}
	if lang == "python" && !strings.Contains(string(b), "dbos") {
		return errors.New("Your requirements.txt does not include 'dbos'. Please make sure you include all your dependencies.")
	}
	return nil
}

func (e *env) submitDeploy(ctx context.Context, s *session, o deployOptions, config []byte) (apiclient.DeployResponse, error) {
	if o.targetDB != "" {
		e.info("Changing database instance for %s to %s and redeploying", o.app, o.targetDB)
	}
	if o.previousVersion != "" {
		e.info("Restoring previous version %s", o.previousVersion)
		e.info("Submitting deploy request for %s", o.app)
		return s.Deploy(ctx, s.org(), o.app, o.targetDB != "", apiclient.DeployRequest{PreviousVersion: o.previousVersion, TargetDatabaseName: o.targetDB})
	}
	root, err := filepath.Abs(e.dir)
	if err != nil {
		return apiclient.DeployResponse{}, err
	}
	files, err := archiveFiles(root)
	if err != nil {
		return apiclient.DeployResponse{}, err
	}
	e.debug("Zipping %d files from %s", len(files), root)
	e.info("Submitting deploy request for %s", o.app)
	if o.targetDB != "" {
		// Hangar's streaming endpoint does not move apps between
		// instances: this one takes the official body.
		return s.DeployArchive(ctx, s.org(), o.app, o.targetDB, func(w io.Writer) error {
			return writeArchive(w, root, files, config)
		})
	}
	return e.streamDeploy(ctx, s, o.app, root, files, config)
}

// waitAvailable polls the app list every 100ms, like the official CLI, until
// app is AVAILABLE, for at most 1800 polls.
func (e *env) waitAvailable(ctx context.Context, s *session, app, version string) error {
	for count := 1; ; count++ {
		if count%50 == 0 {
			e.info("Waiting for %s with version %s to be available", app, version)
			if count > 200 {
				e.info("If %s takes too long to become available, check its logs with 'dbos-cloud applications logs'", app)
			}
		}
		if count > 1800 {
			return fmt.Errorf("Application taking too long to become available: check its logs with `dbos-cloud app logs %s`", app)
		}
		apps, err := s.Apps(ctx, s.org())
		if err != nil {
			return e.failed("Failed to deploy application "+app, err)
		}
		if hasApp(apps, app, "AVAILABLE") {
			return nil
		}
		if err := e.sleep(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
}
