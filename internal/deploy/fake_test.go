package deploy

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// fakeStore holds apps and instances in memory.
type fakeStore struct {
	mu   sync.Mutex
	apps map[string]hangar.App
	dbs  []hangar.DBInstance
}

var (
	_ AppLookup     = (*fakeStore)(nil)
	_ SysDB         = (*fakeInstances)(nil)
	_ VersionRunner = (*fakeFleet)(nil)
)

func (f *fakeStore) App(_ context.Context, org, name string) (hangar.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range f.apps {
		if a.Org == org && a.Name == name {
			return a, nil
		}
	}
	return hangar.App{}, hangar.AppNotFound(name)
}

func (f *fakeStore) DBInstanceByID(_ context.Context, id string) (hangar.DBInstance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, d := range f.dbs {
		if d.ID == id {
			return d, nil
		}
	}
	return hangar.DBInstance{}, hangar.DBNotFound(id)
}

// fakeInstances manages the workflows of every system database, by ID;
// its methods act on them and record their calls in wfCalls.
type fakeInstances struct {
	mu        sync.Mutex
	active    map[string]int // app version → PENDING or ENQUEUED
	workflows map[string]hangar.Workflow
	wfCalls   []string // "<method> <sysDB> <id>"
}

func (f *fakeInstances) ListWorkflows(_ context.Context, _ hangar.DBInstance, sysDB string, wf hangar.WorkflowFilter) ([]hangar.Workflow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.wfCalls = append(f.wfCalls, "list "+sysDB+" "+wf.Name)
	var out []hangar.Workflow
	for _, w := range f.workflows {
		if wf.Name == "" || w.Name == wf.Name {
			out = append(out, w)
		}
	}
	slices.SortFunc(out, func(a, b hangar.Workflow) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// workflow returns workflow id, recording the call to method; f.mu is held.
func (f *fakeInstances) workflow(method, sysDB, id string) (hangar.Workflow, error) {
	f.wfCalls = append(f.wfCalls, method+" "+sysDB+" "+id)
	w, ok := f.workflows[id]
	if !ok {
		return w, hangar.Errorf(hangar.KindNotFound, "workflow %s not found", id)
	}
	return w, nil
}

func (f *fakeInstances) GetWorkflow(_ context.Context, _ hangar.DBInstance, sysDB, id string) (hangar.Workflow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.workflow("get", sysDB, id)
}

func (f *fakeInstances) WorkflowSteps(_ context.Context, _ hangar.DBInstance, sysDB, id string) ([]hangar.WorkflowStep, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, err := f.workflow("steps", sysDB, id)
	return nil, err
}

func (f *fakeInstances) CancelWorkflow(_ context.Context, _ hangar.DBInstance, sysDB, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, err := f.workflow("cancel", sysDB, id)
	if err == nil {
		w.Status = hangar.WorkflowCancelled
		f.workflows[id] = w
	}
	return err
}

// ResumeWorkflow enqueues the workflow, an active one of its version.
func (f *fakeInstances) ResumeWorkflow(_ context.Context, _ hangar.DBInstance, sysDB, id string) (hangar.Workflow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, err := f.workflow("resume", sysDB, id)
	if err == nil {
		w.Status = hangar.WorkflowEnqueued
		f.workflows[id] = w
		f.active[w.ApplicationVersion]++
	}
	return w, err
}

// ForkWorkflow enqueues a copy "<id>-fork", an active one of its version;
// it records the call as "fork@<startStep>".
func (f *fakeInstances) ForkWorkflow(_ context.Context, _ hangar.DBInstance, sysDB, id string, startStep int) (hangar.Workflow, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w, err := f.workflow(fmt.Sprintf("fork@%d", startStep), sysDB, id)
	if err == nil {
		w.ID, w.Status, w.ForkedFrom = id+"-fork", hangar.WorkflowEnqueued, id
		f.workflows[w.ID] = w
		f.active[w.ApplicationVersion]++
	}
	return w, err
}

func (f *fakeInstances) workflowCalls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.wfCalls)
}

func (f *fakeInstances) set(fn func(f *fakeInstances)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// fakeFleet records the versions it is asked to run.
type fakeFleet struct {
	mu      sync.Mutex
	serving map[string]string // app ID → its serving app version
	ensured []string          // "<app ID>/<app version>" per EnsureVersionRuns of a version that does not serve
}

func (f *fakeFleet) EnsureVersionRuns(appID string, _ hangar.DBInstance, appVersion string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.serving[appID] != appVersion {
		f.ensured = append(f.ensured, appID+"/"+appVersion)
	}
}

func (f *fakeFleet) ensuredVersions() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.ensured)
}

// harness is a WorkflowAdmin on fakes, with one app.
type harness struct {
	s    *WorkflowAdmin
	st   *fakeStore
	inst *fakeInstances
	fl   *fakeFleet
	app  hangar.App
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	app := hangar.App{ID: "app1", Org: "org", Name: "app", InstanceID: "i1", AppDBName: "app", Language: hangar.LanguageNode,
		Status: hangar.StatusAvailable, MemoryMiB: 512, MinVMs: 1, MaxVMs: 1}
	h := &harness{
		st:   &fakeStore{apps: map[string]hangar.App{app.ID: app}},
		inst: &fakeInstances{active: map[string]int{}},
		fl:   &fakeFleet{serving: map[string]string{}},
		app:  app,
	}
	h.s = NewWorkflowAdmin(h.st, h.inst, h.fl)
	return h
}
