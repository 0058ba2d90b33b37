package deploy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// upload unpacks the stored archive into the version's folder. It starts from
// an empty folder, so a resumed step never sees a half-written tree.
func (s *Service) upload(ctx context.Context, in deployInput) error {
	dir := s.versionDir(in.AppID, in.Version)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return err
	}
	st, err := build.Unpack(ctx, s.archivePath(in.Digest), dir, s.cfg.Limits)
	if err != nil {
		return err
	}
	s.deployLog(in, "unpacked %d files, %d bytes (archive sha256 %s)", st.Files, st.Bytes, in.Digest)
	return nil
}

// job loads the version's config and returns the build job for it.
func (s *Service) job(ctx context.Context, in deployInput) (build.Job, hangar.App, error) {
	a, err := s.store.AppByID(ctx, in.AppID)
	if err != nil {
		return build.Job{}, a, err
	}
	dir := s.versionDir(in.AppID, in.Version)
	cfg, err := build.LoadConfig(dir)
	if err != nil {
		return build.Job{}, a, err
	}
	return build.Job{Dir: dir, Config: cfg, Log: s.deployLogWriter(in)}, a, nil
}

// configure runs the app's setup commands and installs its dependencies.
func (s *Service) configure(ctx context.Context, in deployInput) error {
	j, a, err := s.job(ctx, in)
	if err != nil {
		return err
	}
	defer closeLog(j.Log)
	if j.Config.Name != "" && j.Config.Name != a.Name {
		s.deployLog(in, "note: dbos-config.yaml names the app %q; it is deployed as %q", j.Config.Name, a.Name)
	}
	if j.Config.Language != a.Language {
		return hangar.Errorf(hangar.KindInvalid, "dbos-config.yaml says language %s but %s was registered as %s", j.Config.Language, a.Name, a.Language)
	}
	if err := s.builder.Setup(ctx, j); err != nil {
		return err
	}
	return s.builder.InstallDeps(ctx, j)
}

// migrate creates the app's databases if needed and runs its migrations with
// the app's database environment.
func (s *Service) migrate(ctx context.Context, in deployInput) error {
	j, a, err := s.job(ctx, in)
	if err != nil {
		return err
	}
	defer closeLog(j.Log)
	inst, err := s.store.DBInstance(ctx, a.Org, a.DBInstance)
	if err != nil {
		return err
	}
	if err := s.instances.EnsureAppDatabases(ctx, inst, a.AppDBName, a.DBRole, a.DBPassword); err != nil {
		return err
	}
	j.Env = dbEnv(a, "127.0.0.1", inst.Port)
	return s.builder.Migrate(ctx, j)
}

// dbEnv is the database part of the executor contract (API.md §2) for an app
// whose instance is reached at host:port.
func dbEnv(a hangar.App, host string, port int) []string {
	u := func(db string) string {
		return (&url.URL{
			Scheme: "postgresql", User: url.UserPassword(a.DBRole, a.DBPassword),
			Host: net.JoinHostPort(host, strconv.Itoa(port)), Path: "/" + db, RawQuery: "sslmode=disable",
		}).String()
	}
	return []string{
		"DBOS_DATABASE_URL=" + u(a.AppDBName),
		"DBOS_SYSTEM_DATABASE_URL=" + u(a.SysDBName()),
		"PGHOST=" + host,
		"PGPORT=" + strconv.Itoa(port),
		"PGUSER=" + a.DBRole,
		"PGPASSWORD=" + a.DBPassword,
		"PGDATABASE=" + a.AppDBName,
	}
}

// deployment starts the new version's executor, waits until it serves,
// switches the router to it and retires the previous version's executors.
func (s *Service) deployment(ctx context.Context, in deployInput) error {
	a, err := s.store.AppByID(ctx, in.AppID)
	if err != nil {
		return err
	}
	if err := s.serve(ctx, a, in.Version); err != nil {
		return err
	}
	if err := s.store.FinishVersion(ctx, in.Version, hangar.VersionActive, ""); err != nil {
		return err
	}
	if err := s.store.SetAppServing(ctx, a.ID, in.Version); err != nil {
		return fmt.Errorf("record %s serving: %w", in.Version, err)
	}
	return nil
}
