package cli

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func newDBCmd(e *env) *cobra.Command {
	cmd := group("database", "Manage Postgres database instances", "databases", "db")
	cmd.AddCommand(
		newDBProvisionCmd(e), newDBStatusCmd(e), newDBListCmd(e), newDBResetPasswordCmd(e), newDBDestroyCmd(e),
		newDBRestoreCmd(e), newDBLinkCmd(e), newDBUnlinkCmd(e), newDBURLCmd(e),
	)
	return cmd
}

// dbCommand returns a command on the database instance named by its
// argument; run gets a session.
func dbCommand(e *env, use, short string, run func(ctx context.Context, s *session, db string) error) *cobra.Command {
	return &cobra.Command{
		Use:   use,
		Short: short,
		Args:  argsOf(use),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := e.session(cmd.Context(), "", "")
			if err != nil {
				return err
			}
			return run(cmd.Context(), s, first(args))
		},
	}
}

// argsOf accepts the arguments use shows: <required> and [optional].
func argsOf(use string) cobra.PositionalArgs {
	n, opt := strings.Count(use, "<"), strings.Count(use, "[")
	if opt == 0 {
		return cobra.ExactArgs(n)
	}
	return cobra.RangeArgs(n, n+opt)
}

// needPassword fails when a password is missing: Hangar's CLI does not
// prompt for passwords.
func needPassword(pw, flag string) error {
	if pw == "" {
		return fmt.Errorf("a password is required: pass it with %s", flag)
	}
	return nil
}

func validPassword(pw string) error {
	if len(pw) < 8 || len(pw) > 128 {
		return errors.New("Invalid database password. Passwords must be between 8 and 128 characters long")
	}
	if strings.ContainsAny(pw, `/"@ '`) {
		return errors.New(`Password contains invalid character. Passwords can contain any ASCII character except @, /, \, ", ', and spaces`)
	}
	return nil
}

func newDBProvisionCmd(e *env) *cobra.Command {
	var user, password string
	cmd := dbCommand(e, "provision <name>", "Provision a Postgres database instance", func(ctx context.Context, s *session, db string) error {
		if err := needPassword(password, "-W/--password"); err != nil {
			return err
		}
		return e.provisionDB(ctx, s, db, user, password)
	})
	cmd.Flags().StringVarP(&user, "username", "U", "", "Specify your database username")
	cmd.Flags().StringVarP(&password, "password", "W", "", "Specify your database user password")
	cmd.MarkFlagRequired("username")
	return cmd
}

// provisionDB provisions an instance and waits until it is available,
// polling after 5s and then every 30s like the official CLI.
func (e *env) provisionDB(ctx context.Context, s *session, db, user, password string) error {
	if err := validPassword(password); err != nil {
		return err
	}
	label := "Failed to create database " + db
	if err := s.ProvisionDB(ctx, s.org(), apiclient.ProvisionDBRequest{Name: db, AdminName: user, AdminPassword: password}); err != nil {
		return e.failed(label, err)
	}
	e.info("Successfully started provisioning database: %s", db)
	if err := e.waitDB(ctx, s, db, label); err != nil {
		return err
	}
	e.info("Database successfully provisioned!")
	return nil
}

func (e *env) waitDB(ctx context.Context, s *session, db, label string) error {
	for wait := 5 * time.Second; ; wait = 30 * time.Second {
		if err := e.sleep(ctx, wait); err != nil {
			return err
		}
		info, err := s.DB(ctx, s.org(), db)
		if err != nil {
			return e.failed(label, err)
		}
		b, _ := json.Marshal(info)
		e.info("%s", b)
		if info.Status == "available" || info.Status == "backing-up" {
			return nil
		}
	}
}

func (e *env) printDB(db apiclient.UserDBInstance) {
	e.info("Postgres Instance Name: %s", db.PostgresInstanceName)
	e.info("Status: %s", db.Status)
	e.info("Host Name: %s", db.HostName)
	e.info("Port: %d", db.Port)
	e.info("Database Username: %s", db.DatabaseUsername)
}

func newDBStatusCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := dbCommand(e, "status <name>", "Retrieve the status of a Postgres database instance", func(ctx context.Context, s *session, db string) error {
		info, err := s.DB(ctx, s.org(), db)
		if err != nil {
			return e.failed("Failed to retrieve database record "+db, err)
		}
		if asJSON {
			return e.printJSON(info)
		}
		e.printDB(info)
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newDBListCmd(e *env) *cobra.Command {
	var asJSON bool
	cmd := dbCommand(e, "list", "List all your Postgres database instances", func(ctx context.Context, s *session, _ string) error {
		dbs, err := s.DBs(ctx, s.org())
		if err != nil {
			return e.failed("Failed to retrieve info", err)
		}
		if asJSON {
			return e.printJSON(dbs)
		}
		if len(dbs) == 0 {
			e.info("No database instances found")
		}
		for _, db := range dbs {
			e.printDB(db)
		}
		return nil
	})
	jsonFlag(cmd, &asJSON)
	return cmd
}

func newDBResetPasswordCmd(e *env) *cobra.Command {
	var password string
	cmd := dbCommand(e, "reset-password [name]", "Reset password for a Postgres database instance", func(ctx context.Context, s *session, db string) error {
		db, err := e.chooseDB(ctx, s, db)
		if err != nil {
			return err
		}
		label := "Failed to reset user password for database " + db
		info, err := s.DB(ctx, s.org(), db)
		if err != nil {
			return e.failed(label, err)
		}
		if info.IsLinked {
			if info.SupabaseReference != nil {
				return errors.New("The DBOS CLI cannot reset the password of your Supabase database. Please reset it from your Supabase dashboard.")
			}
			return errors.New("Error: You cannot reset the password of a linked database from the DBOS CLI.")
		}
		if err := needPassword(password, "-W/--password"); err != nil {
			return err
		}
		if err := validPassword(password); err != nil {
			return err
		}
		if err := s.ResetDBPassword(ctx, s.org(), db, password); err != nil {
			return e.failed(label, err)
		}
		e.info("Successfully reset user password for database: %s", db)
		return nil
	})
	cmd.Flags().StringVarP(&password, "password", "W", "", "Specify the database user password")
	return cmd
}

func newDBDestroyCmd(e *env) *cobra.Command {
	return dbCommand(e, "destroy <name>", "Destroy a Postgres database instance", func(ctx context.Context, s *session, db string) error {
		if err := s.DestroyDB(ctx, s.org(), db); err != nil {
			return e.failed("Failed to delete database "+db, err)
		}
		e.info("Database deleted: %s", db)
		return nil
	})
}

func newDBRestoreCmd(e *env) *cobra.Command {
	var at, target string
	cmd := dbCommand(e, "restore <name>", "Restore a Postgres database instance to a specified point in time", func(ctx context.Context, s *session, db string) error {
		label := "Failed to restore database " + db
		if err := s.RestoreDB(ctx, s.org(), db, apiclient.RestoreDBRequest{RestoreName: target, RestoreTimestamp: at}); err != nil {
			return e.failed(label, err)
		}
		e.info("Successfully started restoring database: %s! New database name: %s, restore time: %s", db, target, at)
		if err := e.waitDB(ctx, s, target, label); err != nil {
			return err
		}
		e.info("Database successfully restored! New database name: %s, restore time: %s", target, at)
		return nil
	})
	cmd.Flags().StringVarP(&at, "restore-time", "t", "", "Specify the point in time to which to restore the database. Must be a timestamp in RFC 3339 format. Example: 2009-09-07T23:45:00Z")
	cmd.Flags().StringVarP(&target, "target-name", "n", "", "Specify the new database instance name")
	cmd.MarkFlagRequired("restore-time")
	cmd.MarkFlagRequired("target-name")
	return cmd
}

func newDBLinkCmd(e *env) *cobra.Command {
	var req apiclient.LinkDBRequest
	var supabase string
	cmd := dbCommand(e, "link <name>", "Link your own Postgres database instance to DBOS Cloud", func(ctx context.Context, s *session, db string) error {
		if err := needPassword(req.Password, "-W/--password"); err != nil {
			return err
		}
		if err := validPassword(req.Password); err != nil {
			return err
		}
		req.Name = db
		ref := "undefined"
		if supabase != "" {
			req.SupabaseReference, ref = &supabase, supabase
		}
		e.info("Linking Postgres instance %s to DBOS Cloud. Hostname: %s Port: %d Time travel: %t Supabase Reference: %s", db, req.HostName, req.Port, req.CaptureProvenance, ref)
		if err := s.LinkDB(ctx, s.org(), req); err != nil {
			return e.failed("Failed to link database "+db, err)
		}
		e.info("Database successfully linked!")
		return nil
	})
	cmd.Flags().StringVarP(&req.HostName, "hostname", "H", "", "Specify your database hostname")
	cmd.Flags().IntVarP(&req.Port, "port", "p", 5432, "Specify your database port")
	cmd.Flags().StringVarP(&req.Password, "password", "W", "", "Specify password for the dbosadmin user")
	cmd.Flags().BoolVar(&req.CaptureProvenance, "enable-timetravel", false, "Enable time travel on the linked database")
	cmd.Flags().StringVar(&supabase, "supabase-ref", "", "Link a Supabase database")
	cmd.MarkFlagRequired("hostname")
	return cmd
}

func newDBUnlinkCmd(e *env) *cobra.Command {
	return dbCommand(e, "unlink <name>", "Unlink a Postgres database instance", func(ctx context.Context, s *session, db string) error {
		if err := s.UnlinkDB(ctx, s.org(), db); err != nil {
			return e.failed("Failed to unlink database "+db, err)
		}
		e.info("Database unlinked: %s", db)
		return nil
	})
}

func newDBURLCmd(e *env) *cobra.Command {
	var password string
	var show bool
	cmd := dbCommand(e, "url [name]", "Display your cloud database connection URL", func(ctx context.Context, s *session, db string) error {
		db, err := e.chooseDB(ctx, s, db)
		if err != nil {
			return err
		}
		e.info("Retrieving cloud database info...")
		info, err := s.DB(ctx, s.org(), db)
		if err != nil {
			return e.failed("Failed to retrieve database record "+db, err)
		}
		user := info.DatabaseUsername
		if info.SupabaseReference != nil {
			user = "postgres." + *info.SupabaseReference
		}
		shown := "***"
		if show {
			if err := needPassword(password, "-W/--password with --show-password"); err != nil {
				return err
			}
			shown = password
		}
		e.info("postgresql://%s:%s@%s:%d/postgres", user, shown, info.HostName, info.Port)
		return nil
	})
	cmd.Aliases = []string{"connect"}
	cmd.Flags().StringVarP(&password, "password", "W", "", "Specify the database user password")
	cmd.Flags().BoolVarP(&show, "show-password", "S", false, "Show the password in the output")
	return cmd
}

// chooseDB is the official chooseAppDBServer: the named instance if it
// exists; a new one provisioned under that name (user dbos_user, a random
// password) if not; without a name, the only instance there is. Where the
// official CLI prompts (no instance, or several), it prompts on a terminal
// and otherwise fails saying what to pass.
func (e *env) chooseDB(ctx context.Context, s *session, name string) (string, error) {
	dbs, err := s.DBs(ctx, s.org())
	if err != nil {
		return "", e.failed("Failed to list databases", err)
	}
	var names []string
	for _, db := range dbs {
		if db.PostgresInstanceName == name {
			return name, nil
		}
		names = append(names, db.PostgresInstanceName)
	}
	switch {
	case name == "" && len(dbs) == 1:
		e.info("Using database instance: %s", names[0])
		return names[0], nil
	case name == "" && len(dbs) > 1:
		return e.ask("Choose a database instance for this app ("+strings.Join(names, ", ")+")", "",
			"name one with -d <instance> (one of "+strings.Join(names, ", ")+")")
	case name == "":
		e.info("No database found, provisioning a database instance (server)...")
		if name, err = e.ask("Database instance name", s.creds.UserName+"-db-server", "name the instance to provision with -d <instance>"); err != nil {
			return "", err
		}
	default:
		e.info("Database instance %s not found, provisioning a new one...", name)
	}
	pw := make([]byte, 18)
	rand.Read(pw)
	if err := e.provisionDB(ctx, s, name, "dbos_user", base64.RawURLEncoding.EncodeToString(pw)); err != nil {
		return "", err
	}
	return name, nil
}
