package databases

import (
	"context"
	"fmt"

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
	if err := s.store.CreateDBInstance(ctx, inst, s.cfg.OrgLimits); err != nil {
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
		if err := s.take(ctx, inst.ID); err != nil {
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
