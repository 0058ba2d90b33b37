package databases

import (
	"context"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"

	"github.com/hangar-oss/hangar/internal/hangar"
)

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

// destroyWorkflow stops a managed instance and removes its files. With
// replicas, the one that runs it stops it first (its supervisor sees the
// record gone) and releases it: the files go once this one could claim it.
func (s *Service) destroyWorkflow(ctx dbos.Context, in destroyInput) (string, error) {
	return dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
		for s.cfg.Owners != nil {
			mine, err := s.cfg.Owners.Claim(ctx, in.ID)
			if err != nil {
				return "", err
			}
			if mine {
				break
			}
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Second):
			}
		}
		if err := s.instances.Destroy(ctx, hangar.DBInstance{ID: in.ID, Port: in.Port}); err != nil {
			return "", err
		}
		if s.cfg.Owners != nil {
			return "destroyed", s.cfg.Owners.Release(ctx, in.ID)
		}
		return "destroyed", nil
	}, dbos.WithStepName("destroy"), dbos.WithStepMaxRetries(5))
}
