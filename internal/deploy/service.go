// Package deploy runs the app pipeline: registration, updates, deletion
// and the deploy workflow (upload → configuration → migration →
// deployment), as DBOS durable workflows on the metadata database so that
// a server killed mid-deploy resumes where it stopped. The executors of a
// built version run in the fleet (internal/fleet), which deploy reaches
// through its Fleet interface and describes through Specs. It declares the
// small interfaces its leaves satisfy, and may import internal/hangar,
// internal/runtime and internal/build; api and the composition roots
// import it.
package deploy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Store is the metadata the orchestrator reads and writes.
type Store interface {
	App(ctx context.Context, org, name string) (hangar.App, error)
	AppByID(ctx context.Context, id string) (hangar.App, error)
	Apps(ctx context.Context, org string) ([]hangar.App, error)
	CreateApp(ctx context.Context, a hangar.App, instanceID string, lim hangar.OrgLimits) error
	CheckOrgExecutors(ctx context.Context, org string, lim hangar.OrgLimits) error
	SetAppStatus(ctx context.Context, appID string, status hangar.AppStatus) error
	SetAppServing(ctx context.Context, appID, version string) error

	DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error)
	DBInstanceByID(ctx context.Context, id string) (hangar.DBInstance, error)

	UpdateApp(ctx context.Context, appID string, memoryMiB, minVMs, maxVMs int, lim hangar.OrgLimits) error
	SetAppDBInstance(ctx context.Context, appID, instanceID string) error
	DeleteApp(ctx context.Context, appID string) error
	BeginOperation(ctx context.Context, appID, op string) error
	EndOperation(ctx context.Context, appID, op string) error
	Operations(ctx context.Context) (map[string]string, error)

	CreateVersion(ctx context.Context, v hangar.Version) error
	Version(ctx context.Context, appID, id string) (hangar.Version, error)
	Versions(ctx context.Context, appID string) ([]hangar.Version, error)
	RecordStep(ctx context.Context, id string, st hangar.StepRecord) error
	SetVersionConfig(ctx context.Context, id string, config []byte) error
	SetVersionSchema(ctx context.Context, id, fingerprint string) error
	FinishVersion(ctx context.Context, id string, status hangar.VersionStatus, errText string) error
}

// Instances runs managed database instances and the apps' databases on them.
type Instances interface {
	EnsureAppDatabases(ctx context.Context, inst hangar.DBInstance, appDB, role, password string) error
	DropAppDatabases(ctx context.Context, inst hangar.DBInstance, appDB, role string) error
	SchemaFingerprint(ctx context.Context, inst hangar.DBInstance, db string) (string, error)
}

// Secrets opens an app's secrets for its executors' environment;
// accounts.Opener satisfies it.
type Secrets interface {
	Secrets(ctx context.Context, appID string) (map[string]string, error)
}

// Archives holds the deploy archives, by digest; *archive.Store
// satisfies it.
type Archives interface {
	// Open opens a stored archive. KindNotFound.
	Open(digest string) (*os.File, error)
	// GC deletes the archives no version keeps and no upload holds, and
	// what crashed uploads left.
	GC(ctx context.Context) error
}

// Fleet runs the apps' executors; *fleet.Fleet satisfies it.
type Fleet interface {
	// Serve starts the executors of version for a, with its database on
	// inst, routes the app to them once they all answer and retires the
	// previous ones. KindUnavailable with the executors' output as detail
	// when they do not become healthy; the previous version keeps serving.
	Serve(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error
	// StartEarly starts, in the background, the first executor of version
	// for a ahead of Serve, while migrations run, its database connections
	// held until release is called; Serve of version then uses it.
	// DropEarly stops it, never released, when the deploy does not get to
	// Serve.
	StartEarly(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) (release func())
	DropEarly(ctx context.Context, appID string)
	// Resume serves version for a after Hangar restarted, and keeps
	// trying with back-off when it does not start.
	Resume(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error
	// Serving reports whether executors serve the app.
	Serving(appID string) bool
	// StopApp withdraws the app's route and stops all its executors.
	StopApp(ctx context.Context, a hangar.App)
	// VersionRuns reports whether an executor of version (its ID) runs or
	// serves.
	VersionRuns(appID, version string) bool
}

// Config configures the orchestrator.
type Config struct {
	// DataDir holds the app trees (DataDir/apps/<app ID>). Required.
	DataDir string
	// StepDelay pauses the named deploy steps after they start: fault
	// injection for crash tests (HANGAR_FAULT_STEP_DELAY). Default none.
	StepDelay map[string]time.Duration
	// Build configures dependency installs and migrations.
	Build build.Options
	// BuildRunner runs the build's commands. Default build.ExecRunner:
	// on the host, for the unsandboxed development driver only.
	BuildRunner build.Runner
	// Disks gives each version's folder a size the kernel enforces while
	// it builds and while it runs (image.Disks, docs/disk.md). Default
	// nil: plain directories.
	Disks Disks
	// Limits bounds what an archive unpacks to.
	Limits build.Limits
	// OrgLimits bounds each org's apps, managed database instances and
	// minimum executors. Default: no limits (the composition root sets
	// the operator's).
	OrgLimits hangar.OrgLimits
	// Logger receives the orchestrator's logs. Default slog.Default().
	Logger *slog.Logger
	// Observer is told of deploy outcomes and step durations, for
	// metrics. Default none.
	Observer Observer
	// Elsewhere reports whether another replica runs a's executors, so
	// that Launch leaves them to it (docs/replicas.md). Default nil: this
	// process runs every app's.
	Elsewhere func(ctx context.Context, a hangar.App) bool
	// OperationSettle is how long an app's operation must go without a
	// workflow before it is released as interrupted: with replicas,
	// another one may be about to start that workflow. Default 0: at
	// once, as one process has no other.
	OperationSettle time.Duration
}

// Service is the orchestrator. Create it with New, then Launch it.
type Service struct {
	cfg       Config
	store     Store
	instances Instances
	fleet     Fleet
	logs      LogSink
	builder   *build.Builder
	log       *slog.Logger
	dbos      dbos.Context
	archives  Archives
	prunes    sync.WaitGroup // pruneVersions run after their deploy returned
}

// WorkflowVersion is the DBOS application version of Hangar's workflows:
// bump it when a workflow's steps change incompatibly.
const WorkflowVersion = "hangar-1"

// New returns a Service whose workflows are registered on dctx, which must
// not be launched yet; it runs nothing yet.
func New(cfg Config, dctx dbos.Context, st Store, inst Instances, fl Fleet, logs LogSink, archives Archives) (*Service, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("deploy: DataDir is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, d := range []string{"apps", "cache"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o700); err != nil {
			return nil, err
		}
	}
	// A version's disk bounds its build (docs/disk.md).
	cfg.Build.DiskBounded = cfg.Disks != nil
	s := &Service{
		cfg: cfg, store: st, instances: inst, fleet: fl, logs: logs, archives: archives,
		builder: build.NewBuilder(cfg.Build, cmp.Or[build.Runner](cfg.BuildRunner, build.ExecRunner{})),
		log:     cfg.Logger.With("component", "deploy"), dbos: dctx,
	}
	dbos.RegisterWorkflow(dctx, s.deployWorkflow, dbos.WithWorkflowName("deploy"))
	dbos.RegisterWorkflow(dctx, s.deleteWorkflow, dbos.WithWorkflowName("delete-app"))
	return s, nil
}

// Launch starts the executors of every available app (their database
// instances run by then), then launches DBOS, which resumes interrupted
// workflows.
func (s *Service) Launch(ctx context.Context) error {
	err := s.ResumeApps(ctx, func(a hangar.App) bool {
		return s.cfg.Elsewhere == nil || !s.cfg.Elsewhere(ctx, a)
	})
	if err != nil {
		return err
	}
	// What a crash left, before DBOS resumes deploys and before the API
	// serves uploads: uploads, the archive of a deploy that failed before
	// its upload was released.
	if err := s.archives.GC(ctx); err != nil {
		s.log.ErrorContext(ctx, "collect archives", "err", err)
	}
	if err := dbos.Launch(s.dbos); err != nil {
		return fmt.Errorf("launch DBOS: %w", err)
	}
	return s.ReleaseInterrupted(ctx)
}

// ResumeApps starts the executors of the available apps that keep
// selects: at launch, or those of a dead replica this one takes over.
// An app that does not start is marked unavailable.
func (s *Service) ResumeApps(ctx context.Context, keep func(hangar.App) bool) error {
	apps, err := s.store.Apps(ctx, "")
	if err != nil {
		return err
	}
	for _, a := range apps {
		if !keep(a) {
			continue
		}
		if err := s.restart(ctx, a); err != nil {
			s.log.ErrorContext(ctx, "restart app", "app", a.Name, "version", a.Version, "err", err)
			_ = s.store.SetAppStatus(ctx, a.ID, hangar.StatusUnavailable)
		}
	}
	return nil
}

// RecoverWorkflows has this process run the PENDING workflows of DBOS
// executor executorID, a dead replica (docs/replicas.md): each resumes
// from its last recorded step. Deploys, deletes and database workflows
// share the DBOS context, so all of them are recovered. It returns how
// many were.
func (s *Service) RecoverWorkflows(ctx context.Context, executorID string) (int, error) {
	r, ok := s.dbos.(interface {
		RecoverPendingWorkflows(executorIDs []string) ([]dbos.WorkflowHandle[any], error)
	})
	if !ok {
		return 0, errors.New("recover workflows: this DBOS context cannot recover another executor's workflows")
	}
	hs, err := r.RecoverPendingWorkflows([]string{executorID})
	if err != nil {
		return 0, fmt.Errorf("recover the workflows of executor %s: %w", executorID, err)
	}
	return len(hs), nil
}

// ReleaseInterrupted releases apps whose operation has no workflow to
// finish it, after Config.OperationSettle: a server killed between taking
// the app and starting the workflow, or during a metadata update. DBOS
// resumes every operation that has one.
func (s *Service) ReleaseInterrupted(ctx context.Context) error {
	ops, err := s.unstarted(ctx)
	if err != nil || len(ops) == 0 || s.cfg.OperationSettle <= 0 {
		return errors.Join(err, s.release(ctx, ops))
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(s.cfg.OperationSettle):
	}
	again, err := s.unstarted(ctx)
	if err != nil {
		return err
	}
	for appID, op := range ops {
		if again[appID] != op {
			delete(ops, appID)
		}
	}
	return s.release(ctx, ops)
}

// unstarted returns, by app, the operations that have no workflow.
func (s *Service) unstarted(ctx context.Context) (map[string]string, error) {
	ops, err := s.store.Operations(ctx)
	if err != nil {
		return nil, err
	}
	for appID, op := range ops {
		wfs, err := dbos.ListWorkflows(s.dbos, dbos.WithFilterWorkflowIDs(op))
		if err != nil {
			return nil, fmt.Errorf("look up operation %s: %w", op, err)
		}
		if len(wfs) > 0 {
			delete(ops, appID)
		}
	}
	return ops, nil
}

// release ends the operations ops (by app) that never started.
func (s *Service) release(ctx context.Context, ops map[string]string) error {
	for appID, op := range ops {
		s.log.WarnContext(ctx, "releasing an operation interrupted before it started", "app", appID, "operation", op)
		if version, ok := strings.CutPrefix(op, "deploy-"); ok {
			if err := s.store.FinishVersion(ctx, version, hangar.VersionFailed, "deploy interrupted: the server stopped before the deploy started; deploy again"); err != nil {
				return err
			}
			status := hangar.StatusFailed
			if s.servedAnywhere(ctx, appID) {
				status = hangar.StatusAvailable
			}
			if err := s.store.SetAppStatus(ctx, appID, status); err != nil {
				return err
			}
		}
		if err := s.store.EndOperation(ctx, appID, op); err != nil {
			return err
		}
	}
	return nil
}

// servedAnywhere reports whether this process or, with replicas, another
// one serves the app.
func (s *Service) servedAnywhere(ctx context.Context, appID string) bool {
	if s.fleet.Serving(appID) {
		return true
	}
	if s.cfg.Elsewhere == nil {
		return false
	}
	a, err := s.store.AppByID(ctx, appID)
	return err == nil && s.cfg.Elsewhere(ctx, a)
}

// restart starts the executor of the version that served a before Hangar
// stopped; a deploy interrupted then resumes on top of it.
func (s *Service) restart(ctx context.Context, a hangar.App) error {
	if a.Version == "" || a.Status == hangar.StatusDeleting {
		return nil
	}
	v, err := s.store.Version(ctx, a.ID, a.Version)
	if err != nil {
		return err
	}
	inst, err := s.store.DBInstanceByID(ctx, a.InstanceID)
	if err != nil {
		return err
	}
	if err := s.fleet.Resume(ctx, a, inst, v.ID, v.AppVersion); err != nil {
		return err
	}
	if a.Status == hangar.StatusUnavailable {
		return s.store.SetAppStatus(ctx, a.ID, hangar.StatusAvailable)
	}
	return nil
}

// Shutdown stops DBOS: the workflows under way stop at their next step
// and resume when Hangar starts again.
func (s *Service) Shutdown() {
	dbos.Shutdown(s.dbos, 10*time.Second) //nolint:errcheck // logged by DBOS
	s.prunes.Wait()
}

// appDir is the tree of one app: its versions and logs.
func appDir(dataDir, appID string) string { return filepath.Join(dataDir, "apps", appID) }

// versionDir is where a version's archive is unpacked and built.
func versionDir(dataDir, appID, version string) string {
	return filepath.Join(appDir(dataDir, appID), "versions", version)
}

func (s *Service) appDir(appID string) string { return appDir(s.cfg.DataDir, appID) }

func (s *Service) versionDir(appID, version string) string {
	return versionDir(s.cfg.DataDir, appID, version)
}
