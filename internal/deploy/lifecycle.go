package deploy

import (
	"context"
	"fmt"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/oklog/ulid/v2"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// MaxVMs bounds max_vms.
const MaxVMs = 32

// UpdateRequest changes an app's metadata; nil fields keep their value.
type UpdateRequest struct {
	MemoryMiB, MinVMs, MaxVMs *int
}

// UpdateApp changes the app's executor memory and bounds. It is metadata
// only: the values apply from the next deploy.
func (s *Service) UpdateApp(ctx context.Context, org, name string, req UpdateRequest) (hangar.App, error) {
	a, err := s.store.App(ctx, org, name)
	if err != nil {
		return a, err
	}
	if req.MemoryMiB != nil {
		if err := hangar.ValidateMemory(*req.MemoryMiB); err != nil {
			return a, err
		}
		a.MemoryMiB = *req.MemoryMiB
	}
	if req.MinVMs != nil {
		a.MinVMs = *req.MinVMs
	}
	if req.MaxVMs != nil {
		a.MaxVMs = *req.MaxVMs
	} else if a.MaxVMs < a.MinVMs {
		a.MaxVMs = a.MinVMs
	}
	if a.MinVMs < 1 || a.MinVMs > MaxVMs {
		return a, hangar.Errorf(hangar.KindInvalid, "invalid min executors %d: allowed range is 1 to %d", a.MinVMs, MaxVMs)
	}
	if a.MaxVMs < a.MinVMs || a.MaxVMs > MaxVMs {
		return a, hangar.Errorf(hangar.KindInvalid, "invalid max executors %d: allowed range is %d (min executors) to %d", a.MaxVMs, a.MinVMs, MaxVMs)
	}
	op := "update-" + ulid.Make().String()
	if err := s.store.BeginOperation(ctx, a.ID, op); err != nil {
		return a, err
	}
	defer s.store.EndOperation(context.WithoutCancel(ctx), a.ID, op) //nolint:errcheck // a failure leaves the lock for Launch to clear
	return a, s.store.UpdateApp(ctx, a.ID, a.MemoryMiB, a.MinVMs, a.MaxVMs, s.cfg.OrgLimits)
}

type deleteInput struct {
	Op     string
	AppID  string
	DropDB bool
}

// DeleteApp starts deleting the app: its executors and route, its versions,
// archives no other version uses, logs and files, and with dropDB its
// databases and role. The app reads DELETING until it is gone.
func (s *Service) DeleteApp(ctx context.Context, org, name string, dropDB bool) error {
	a, err := s.store.App(ctx, org, name)
	if err != nil {
		return err
	}
	in := deleteInput{Op: "delete-" + ulid.Make().String(), AppID: a.ID, DropDB: dropDB}
	if err := s.store.BeginOperation(ctx, a.ID, in.Op); err != nil {
		return err
	}
	err = s.store.SetAppStatus(ctx, a.ID, hangar.StatusDeleting)
	if err == nil {
		_, err = dbos.RunWorkflow(s.dbos, s.deleteWorkflow, in, dbos.WithWorkflowID(in.Op))
	}
	if err != nil {
		s.store.EndOperation(context.WithoutCancel(ctx), a.ID, in.Op) //nolint:errcheck
		return fmt.Errorf("start deleting %s: %w", a.Name, err)
	}
	return nil
}

// deleteWorkflow removes an app step by step; each step is idempotent, so a
// resumed workflow finishes the job.
func (s *Service) deleteWorkflow(ctx dbos.Context, in deleteInput) (string, error) {
	steps := []struct {
		name string
		run  func(context.Context, deleteInput) error
	}{
		{"stop", s.deleteStop},
		{"drop-databases", s.deleteDatabases},
		{"remove", s.deleteRecords},
	}
	for _, st := range steps {
		// Each step is idempotent. Retried, because the app's files stay
		// busy until its executors have stopped, which another replica
		// may still be doing (docs/replicas.md).
		if _, err := dbos.RunAsStep(ctx, func(ctx context.Context) (string, error) {
			return "", st.run(ctx, in)
		}, dbos.WithStepName(st.name), dbos.WithStepMaxRetries(8), dbos.WithStepBaseInterval(250*time.Millisecond)); err != nil {
			s.log.ErrorContext(ctx, "delete app", "app", in.AppID, "step", st.name, "err", err)
			return "", err
		}
	}
	return in.AppID, nil
}

// deleteStop withdraws the app's route and stops its executors.
func (s *Service) deleteStop(ctx context.Context, in deleteInput) error {
	a, err := s.store.AppByID(ctx, in.AppID)
	if err != nil {
		return err
	}
	s.fleet.StopApp(ctx, a)
	return nil
}

// deleteDatabases drops the app's databases and role when asked to, even
// while clients are connected.
func (s *Service) deleteDatabases(ctx context.Context, in deleteInput) error {
	if !in.DropDB {
		return nil
	}
	a, err := s.store.AppByID(ctx, in.AppID)
	if err != nil {
		return err
	}
	inst, err := s.store.DBInstanceByID(ctx, a.InstanceID)
	if err != nil {
		return err
	}
	return s.instances.DropAppDatabases(ctx, inst, a.AppDBName, a.DBRole)
}

// deleteRecords removes the app's records, files and unshared archives.
func (s *Service) deleteRecords(ctx context.Context, in deleteInput) error {
	a, err := s.store.AppByID(ctx, in.AppID)
	if hangar.KindOf(err) == hangar.KindNotFound {
		return nil // removed by an earlier run of this step
	}
	if err != nil {
		return err
	}
	// The app's row goes last: a resumed step finds it and starts over.
	if err := s.logs.DeleteApp(ctx, a.ID); err != nil {
		return err
	}
	if err := s.removeAppFiles(ctx, a.ID); err != nil {
		return err
	}
	if err := s.store.DeleteApp(ctx, a.ID); err != nil {
		return err
	}
	// A crash before this leaves the archives to the pass at Launch.
	if err := s.archives.GC(ctx); err != nil {
		s.log.ErrorContext(ctx, "collect archives", "app", a.ID, "err", err)
	}
	return nil
}
