package deploy

// This file holds what the database instance operations share: their
// workflows, the steps that end a new managed instance's creation, and the
// rules for names and passwords. The operations are in databases_*.go.

import (
	"context"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// registerDBWorkflows registers the database instance workflows; New calls
// it before DBOS launches.
func (s *Service) registerDBWorkflows(ctx dbos.Context) {
	dbos.RegisterWorkflow(ctx, s.provisionWorkflow, dbos.WithWorkflowName("provision-db"))
	dbos.RegisterWorkflow(ctx, s.restoreWorkflow, dbos.WithWorkflowName("restore-db"))
	dbos.RegisterWorkflow(ctx, s.destroyWorkflow, dbos.WithWorkflowName("destroy-db"))
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

// DBInstance returns org's instance named name.
func (s *Service) DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error) {
	return s.store.DBInstance(ctx, org, name)
}

// DBInstances lists org's instances; every org's when org is "".
func (s *Service) DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error) {
	return s.store.DBInstances(ctx, org)
}

// DBForwardTarget is the address executors' database relay forwards to for
// inst: the linked server itself, or a managed instance on loopback.
func DBForwardTarget(inst hangar.DBInstance) string {
	if inst.IsLinked {
		return net.JoinHostPort(inst.Host, strconv.Itoa(inst.Port))
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(inst.Port))
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
