package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// upload unpacks the stored archive into the version's folder. It starts from
// an empty folder, so a resumed step never sees a half-written tree.
func (s *Service) upload(ctx context.Context, in deployInput, log io.Writer) error {
	dir := s.versionDir(in.AppID, in.Version)
	if err := s.newVersionDir(ctx, dir); err != nil {
		return err
	}
	f, err := s.archives.Open(in.Digest)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := build.UnpackFile(ctx, f, dir, s.cfg.Limits)
	if err != nil {
		return err
	}
	logf(log, "unpacked %d files, %d bytes (archive sha256 %s)", st.Files, st.Bytes, in.Digest)
	return nil
}

// job loads the version's config and returns the build job for it.
func (s *Service) job(ctx context.Context, in deployInput, log io.Writer) (build.Job, hangar.App, error) {
	a, err := s.store.AppByID(ctx, in.AppID)
	if err != nil {
		return build.Job{}, a, err
	}
	dir := s.versionDir(in.AppID, in.Version)
	cfg, err := build.LoadConfig(dir)
	if err != nil {
		return build.Job{}, a, err
	}
	return build.Job{Dir: dir, Config: cfg, OrgID: a.OrgID, Log: log, App: a.ID}, a, nil
}

// configure runs the app's setup commands and installs its dependencies.
func (s *Service) configure(ctx context.Context, in deployInput, log io.Writer) error {
	j, a, err := s.job(ctx, in, log)
	if err != nil {
		return err
	}
	if j.Config.Name != "" && j.Config.Name != a.Name {
		logf(log, "note: dbos-config.yaml names the app %q; it is deployed as %q", j.Config.Name, a.Name)
	}
	if j.Config.Language != a.Language {
		return hangar.Errorf(hangar.KindInvalid, "dbos-config.yaml says language %s but %s was registered as %s", j.Config.Language, a.Name, a.Language)
	}
	if db := j.Config.Database.AppDBName; db != "" && db != a.AppDBName {
		return hangar.Errorf(hangar.KindInvalid, "dbos-config.yaml sets database.app_db_name %s but %s uses database %s: app_db_name cannot change after registration", db, a.Name, a.AppDBName)
	}
	cfg, err := json.Marshal(j.Config)
	if err != nil {
		return err
	}
	if err := s.store.SetVersionConfig(ctx, in.Version, cfg); err != nil {
		return err
	}
	if err := s.builder.Setup(ctx, j); err != nil {
		return err
	}
	if err := s.builder.InstallDeps(ctx, j); err != nil {
		return err
	}
	return s.openVersionDir(ctx, j.Dir)
}

// instanceFor returns the database instance a deploy puts the app on.
func (s *Service) instanceFor(ctx context.Context, in deployInput, a hangar.App) (hangar.DBInstance, error) {
	if in.TargetInstanceID != "" {
		return s.store.DBInstanceByID(ctx, in.TargetInstanceID)
	}
	return s.store.DBInstanceByID(ctx, a.InstanceID)
}

// migrate creates the app's databases if needed and runs its migrations with
// the app's database environment, then records the schema's fingerprint. A
// redeploy of an earlier version runs no migrations: it requires the
// database's schema to be the one that version ran with (the seed's rule).
func (s *Service) migrate(ctx context.Context, in deployInput, log io.Writer) error {
	j, a, err := s.job(ctx, in, log)
	if err != nil {
		return err
	}
	inst, err := s.instanceFor(ctx, in, a)
	if err != nil {
		return err
	}
	// A failed step's fail drops the executor started here.
	var release func()
	if in.RestoredFrom == "" {
		release = s.startEarly(ctx, in, j, a, inst, log)
	}
	began := time.Now()
	if err := s.instances.EnsureAppDatabases(ctx, inst, a.AppDBName, a.DBRole, a.DBPassword); err != nil {
		return err
	}
	if in.RestoredFrom != "" {
		prev, err := s.store.Version(ctx, a.ID, in.RestoredFrom)
		if err != nil {
			return err
		}
		cur, err := s.instances.SchemaFingerprint(ctx, inst, a.AppDBName)
		if err != nil {
			return err
		}
		if prev.SchemaFingerprint != "" && cur != prev.SchemaFingerprint {
			return hangar.Errorf(hangar.KindInvalid,
				"cannot redeploy version %s: the database schema changed since it ran (version %s ran with schema %s, the database now has schema %s); deploy code that matches the current schema instead",
				prev.ID, prev.ID, prev.SchemaFingerprint, cur)
		}
		logf(log, "schema %s matches version %s: no migrations run", cur, prev.ID)
		if err := s.builder.Prune(ctx, j); err != nil {
			return err
		}
		return s.store.SetVersionSchema(ctx, in.Version, cur)
	}
	j.DB = &build.DB{Target: DBForwardTarget(inst), Env: func(host string, port int) []string { return dbEnv(a, host, port, "") }}
	if err := s.builder.Migrate(ctx, j); err != nil {
		return err
	}
	// The migrations had the whole build; executors get no development
	// dependencies.
	if err := s.builder.Prune(ctx, j); err != nil {
		return err
	}
	switch {
	case release == nil:
	case time.Since(began) <= earlyHoldLimit:
		release() // the deployment step serves with it
	default:
		s.fleet.DropEarly(ctx, a.ID)
	}
	fp, err := s.instances.SchemaFingerprint(ctx, inst, a.AppDBName)
	if err != nil {
		return err
	}
	logf(log, "database schema after migrations: %s", fp)
	return s.store.SetVersionSchema(ctx, in.Version, fp)
}

// earlyHoldLimit bounds the migrations an executor started early waits
// for: past it, the app's held database connections near the 10 s most
// clients wait for one (DBOS's default connect timeout), so the executor
// is dropped and the deployment step starts another.
const earlyHoldLimit = 5 * time.Second

// startEarly starts the version's first executor before its migrations
// run, its database connections held until they are done (Fleet.StartEarly),
// and returns what releases them, or nil when it starts none: when the
// migrations would leave the folder different from what they found (a
// prune of development dependencies).
func (s *Service) startEarly(ctx context.Context, in deployInput, j build.Job, a hangar.App, inst hangar.DBInstance, log io.Writer) func() {
	if prunes, err := build.Prunes(j); err != nil || prunes {
		return nil
	}
	logf(log, "starting the first executor meanwhile; it reaches the database once the migrations are done")
	return s.fleet.StartEarly(ctx, a, inst, in.Version, in.AppVersion)
}

// dbEnv is the database part of the executor contract (API.md §2) for an app
// whose instance is reached at host:port: without TLS, or, when rootCert
// (a path) is set, over TLS verifying host's certificate against that CA.
func dbEnv(a hangar.App, host string, port int, rootCert string) []string {
	query := "sslmode=disable"
	if rootCert != "" {
		query = "sslmode=verify-full&sslrootcert=" + rootCert
	}
	u := func(db string) string {
		return (&url.URL{
			Scheme: "postgresql", User: url.UserPassword(a.DBRole, a.DBPassword),
			Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/" + db, RawQuery: query,
		}).String()
	}
	var tls []string
	if rootCert != "" {
		tls = []string{"PGSSLMODE=verify-full", "PGSSLROOTCERT=" + rootCert}
	}
	return append([]string{
		"DBOS_DATABASE_URL=" + u(a.AppDBName),
		"DBOS_SYSTEM_DATABASE_URL=" + u(a.SysDBName()),
		"PGHOST=" + host,
		"PGPORT=" + strconv.Itoa(port),
		"PGUSER=" + a.DBRole,
		"PGPASSWORD=" + a.DBPassword,
		"PGDATABASE=" + a.AppDBName,
	}, tls...)
}

// deployment starts the new version's executor, waits until it serves,
// switches the router to it and retires the previous version's executors.
func (s *Service) deployment(ctx context.Context, in deployInput, log io.Writer) error {
	a, err := s.store.AppByID(ctx, in.AppID)
	if err != nil {
		return err
	}
	inst, err := s.instanceFor(ctx, in, a)
	if err != nil {
		return err
	}
	logf(log, "starting %d executor(s) of version %s (DBOS__APPVERSION %s)", max(1, a.MinVMs), in.Version, in.AppVersion)
	if err := s.fleet.Serve(ctx, a, inst, in.Version, in.AppVersion); err != nil {
		var he *hangar.Error
		if errors.As(err, &he) && he.Detail != "" {
			logf(log, "executor output:\n%s", strings.TrimRight(he.Detail, "\n"))
		}
		return err
	}
	if in.TargetInstanceID != "" && inst.ID != a.InstanceID {
		if err := s.store.SetAppDBInstance(ctx, a.ID, inst.ID); err != nil {
			return fmt.Errorf("move %s to %s: %w", a.Name, inst.Name, err)
		}
	}
	if err := s.store.FinishVersion(ctx, in.Version, hangar.VersionActive, ""); err != nil {
		return err
	}
	if err := s.store.SetAppServing(ctx, a.ID, in.Version); err != nil {
		return fmt.Errorf("record %s serving: %w", in.Version, err)
	}
	return nil
}
