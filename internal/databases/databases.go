// Package databases runs the database instance workflows (provision,
// restore, destroy, link, unlink, admin password) as DBOS durable
// workflows, and the supervisor that keeps managed instances running and
// backed up. It imports internal/hangar and internal/backoff, and
// declares the small interfaces its leaves (store, dbinstance) satisfy;
// api and the composition roots import it.
package databases

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Store is the metadata of database instances; *store.DB satisfies it.
type Store interface {
	// DBInstance returns org's instance named name. KindNotFound.
	DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error)
	// DBInstanceByID returns the instance with id. KindNotFound.
	DBInstanceByID(ctx context.Context, id string) (hangar.DBInstance, error)
	// DBInstances lists org's instances; every org's when org is "".
	DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error)
	// CreateDBInstance records d. KindConflict; KindForbidden past lim.
	CreateDBInstance(ctx context.Context, d hangar.DBInstance, lim hangar.OrgLimits) error
	// SetDBInstanceState records an instance's status and address.
	SetDBInstanceState(ctx context.Context, id string, status hangar.DBStatus, host string, port int) error
	// SetDBInstancePassword locks the instance's record, calls apply with
	// it and records password if apply succeeds. KindNotFound.
	SetDBInstancePassword(ctx context.Context, id, password string, apply func(hangar.DBInstance) error) error
	// DeleteDBInstance removes the instance's record unless apps use it.
	// KindNotFound; KindConflict naming the apps.
	DeleteDBInstance(ctx context.Context, id string) error
}

// Instances runs managed database instances and checks linked servers;
// *dbinstance.Manager satisfies it.
type Instances interface {
	// Provision creates and starts a managed instance and returns its port.
	Provision(ctx context.Context, inst hangar.DBInstance) (int, error)
	// Start starts a provisioned managed instance.
	Start(ctx context.Context, inst hangar.DBInstance) error
	// StopAll stops every managed instance.
	StopAll(ctx context.Context) error
	// Stop stops a managed instance if it runs, starting nothing.
	Stop(ctx context.Context, inst hangar.DBInstance) error
	// Check starts a provisioned managed instance that is not running and
	// reports whether it had to.
	Check(ctx context.Context, inst hangar.DBInstance) (restarted bool, err error)
	// Destroy stops a managed instance and removes its files.
	Destroy(ctx context.Context, inst hangar.DBInstance) error
	// SetAdminPassword changes the password of the instance's admin role.
	// KindInvalid.
	SetAdminPassword(ctx context.Context, inst hangar.DBInstance, password string) error
	// CheckLink checks that a linked server's admin logs in and may create
	// databases and roles. KindInvalid saying what failed.
	CheckLink(ctx context.Context, inst hangar.DBInstance) error
	// BackupIfDue takes a base backup of a running managed instance when
	// its newest is older than the backup interval (or it has none).
	BackupIfDue(ctx context.Context, inst hangar.DBInstance) (bool, error)
	// RestoreWindow returns the earliest time the instance can be restored
	// to; the latest is now. KindUnavailable when it has no backup yet.
	RestoreWindow(inst hangar.DBInstance) (time.Time, error)
	// Restore creates managed instance dst from src as src was at target
	// and returns dst's port. KindInvalid when target is out of range.
	Restore(ctx context.Context, src, dst hangar.DBInstance, target time.Time) (int, error)
}

// Owners records which replica runs each managed instance, when several
// share the metadata database (docs/replicas.md); *replica.Registry
// satisfies it.
type Owners interface {
	// Claim reports whether this process runs instance id: it does when
	// it owns it or nobody did (it then does).
	Claim(ctx context.Context, id string) (bool, error)
	// Take makes this process the one that runs instance id.
	Take(ctx context.Context, id string) error
	// Release forgets who runs instance id.
	Release(ctx context.Context, id string) error
	// Owned lists the instances this process runs.
	Owned(ctx context.Context) ([]string, error)
}

// Config configures the database instance operations.
type Config struct {
	// Domain is the public domain; its host is where users reach managed
	// instances unless DBHost is set. Required.
	Domain string
	// DBHost is the host users reach managed database instances at.
	// Default: the host of Domain.
	DBHost string
	// SystemDatabaseURL is Hangar's own metadata server, which cannot be
	// linked. Default none.
	SystemDatabaseURL string
	// OrgLimits bounds each org's managed database instances. Default: no
	// limits.
	OrgLimits hangar.OrgLimits
	// Owners, when set, says which managed instances this process runs:
	// it starts and supervises only those, and takes those it provisions
	// or restores. Default nil: all of them (one process).
	Owners Owners
	// StepDelay pauses the named workflow steps ("available") before
	// they run: fault injection for the replica tests only. Default none.
	StepDelay map[string]time.Duration
	// Logger receives the operations' logs. Default slog.Default().
	Logger *slog.Logger
}

// Service runs the database instance operations. Create it with New
// before DBOS launches, Start it, and Close it.
type Service struct {
	cfg       Config
	dbos      dbos.Context
	store     Store
	instances Instances
	log       *slog.Logger

	// stop ends the supervisor, which wg waits for.
	stop context.CancelFunc
	wg   sync.WaitGroup
}

// New returns a Service whose workflows are registered on dctx, which must
// not be launched yet.
func New(cfg Config, dctx dbos.Context, st Store, inst Instances) (*Service, error) {
	if cfg.Domain == "" {
		return nil, errors.New("databases: Domain is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Service{cfg: cfg, dbos: dctx, store: st, instances: inst, log: cfg.Logger.With("component", "databases")}
	dbos.RegisterWorkflow(dctx, s.provisionWorkflow, dbos.WithWorkflowName("provision-db"))
	dbos.RegisterWorkflow(dctx, s.restoreWorkflow, dbos.WithWorkflowName("restore-db"))
	dbos.RegisterWorkflow(dctx, s.destroyWorkflow, dbos.WithWorkflowName("destroy-db"))
	return s, nil
}

// Start starts the managed instances that were available or unavailable,
// recording those that do not start unavailable, then supervises them
// until Close.
func (s *Service) Start(ctx context.Context) error {
	insts, err := s.store.DBInstances(ctx, "")
	if err != nil {
		return err
	}
	for _, in := range insts {
		if in.IsLinked || in.Status != hangar.DBAvailable && in.Status != hangar.DBUnavailable || !s.runsHere(ctx, in) {
			continue
		}
		if err := s.instances.Start(ctx, in); err != nil {
			s.log.ErrorContext(ctx, "start database instance", "instance", in.Name, "err", err)
			_ = s.store.SetDBInstanceState(ctx, in.ID, hangar.DBUnavailable, in.Host, in.Port)
		}
	}
	supCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stop = cancel
	s.wg.Go(func() { s.supervise(supCtx) })
	return nil
}

// runsHere reports whether this process runs the managed instance in.
func (s *Service) runsHere(ctx context.Context, in hangar.DBInstance) bool {
	if s.cfg.Owners == nil {
		return true
	}
	mine, err := s.cfg.Owners.Claim(ctx, in.ID)
	if err != nil {
		s.log.ErrorContext(ctx, "look up the replica running a database instance", "instance", in.Name, "err", err)
	}
	return mine
}

// take makes this process the one that runs instance id.
func (s *Service) take(ctx context.Context, id string) error {
	if s.cfg.Owners == nil {
		return nil
	}
	return s.cfg.Owners.Take(ctx, id)
}

// StartInstances starts the managed instances ids that were available or
// unavailable: those this replica inherited from a dead one. The
// supervisor keeps them running from then on.
func (s *Service) StartInstances(ctx context.Context, ids []string) error {
	for _, id := range ids {
		in, err := s.store.DBInstanceByID(ctx, id)
		if hangar.KindOf(err) == hangar.KindNotFound {
			continue
		}
		if err != nil {
			return err
		}
		if in.IsLinked || in.Status != hangar.DBAvailable && in.Status != hangar.DBUnavailable {
			continue
		}
		if err := s.instances.Start(ctx, in); err != nil {
			s.log.ErrorContext(ctx, "start database instance", "instance", in.Name, "err", err)
		}
	}
	return nil
}

// Close stops supervising, so that nothing restarts what it stops, then
// stops every managed instance.
func (s *Service) Close(ctx context.Context) {
	if s.stop != nil {
		s.stop()
	}
	s.wg.Wait()
	if err := s.instances.StopAll(ctx); err != nil {
		s.log.ErrorContext(ctx, "stop database instances", "err", err)
	}
}

// finishDBWorkflow ends the workflows that create a managed instance once
// its server runs: it records the instance available (the official CLI
// polls 5 s after its request, then every 30 s: each second counts), then
// takes its first base backup. The instance can be restored to any time
// after that backup ends (RestoreWindow); should the backup fail, the
// supervisor takes one within dbCheckInterval.
func (s *Service) finishDBWorkflow(ctx dbos.Context, instanceID string, port int) (string, error) {
	if _, err := s.setDBAvailable(ctx, instanceID, port); err != nil {
		return "", err
	}
	return string(hangar.DBAvailable), s.backupStep(ctx, instanceID, port)
}

// backupStep takes the first base backup of a new managed instance; a
// failure is logged, not returned: the supervisor tries again.
func (s *Service) backupStep(ctx dbos.Context, instanceID string, port int) error {
	_, err := dbos.RunAsStep(ctx, func(ctx context.Context) (bool, error) {
		inst, err := s.store.DBInstanceByID(ctx, instanceID)
		if err != nil {
			return false, err
		}
		dbm := s.instances
		inst.Port = port
		if _, err := dbm.BackupIfDue(ctx, inst); err != nil {
			if ctx.Err() != nil {
				return false, err
			}
			s.log.WarnContext(ctx, "first base backup of database instance", "instance", inst.Name, "err", err)
		}
		return true, nil
	}, dbos.WithStepName("backup"))
	return err
}

// setDBAvailable records a new managed instance available at port.
func (s *Service) setDBAvailable(ctx dbos.Context, instanceID string, port int) (string, error) {
	return dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		if d := s.cfg.StepDelay["available"]; d > 0 {
			s.log.WarnContext(ctx, "fault injection: pausing step available", "instance", instanceID, "for", d)
			select {
			case <-time.After(d):
			case <-ctx.Done():
				return "", ctx.Err()
			}
		}
		// A workflow resumed by the replica that took a dead one over
		// starts the server here: the dead one's is stopped.
		inst, err := s.store.DBInstanceByID(ctx, instanceID)
		if err != nil {
			return "", err
		}
		inst.Port = port
		if err := s.instances.Start(ctx, inst); err != nil {
			return "", err
		}
		return string(hangar.DBAvailable), s.store.SetDBInstanceState(ctx, instanceID, hangar.DBAvailable, s.dbHost(), port)
	}, dbos.WithStepName("available"))
}

// dbHost is the host name users reach managed instances at: Config.DBHost,
// else the domain's host.
func (s *Service) dbHost() string {
	if s.cfg.DBHost != "" {
		return s.cfg.DBHost
	}
	if h, _, err := net.SplitHostPort(s.cfg.Domain); err == nil {
		return h
	}
	return s.cfg.Domain
}

var adminNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{2,15}$`)

// validateAdminName applies DBOS Cloud's rule for the admin username of a
// provisioned instance.
func validateAdminName(name string) error {
	if !adminNameRE.MatchString(name) {
		return hangar.Errorf(hangar.KindInvalid, "invalid database username %q: use 3 to 16 characters of a-z, 0-9 and _, starting with a letter", name)
	}
	switch name {
	case "dbosadmin", "dbos", "postgres", "admin":
		return hangar.Errorf(hangar.KindInvalid, "database username %q is reserved: dbosadmin, dbos, postgres and admin cannot be used", name)
	}
	return nil
}

// validatePassword applies DBOS Cloud's (and the official CLI's) rule for
// database passwords.
func validatePassword(pw string) error {
	if len(pw) < 8 || len(pw) > 128 {
		return hangar.Errorf(hangar.KindInvalid, "invalid database password: it must be 8 to 128 characters long")
	}
	for _, r := range pw {
		if r <= ' ' || r > '~' || strings.ContainsRune(`/"@'`, r) {
			return hangar.Errorf(hangar.KindInvalid, "invalid database password: it may contain any printable ASCII character except /, \", @, ' and spaces")
		}
	}
	return nil
}

// DBInstance returns org's instance named name. KindNotFound.
func (s *Service) DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error) {
	return s.store.DBInstance(ctx, org, name)
}

// DBInstances lists org's instances; every org's when org is "".
func (s *Service) DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error) {
	return s.store.DBInstances(ctx, org)
}
