package deploy

import (
	"context"
	"fmt"
	"net"
	"unicode"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/hangar"
)

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
	if err := hangar.ValidatePGIdent("database username", req.AdminName); err != nil {
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

// provisionWorkflow starts the managed cluster of an instance and records its
// address.
func (s *Service) provisionWorkflow(ctx dbos.Context, instanceID string) (string, error) {
	return dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		inst, err := s.store.DBInstanceByID(ctx, instanceID)
		if err != nil {
			return "", err
		}
		port, err := s.instances.Provision(ctx, inst)
		if err != nil {
			s.log.ErrorContext(ctx, "provision database instance", "instance", inst.Name, "err", err)
			return string(hangar.DBFailed), s.store.SetDBInstanceState(ctx, inst.ID, hangar.DBFailed, "", 0)
		}
		return string(hangar.DBAvailable), s.store.SetDBInstanceState(ctx, inst.ID, hangar.DBAvailable, s.dbHost(), port)
	}, dbos.WithStepName("provision"))
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

// validatePassword applies the official CLI's rule: at least 8 characters.
func validatePassword(pw string) error {
	if len(pw) < 8 {
		return hangar.Errorf(hangar.KindInvalid, "database password must contain at least 8 characters")
	}
	for _, r := range pw {
		if r == 0 || unicode.IsControl(r) {
			return hangar.Errorf(hangar.KindInvalid, "database password must not contain control characters")
		}
	}
	return nil
}
