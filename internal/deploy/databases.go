package deploy

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Supervision of managed instances.
const (
	// dbCheckInterval is how often every managed instance is checked.
	dbCheckInterval = 5 * time.Second
	// dbMaxBackoff bounds the wait between attempts to start an instance
	// that keeps failing.
	dbMaxBackoff = 5 * time.Minute
)

// registerDBWorkflows registers the database instance workflows; New calls
// it before DBOS launches.
func (s *Service) registerDBWorkflows(ctx dbos.Context) {
	dbos.RegisterWorkflow(ctx, s.provisionWorkflow, dbos.WithWorkflowName("provision-db"))
	dbos.RegisterWorkflow(ctx, s.restoreWorkflow, dbos.WithWorkflowName("restore-db"))
	dbos.RegisterWorkflow(ctx, s.destroyWorkflow, dbos.WithWorkflowName("destroy-db"))
}

// ProvisionRequest asks for a managed database instance.
type ProvisionRequest struct {
	Name          string
	AdminName     string
	AdminPassword string
}

// ProvisionDB records a managed database instance of org and provisions it in
// a durable workflow; the instance reads "available" once it serves.
func (s *Service) ProvisionDB(ctx context.Context, org string, req ProvisionRequest) (hangar.DBInstance, error) {
	if err := hangar.ValidateDBInstanceName(req.Name); err != nil {
		return hangar.DBInstance{}, err
	}
	if err := validateAdminName(req.AdminName); err != nil {
		return hangar.DBInstance{}, err
	}
	if err := validatePassword(req.AdminPassword); err != nil {
		return hangar.DBInstance{}, err
	}
	inst := hangar.DBInstance{
		ID: uuid.NewString(), Org: org, Name: req.Name, Status: hangar.DBProvisioning,
		AdminUser: req.AdminName, AdminPassword: req.AdminPassword,
	}
	if err := s.store.CreateDBInstance(ctx, inst); err != nil {
		return hangar.DBInstance{}, err
	}
	if _, err := dbos.RunWorkflow(s.dbos, s.provisionWorkflow, inst.ID, dbos.WithWorkflowID("provision-"+inst.ID)); err != nil {
		return hangar.DBInstance{}, fmt.Errorf("start provisioning %s: %w", inst.Name, err)
	}
	return inst, nil
}

// provisionWorkflow starts the managed cluster of an instance, records it
// available and takes its first base backup.
func (s *Service) provisionWorkflow(ctx dbos.Context, instanceID string) (string, error) {
	port, err := dbos.RunAsStep(ctx, func(ctx context.Context) (int, error) {
		inst, err := s.store.DBInstanceByID(ctx, instanceID)
		if err != nil {
			return 0, err
		}
		port, err := s.instances.Provision(ctx, inst)
		if err != nil && ctx.Err() != nil {
			return 0, err // shutting down: the step runs again when the workflow resumes
		}
		if err != nil {
			s.log.ErrorContext(ctx, "provision database instance", "instance", inst.Name, "err", err)
			return 0, s.store.SetDBInstanceState(ctx, inst.ID, hangar.DBFailed, "", 0)
		}
		return port, s.store.SetDBInstanceState(ctx, inst.ID, hangar.DBProvisioning, s.dbHost(), port)
	}, dbos.WithStepName("provision"))
	if err != nil || port == 0 {
		return string(hangar.DBFailed), err
	}
	return s.finishDBWorkflow(ctx, instanceID, port)
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
		return string(hangar.DBAvailable), s.store.SetDBInstanceState(ctx, instanceID, hangar.DBAvailable, s.dbHost(), port)
	}, dbos.WithStepName("available"))
}

// dbHost is the host name users reach managed instances at: the domain's host.
func (s *Service) dbHost() string {
	if h, _, err := net.SplitHostPort(s.cfg.Domain); err == nil {
		return h
	}
	return s.cfg.Domain
}

// DBInstance returns org's instance named name.
func (s *Service) DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error) {
	return s.store.DBInstance(ctx, org, name)
}

// DBInstances lists org's instances.
func (s *Service) DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error) {
	return s.store.DBInstances(ctx, org)
}

// DestroyDB destroys org's managed instance named name: its record, its
// server and its files, backups included. It refuses while applications
// are registered on it, naming them, and while it is still being created.
func (s *Service) DestroyDB(ctx context.Context, org, name string) error {
	st := s.store
	inst, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return err
	}
	if inst.IsLinked {
		return hangar.Errorf(hangar.KindInvalid, "database %s is a linked server, which Hangar does not run: unlink it with `dbos-cloud db unlink %s`", name, name)
	}
	if s.creating(inst) {
		return hangar.Errorf(hangar.KindConflict, "database %s is still %s: destroy it once it is available", name, inst.Status)
	}
	// The record goes first, so that no app can be registered on an
	// instance being destroyed; the workflow then removes the server even
	// if Hangar stops halfway.
	if err := st.DeleteDBInstance(ctx, inst.ID); err != nil {
		return err
	}
	h, err := dbos.RunWorkflow(s.dbos, s.destroyWorkflow, destroyInput{ID: inst.ID, Port: inst.Port}, dbos.WithWorkflowID("destroy-"+inst.ID))
	if err != nil {
		return fmt.Errorf("start destroying %s: %w", name, err)
	}
	if _, err := h.GetResult(); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	return nil
}

// creating reports whether inst is being provisioned or restored by a
// workflow that is still running. An instance left provisioning or
// restoring by a workflow that ended otherwise (cancelled) may be destroyed.
func (s *Service) creating(inst hangar.DBInstance) bool {
	var wf string
	switch inst.Status {
	case hangar.DBProvisioning:
		wf = "provision-" + inst.ID
	case hangar.DBRestoring:
		wf = "restore-" + inst.ID
	default:
		return false
	}
	wfs, err := dbos.ListWorkflows(s.dbos, dbos.WithFilterWorkflowIDs(wf))
	if err != nil || len(wfs) == 0 {
		return err != nil // unknown: assume it runs
	}
	return wfs[0].Status == dbos.WorkflowStatusPending || wfs[0].Status == dbos.WorkflowStatusEnqueued
}

// destroyInput names the managed instance a destroy workflow removes; its
// record is gone by then.
type destroyInput struct {
	ID   string
	Port int
}

// destroyWorkflow stops a managed instance and removes its files.
func (s *Service) destroyWorkflow(ctx dbos.Context, in destroyInput) (string, error) {
	return dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		dbm := s.instances
		return "destroyed", dbm.Destroy(ctx, hangar.DBInstance{ID: in.ID, Port: in.Port})
	}, dbos.WithStepName("destroy"), dbos.WithStepMaxRetries(5))
}

// ResetDBPassword sets the admin password of org's managed instance named
// name, in the server and in Hangar's record.
func (s *Service) ResetDBPassword(ctx context.Context, org, name, password string) error {
	if err := validatePassword(password); err != nil {
		return err
	}
	st := s.store
	dbm := s.instances
	inst, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return err
	}
	if inst.IsLinked {
		return hangar.Errorf(hangar.KindInvalid, "database %s is a linked server: change the password on it, then unlink and link it again", name)
	}
	if inst.Status != hangar.DBAvailable {
		return hangar.Errorf(hangar.KindUnavailable, "database %s is %s, not available: try again once it is", name, inst.Status)
	}
	return st.SetDBInstancePassword(ctx, inst.ID, password, func(cur hangar.DBInstance) error {
		return dbm.SetAdminPassword(ctx, cur, password)
	})
}

// LinkRequest asks to link a PostgreSQL server of the user's own.
type LinkRequest struct {
	Name     string
	HostName string
	Port     int
	Password string
	// AdminName is the role Hangar uses on the server. Default "dbosadmin"
	// ("postgres" for a Supabase database).
	AdminName string
	// SupabaseRef is the Supabase project reference when the server is a
	// Supabase database.
	SupabaseRef *string
}

// LinkDB records a server of the user's own as org's instance req.Name,
// after checking that its admin role logs in and may create databases and
// roles. Apps registered on it get their databases there.
func (s *Service) LinkDB(ctx context.Context, org string, req LinkRequest) (hangar.DBInstance, error) {
	if err := hangar.ValidateDBInstanceName(req.Name); err != nil {
		return hangar.DBInstance{}, err
	}
	if err := validateHostName(req.HostName); err != nil {
		return hangar.DBInstance{}, err
	}
	if req.Port < 1 || req.Port > 65535 {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid, "invalid port %d: use 1 to 65535", req.Port)
	}
	if err := validatePassword(req.Password); err != nil {
		return hangar.DBInstance{}, err
	}
	admin := req.AdminName
	if admin == "" {
		admin = "dbosadmin"
		if req.SupabaseRef != nil {
			admin = "postgres"
		}
	}
	if err := hangar.ValidatePGIdent("database admin name", admin); err != nil {
		return hangar.DBInstance{}, err
	}
	dbm := s.instances
	if _, err := s.store.DBInstance(ctx, org, req.Name); err == nil {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindConflict, "database instance %s already exists", req.Name)
	} else if hangar.KindOf(err) != hangar.KindNotFound {
		return hangar.DBInstance{}, err
	}
	if err := s.refuseOwnServer(ctx, req.HostName, req.Port); err != nil {
		return hangar.DBInstance{}, err
	}
	inst := hangar.DBInstance{
		ID: uuid.NewString(), Org: org, Name: req.Name, Status: hangar.DBAvailable,
		Host: req.HostName, Port: req.Port, AdminUser: admin, AdminPassword: req.Password, IsLinked: true,
	}
	if err := dbm.CheckLink(ctx, inst); err != nil {
		return hangar.DBInstance{}, err
	}
	if err := s.store.CreateDBInstance(ctx, inst); err != nil {
		return hangar.DBInstance{}, err
	}
	return inst, nil
}

// refuseOwnServer refuses to link a server Hangar runs itself (a managed
// instance, of any org, or the metadata database): one reaches those only
// through Hangar.
func (s *Service) refuseOwnServer(ctx context.Context, host string, port int) error {
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return hangar.Errorf(hangar.KindInvalid, "cannot resolve database host name %s", host)
	}
	local := false
	for _, a := range addrs {
		local = local || a.IP.IsLoopback() || a.IP.IsUnspecified()
	}
	if !local {
		return nil
	}
	own := map[int]bool{}
	if u, err := url.Parse(s.cfg.SystemDatabaseURL); err == nil {
		if p, err := strconv.Atoi(u.Port()); err == nil {
			own[p] = true
		}
	}
	insts, err := s.store.DBInstances(ctx, "")
	if err != nil {
		return err
	}
	for _, in := range insts {
		if !in.IsLinked {
			own[in.Port] = true
		}
	}
	if own[port] {
		return hangar.Errorf(hangar.KindInvalid, "%s is a server Hangar runs itself: link a PostgreSQL server of your own", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return nil
}

// UnlinkDB removes org's linked instance named name; Hangar leaves the
// server and the apps' databases on it alone. It refuses while applications
// are registered on it, naming them.
func (s *Service) UnlinkDB(ctx context.Context, org, name string) error {
	st := s.store
	inst, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return err
	}
	if !inst.IsLinked {
		return hangar.Errorf(hangar.KindInvalid, "database %s is not a linked server: destroy it with `dbos-cloud db destroy %s`", name, name)
	}
	return st.DeleteDBInstance(ctx, inst.ID)
}

// RestoreRequest asks for a point-in-time restore of an instance into a new
// one.
type RestoreRequest struct {
	// Name is the new instance's name.
	Name string
	// Time is the point in time, RFC 3339 (fractions of a second allowed).
	Time string
}

// RestoreDB creates org's managed instance req.Name as a copy of the
// instance name at time req.Time: every transaction committed then, none
// after. The new instance has the same admin credentials; it reads
// "restoring" and then "available" (or "failed"). A time outside the
// range the instance can be restored to is refused with the range.
func (s *Service) RestoreDB(ctx context.Context, org, name string, req RestoreRequest) (hangar.DBInstance, error) {
	if err := hangar.ValidateDBInstanceName(req.Name); err != nil {
		return hangar.DBInstance{}, err
	}
	target, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(req.Time))
	if err != nil {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid, "invalid restore time %q: use RFC 3339, for example 2009-09-07T23:45:00Z", req.Time)
	}
	dbm := s.instances
	src, err := s.store.DBInstance(ctx, org, name)
	if err != nil {
		return hangar.DBInstance{}, err
	}
	if src.IsLinked {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid, "database %s is a linked server: Hangar keeps no backups of servers it does not run", name)
	}
	if src.Status != hangar.DBAvailable && src.Status != hangar.DBUnavailable {
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindUnavailable, "database %s is %s: restore it once it is available", name, src.Status)
	}
	from, err := dbm.RestoreWindow(src)
	if err != nil {
		return hangar.DBInstance{}, err
	}
	if now := time.Now(); target.Before(from) || target.After(now) {
		// Shown to the second: any time within the range as shown works.
		earliest := from.Truncate(time.Second)
		if earliest.Before(from) {
			earliest = earliest.Add(time.Second)
		}
		return hangar.DBInstance{}, hangar.Errorf(hangar.KindInvalid,
			"cannot restore database %s to %s: it can be restored to any time from %s to now (%s)",
			name, target.UTC().Format(time.RFC3339Nano), earliest.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	dst := hangar.DBInstance{
		ID: uuid.NewString(), Org: org, Name: req.Name, Status: hangar.DBRestoring,
		AdminUser: src.AdminUser, AdminPassword: src.AdminPassword,
	}
	if err := s.store.CreateDBInstance(ctx, dst); err != nil {
		return hangar.DBInstance{}, err
	}
	in := restoreInput{SourceID: src.ID, TargetID: dst.ID, Time: target}
	if _, err := dbos.RunWorkflow(s.dbos, s.restoreWorkflow, in, dbos.WithWorkflowID("restore-"+dst.ID)); err != nil {
		return hangar.DBInstance{}, fmt.Errorf("start restoring %s: %w", name, err)
	}
	return dst, nil
}

// restoreInput is a point-in-time restore of instance SourceID into the
// new instance TargetID.
type restoreInput struct {
	SourceID string
	TargetID string
	Time     time.Time
}

// restoreWorkflow recovers the new instance from the source's base backup
// and WAL archive, records it available and takes its first base backup.
func (s *Service) restoreWorkflow(ctx dbos.Context, in restoreInput) (string, error) {
	port, err := dbos.RunAsStep(ctx, func(ctx context.Context) (int, error) {
		dbm := s.instances
		dst, err := s.store.DBInstanceByID(ctx, in.TargetID)
		if err != nil {
			return 0, err
		}
		src, err := s.store.DBInstanceByID(ctx, in.SourceID)
		var port int
		if err == nil {
			port, err = dbm.Restore(ctx, src, dst, in.Time)
		}
		if err != nil && ctx.Err() != nil {
			return 0, err // shutting down: the step runs again when the workflow resumes
		}
		if err != nil {
			s.log.ErrorContext(ctx, "restore database instance", "instance", dst.Name, "from", in.SourceID, "time", in.Time, "err", err)
			return 0, s.store.SetDBInstanceState(ctx, dst.ID, hangar.DBFailed, "", 0)
		}
		return port, s.store.SetDBInstanceState(ctx, dst.ID, hangar.DBRestoring, s.dbHost(), port)
	}, dbos.WithStepName("restore"))
	if err != nil || port == 0 {
		return string(hangar.DBFailed), err
	}
	return s.finishDBWorkflow(ctx, in.TargetID, port)
}

// superviseDBs keeps the managed instances running until ctx is done:
// every dbCheckInterval it starts those whose server is down (waiting
// longer between attempts, up to dbMaxBackoff, while starting fails),
// records them unavailable while they are down and available again once
// they run, and takes the base backups that are due, in the background.
func (s *Service) superviseDBs(ctx context.Context) {
	sv := &dbSupervisor{s: s, dbm: s.instances, health: map[string]*dbHealth{}, backingUp: map[string]bool{}}
	defer sv.wg.Wait()
	tick := time.NewTicker(dbCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			sv.check(ctx, time.Now())
		}
	}
}

// dbSupervisor is the state of superviseDBs.
type dbSupervisor struct {
	s      *Service
	dbm    DBManager
	health map[string]*dbHealth // by instance ID; only the loop uses it

	wg        sync.WaitGroup
	mu        sync.Mutex
	backingUp map[string]bool // instance IDs with a base backup running
}

// dbHealth tracks an instance whose server fails to start.
type dbHealth struct {
	failures int
	next     time.Time // no attempt before
}

// dbBackoff is the wait after the n-th failure in a row to start an
// instance: dbCheckInterval doubled each time, up to dbMaxBackoff.
func dbBackoff(n int) time.Duration {
	d := dbCheckInterval
	for range n - 1 {
		if d *= 2; d >= dbMaxBackoff {
			return dbMaxBackoff
		}
	}
	return d
}

func (sv *dbSupervisor) check(ctx context.Context, now time.Time) {
	s := sv.s
	insts, err := s.store.DBInstances(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "supervise database instances: list them", "err", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, in := range insts {
		if in.IsLinked || in.Status != hangar.DBAvailable && in.Status != hangar.DBUnavailable {
			continue
		}
		seen[in.ID] = true
		h := sv.health[in.ID]
		if h == nil {
			h = &dbHealth{}
			sv.health[in.ID] = h
		}
		if now.Before(h.next) {
			continue
		}
		restarted, err := sv.dbm.Check(ctx, in)
		if ctx.Err() != nil {
			return // shutting down: record nothing
		}
		if err != nil {
			h.failures++
			h.next = now.Add(dbBackoff(h.failures))
			s.log.ErrorContext(ctx, "database instance is down and does not start", "instance", in.Name, "attempt", h.failures, "next_attempt", h.next, "err", err)
			if in.Status == hangar.DBAvailable {
				sv.setStatus(ctx, in, hangar.DBUnavailable)
			}
			continue
		}
		if restarted {
			s.log.WarnContext(ctx, "database instance was down: restarted it", "instance", in.Name, "port", in.Port)
		}
		h.failures, h.next = 0, time.Time{}
		if in.Status == hangar.DBUnavailable {
			sv.setStatus(ctx, in, hangar.DBAvailable)
		}
		sv.backupIfDue(ctx, in)
	}
	for id := range sv.health {
		if !seen[id] {
			delete(sv.health, id)
		}
	}
}

func (sv *dbSupervisor) setStatus(ctx context.Context, in hangar.DBInstance, status hangar.DBStatus) {
	if err := sv.s.store.SetDBInstanceState(ctx, in.ID, status, in.Host, in.Port); err != nil {
		sv.s.log.ErrorContext(ctx, "record database instance status", "instance", in.Name, "status", status, "err", err)
	}
}

// backupIfDue takes a due base backup of in in the background, one at a
// time per instance.
func (sv *dbSupervisor) backupIfDue(ctx context.Context, in hangar.DBInstance) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.backingUp[in.ID] {
		return
	}
	sv.backingUp[in.ID] = true
	sv.wg.Go(func() {
		defer func() {
			sv.mu.Lock()
			delete(sv.backingUp, in.ID)
			sv.mu.Unlock()
		}()
		// The manager logs the backups it takes.
		if _, err := sv.dbm.BackupIfDue(ctx, in); err != nil && ctx.Err() == nil {
			sv.s.log.ErrorContext(ctx, "base backup of database instance", "instance", in.Name, "err", err)
		}
	})
}

// DBForwardTarget is the address executors' database relay forwards to for
// inst: the linked server itself, or a managed instance on loopback.
func DBForwardTarget(inst hangar.DBInstance) string {
	if inst.IsLinked {
		return net.JoinHostPort(inst.Host, strconv.Itoa(inst.Port))
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port))
}

var (
	adminNameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{2,15}$`)
	hostNameRE  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$`)
)

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

// validateHostName checks the host name of a linked server: a DNS name or
// an IP address.
func validateHostName(host string) error {
	if net.ParseIP(host) != nil {
		return nil
	}
	if len(host) > 253 || !hostNameRE.MatchString(host) {
		return hangar.Errorf(hangar.KindInvalid, "invalid database host name %q: use a DNS name or an IP address", host)
	}
	return nil
}
