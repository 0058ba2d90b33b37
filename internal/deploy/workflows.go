package deploy

import (
	"context"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// SysDB manages the DBOS workflows of an app's system database sysDB, as
// the DBOS admin server did (current SDKs have none); *sysdb.DB satisfies
// it.
type SysDB interface {
	// ListWorkflows returns the workflows f selects.
	ListWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB string, f hangar.WorkflowFilter) ([]hangar.Workflow, error)
	// GetWorkflow returns one workflow with its input and output.
	// KindNotFound.
	GetWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string) (hangar.Workflow, error)
	// WorkflowSteps returns the steps a workflow recorded. KindNotFound.
	WorkflowSteps(ctx context.Context, inst hangar.DBInstance, sysDB, id string) ([]hangar.WorkflowStep, error)
	// CancelWorkflow cancels a workflow that has not ended. KindNotFound.
	CancelWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string) error
	// ResumeWorkflow enqueues a workflow that did not end with SUCCESS or
	// ERROR again, to run from its last recorded step, and returns it.
	// KindNotFound.
	ResumeWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string) (hangar.Workflow, error)
	// ForkWorkflow enqueues a copy of a workflow under a new ID that runs
	// from startStep, and returns it. KindNotFound, KindInvalid.
	ForkWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string, startStep int) (hangar.Workflow, error)
}

// AppLookup finds an app and its database instance; *store.DB satisfies
// it.
type AppLookup interface {
	// App returns org's app named name. KindNotFound.
	App(ctx context.Context, org, name string) (hangar.App, error)
	// DBInstanceByID returns the instance with id. KindNotFound.
	DBInstanceByID(ctx context.Context, id string) (hangar.DBInstance, error)
}

// VersionRunner runs the executors of app versions; *fleet.Fleet
// satisfies it.
type VersionRunner interface {
	// EnsureVersionRuns starts an executor of appVersion without route,
	// unless one runs, to run its workflows.
	EnsureVersionRuns(appID string, inst hangar.DBInstance, appVersion string)
}

// WorkflowAdmin lists and manages the workflows of apps: their own DBOS
// workflows, in their system databases.
type WorkflowAdmin struct {
	apps  AppLookup
	sys   SysDB
	fleet VersionRunner
}

// NewWorkflowAdmin returns a WorkflowAdmin.
func NewWorkflowAdmin(apps AppLookup, sys SysDB, fl VersionRunner) *WorkflowAdmin {
	return &WorkflowAdmin{apps: apps, sys: sys, fleet: fl}
}

// appSysDB returns org's app name with the database instance of its system
// database. KindNotFound; KindUnavailable while the instance is not
// available.
func (s *WorkflowAdmin) appSysDB(ctx context.Context, org, name string) (hangar.App, hangar.DBInstance, error) {
	a, err := s.apps.App(ctx, org, name)
	if err != nil {
		return a, hangar.DBInstance{}, err
	}
	inst, err := s.apps.DBInstanceByID(ctx, a.InstanceID)
	if err != nil {
		return a, inst, err
	}
	if inst.Status != hangar.DBAvailable {
		return a, inst, hangar.Errorf(hangar.KindUnavailable, "the database instance %s of application %s is %s: its workflows cannot be reached now", inst.Name, a.Name, inst.Status)
	}
	return a, inst, nil
}

// Workflows lists the workflows of org's app name that f selects.
// KindNotFound, KindUnavailable.
func (s *WorkflowAdmin) Workflows(ctx context.Context, org, name string, f hangar.WorkflowFilter) ([]hangar.Workflow, error) {
	a, inst, err := s.appSysDB(ctx, org, name)
	if err != nil {
		return nil, err
	}
	return s.sys.ListWorkflows(ctx, inst, a.SysDBName(), f)
}

// Workflow returns workflow id of org's app name with its input and
// output. KindNotFound, KindUnavailable.
func (s *WorkflowAdmin) Workflow(ctx context.Context, org, name, id string) (hangar.Workflow, error) {
	a, inst, err := s.appSysDB(ctx, org, name)
	if err != nil {
		return hangar.Workflow{}, err
	}
	return s.sys.GetWorkflow(ctx, inst, a.SysDBName(), id)
}

// WorkflowSteps returns the steps workflow id of org's app name recorded.
// KindNotFound, KindUnavailable.
func (s *WorkflowAdmin) WorkflowSteps(ctx context.Context, org, name, id string) ([]hangar.WorkflowStep, error) {
	a, inst, err := s.appSysDB(ctx, org, name)
	if err != nil {
		return nil, err
	}
	return s.sys.WorkflowSteps(ctx, inst, a.SysDBName(), id)
}

// CancelWorkflow cancels workflow id of org's app name: its executor stops
// it before its next step, and nothing recovers it. KindNotFound,
// KindUnavailable.
func (s *WorkflowAdmin) CancelWorkflow(ctx context.Context, org, name, id string) error {
	a, inst, err := s.appSysDB(ctx, org, name)
	if err != nil {
		return err
	}
	return s.sys.CancelWorkflow(ctx, inst, a.SysDBName(), id)
}

// ResumeWorkflow resumes workflow id of org's app name from its last
// recorded step, keeping its ID. KindNotFound, KindUnavailable.
func (s *WorkflowAdmin) ResumeWorkflow(ctx context.Context, org, name, id string) error {
	a, inst, err := s.appSysDB(ctx, org, name)
	if err != nil {
		return err
	}
	w, err := s.sys.ResumeWorkflow(ctx, inst, a.SysDBName(), id)
	if err != nil {
		return err
	}
	s.runsVersionOf(a, inst, w)
	return nil
}

// RestartWorkflow starts workflow id of org's app name again from the
// beginning, with its inputs, under a new ID, which it returns.
// KindNotFound, KindUnavailable.
func (s *WorkflowAdmin) RestartWorkflow(ctx context.Context, org, name, id string) (string, error) {
	return s.ForkWorkflow(ctx, org, name, id, 0)
}

// ForkWorkflow starts a copy of workflow id of org's app name under a new
// ID, which it returns: the copy keeps the steps the original recorded
// below startStep and runs from startStep on. KindNotFound,
// KindUnavailable; KindInvalid for a negative startStep.
func (s *WorkflowAdmin) ForkWorkflow(ctx context.Context, org, name, id string, startStep int) (string, error) {
	a, inst, err := s.appSysDB(ctx, org, name)
	if err != nil {
		return "", err
	}
	w, err := s.sys.ForkWorkflow(ctx, inst, a.SysDBName(), id, startStep)
	if err != nil {
		return "", err
	}
	s.runsVersionOf(a, inst, w)
	return w.ID, nil
}

// runsVersionOf makes sure an executor of w's application version runs to
// dequeue it: only those do, and the version may no longer serve.
func (s *WorkflowAdmin) runsVersionOf(a hangar.App, inst hangar.DBInstance, w hangar.Workflow) {
	if w.Status == hangar.WorkflowEnqueued && w.ApplicationVersion != "" {
		s.fleet.EnsureVersionRuns(a.ID, inst, w.ApplicationVersion)
	}
}
