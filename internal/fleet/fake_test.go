package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// fakeDriver runs executors as in-process HTTP servers that answer with
// their ID. Tests make them exit, crash at start, hang or burn CPU.
type fakeDriver struct {
	mu      sync.Mutex
	exs     map[string]*fakeExec
	started []runtime.Spec
	crash   *runtime.Status // new executors exit so right after they start
	cpu     float64         // vCPUs each executor uses
	stats   error           // what Stats returns instead of stats
}

var _ runtime.Driver = (*fakeDriver)(nil)

type fakeExec struct {
	spec   runtime.Spec
	srv    *httptest.Server
	addr   string
	hung   atomic.Bool
	done   chan struct{}
	status runtime.Status
	once   sync.Once

	// CPU accounting, under fakeDriver.mu.
	cpu    time.Duration
	cpuAt  time.Time
	cpuUse float64
}

func newFakeDriver() *fakeDriver { return &fakeDriver{exs: map[string]*fakeExec{}} }

func (d *fakeDriver) Prepare(_ context.Context, id string) (runtime.Network, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exs[id] != nil {
		return runtime.Network{}, hangar.Errorf(hangar.KindConflict, "executor %s is already prepared", id)
	}
	d.exs[id] = &fakeExec{done: make(chan struct{})}
	return runtime.Network{Gateway: "127.0.0.1", Address: "127.0.0.1"}, nil
}

func (d *fakeDriver) Start(_ context.Context, spec runtime.Spec) (*runtime.Executor, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.exs[spec.ID]
	if e == nil {
		return nil, hangar.Errorf(hangar.KindNotFound, "executor %s is not prepared", spec.ID)
	}
	e.spec, e.cpuAt, e.cpuUse = spec, time.Now(), d.cpu
	d.started = append(d.started, spec)
	if d.crash != nil {
		e.addr = closedAddr()
		st := *d.crash
		go func() {
			time.Sleep(5 * time.Millisecond)
			e.exit(st)
		}()
	} else {
		e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if e.hung.Load() {
				select {
				case <-r.Context().Done():
				case <-e.done:
				}
				return
			}
			io.WriteString(w, spec.ID)
		}))
		e.addr = e.srv.Listener.Addr().String()
	}
	return &runtime.Executor{ID: spec.ID, Addr: e.addr, Gateway: "127.0.0.1", PID: 1}, nil
}

// exit ends the executor's process with st.
func (e *fakeExec) exit(st runtime.Status) {
	e.once.Do(func() {
		e.status = st
		close(e.done)
		if e.srv != nil {
			e.srv.CloseClientConnections()
			e.srv.Close()
		}
	})
}

func (d *fakeDriver) Stop(_ context.Context, id string, _ time.Duration) error {
	d.mu.Lock()
	e := d.exs[id]
	delete(d.exs, id)
	d.mu.Unlock()
	if e != nil {
		e.exit(runtime.Status{ExitCode: 143})
	}
	return nil
}

func (d *fakeDriver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	d.mu.Lock()
	e := d.exs[id]
	d.mu.Unlock()
	if e == nil {
		return runtime.Status{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	select {
	case <-e.done:
		return e.status, nil
	case <-ctx.Done():
		return runtime.Status{}, ctx.Err()
	}
}

func (d *fakeDriver) Inspect(_ context.Context, id string) (runtime.Info, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.exs[id]
	if e == nil {
		return runtime.Info{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	return runtime.Info{ID: id, State: runtime.StateRunning, Addr: e.addr}, nil
}

func (d *fakeDriver) Stats(_ context.Context, id string) (runtime.Stats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stats != nil {
		return runtime.Stats{}, d.stats
	}
	e := d.exs[id]
	if e == nil {
		return runtime.Stats{}, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	}
	now := time.Now()
	e.cpu += time.Duration(e.cpuUse * float64(now.Sub(e.cpuAt)))
	e.cpuAt = now
	return runtime.Stats{CPU: e.cpu, MemoryLimitBytes: uint64(e.spec.MemoryMiB) << 20}, nil
}

// Exec runs spec.Args on the host, in the executor's folder with its
// environment.
func (d *fakeDriver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	d.mu.Lock()
	e := d.exs[id]
	d.mu.Unlock()
	switch {
	case e == nil:
		return -1, hangar.Errorf(hangar.KindNotFound, "executor %s not found", id)
	case e.spec.ID == "" || closed(e.done):
		return -1, hangar.Errorf(hangar.KindConflict, "executor %s is not running", id)
	}
	cmd := exec.CommandContext(ctx, spec.Args[0], spec.Args[1:]...)
	cmd.Dir, cmd.Env = e.spec.Dir, e.spec.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = spec.Stdin, spec.Stdout, spec.Stderr
	// Killed with what it started, as drivers do.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if ctx.Err() != nil {
		return -1, ctx.Err()
	}
	if _, ok := errors.AsType[*exec.ExitError](err); err != nil && !ok {
		return -1, err
	}
	return cmd.ProcessState.ExitCode(), nil
}

// setCPU makes every executor, running and future, use vcpus.
func (d *fakeDriver) setCPU(vcpus float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	for _, e := range d.exs {
		e.cpu += time.Duration(e.cpuUse * float64(now.Sub(e.cpuAt)))
		e.cpuAt, e.cpuUse = now, vcpus
	}
	d.cpu = vcpus
}

func (d *fakeDriver) setCrash(st *runtime.Status) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.crash = st
}

func (d *fakeDriver) setStatsErr(err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stats = err
}

// exec returns the running executor id.
func (d *fakeDriver) exec(t testing.TB, id string) *fakeExec {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.exs[id]
	if e == nil {
		t.Fatalf("executor %s is not running", id)
	}
	return e
}

// running lists the executors not stopped, by version.
func (d *fakeDriver) running() map[string][]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string][]string{}
	for id, e := range d.exs {
		out[e.spec.Version] = append(out[e.spec.Version], id)
	}
	return out
}

func (d *fakeDriver) startedCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.started)
}

// closedAddr returns an address nothing listens on.
func closedAddr() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// fakeStore holds apps and versions in memory.
type fakeStore struct {
	mu       sync.Mutex
	apps     map[string]hangar.App
	versions map[string][]hangar.Version // newest first
}

var _ Store = (*fakeStore)(nil)

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

func (f *fakeStore) AppByID(_ context.Context, id string) (hangar.App, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[id]
	if !ok {
		return a, hangar.Errorf(hangar.KindNotFound, "app %s not found", id)
	}
	return a, nil
}

func (f *fakeStore) SetAppStatus(_ context.Context, id string, st hangar.AppStatus) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	a := f.apps[id]
	a.Status = st
	f.apps[id] = a
	return nil
}

func (f *fakeStore) Versions(_ context.Context, appID string) ([]hangar.Version, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.versions[appID]), nil
}

func (f *fakeStore) status(id string) hangar.AppStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.apps[id].Status
}

// fakeInstances answers the system database queries from fields tests set.
type fakeInstances struct {
	mu        sync.Mutex
	active    map[string]int // app version → PENDING or ENQUEUED
	enqueued  int
	pending   map[string][]string
	queued    []string // app versions with ENQUEUED workflows
	recovered []string // "<app version>:<ids>" per RecoverWorkflows call that recovered some
}

var _ Workflows = (*fakeInstances)(nil)

func (f *fakeInstances) ActiveWorkflows(_ context.Context, _ hangar.DBInstance, _, appVersion string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.active[appVersion], nil
}

func (f *fakeInstances) EnqueuedWorkflows(context.Context, hangar.DBInstance, string, string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.enqueued, nil
}

func (f *fakeInstances) PendingExecutors(context.Context, hangar.DBInstance, string, string) (map[string][]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending, nil
}

func (f *fakeInstances) QueuedVersions(context.Context, hangar.DBInstance, string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.queued, nil
}

// RecoverWorkflows records the call and reports one workflow per executor.
func (f *fakeInstances) RecoverWorkflows(_ context.Context, _ hangar.DBInstance, _ string, ids []string, appVersion string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recovered = append(f.recovered, appVersion+":"+strings.Join(ids, ","))
	return len(ids), nil
}

func (f *fakeInstances) set(fn func(f *fakeInstances)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeInstances) recoveries() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.recovered)
}

var _ LogSink = (*fakeLogs)(nil)

// fakeSpecs runs every version from DataDir/<app ID>/<version>.
type fakeSpecs struct{ dataDir string }

var _ Specs = fakeSpecs{}

func (sp fakeSpecs) dir(appID, version string) string {
	return filepath.Join(sp.dataDir, appID, version)
}

func (sp fakeSpecs) Spec(_ context.Context, a hangar.App, _ hangar.DBInstance, version, appVersion, id string, _ runtime.Network) (runtime.Spec, error) {
	return runtime.Spec{
		ID: id, App: a.Name, Version: version, Dir: sp.dir(a.ID, version),
		Command: []string{"/bin/sh", "-c", "exec node app.mjs"},
		Env:     []string{"DBOS__VMID=" + id, "DBOS__APPVERSION=" + appVersion, "DBOS_APP_HOSTNAME=https://" + a.Hostname("test") + "/"},
		Port:    a.Language.Port(), MemoryMiB: a.MemoryMiB,
	}, nil
}

func (sp fakeSpecs) Stored(appID, version string) bool {
	_, err := os.Stat(sp.dir(appID, version))
	return err == nil
}

// versionDir is where the harness's versions run from.
func (f *Fleet) versionDir(appID, version string) string {
	return f.specs.(fakeSpecs).dir(appID, version)
}

// fakeRouter records routes.
type fakeRouter struct {
	mu     sync.Mutex
	routes map[string][]string
}

func (r *fakeRouter) Set(host string, upstreams []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[host] = slices.Clone(upstreams)
}

func (r *fakeRouter) InFlight(string) int64 { return 0 }

func (r *fakeRouter) get(host string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.routes[host])
}

// fakeLogs keeps every line written.
type fakeLogs struct {
	mu sync.Mutex
	b  strings.Builder
}

type fakeLogWriter struct {
	l      *fakeLogs
	prefix string
}

func (w fakeLogWriter) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	for _, line := range strings.SplitAfter(string(p), "\n") {
		if line != "" {
			w.l.b.WriteString(w.prefix + line)
		}
	}
	return len(p), nil
}

func (w fakeLogWriter) Close() error { return nil }

func (l *fakeLogs) Writer(_, source, version, executor string) io.WriteCloser {
	return fakeLogWriter{l: l, prefix: fmt.Sprintf("[%s/%s@%s] ", source, executor, version)}
}

func (l *fakeLogs) Tail(context.Context, string, string, string, int) (string, error) {
	return "", nil
}

func (l *fakeLogs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// harness is a Fleet on fakes, with one app.
type harness struct {
	s    *Fleet
	drv  *fakeDriver
	st   *fakeStore
	inst *fakeInstances
	rt   *fakeRouter
	logs *fakeLogs
	app  hangar.App
	db   hangar.DBInstance
}

const testHost = "org-app.test"

// newHarness returns a Service on fakes with short supervisor timings. Its
// app has minVMs to maxVMs executors and versions v1 and v2 (app versions
// av1 and av2) on disk. Health checks run only when a test shortens
// cfg.HealthInterval before it serves; the supervisor loop runs only when
// loop is true.
func newHarness(t *testing.T, minVMs, maxVMs int, loop bool) *harness {
	t.Helper()
	cfg := Config{
		Domain: "test", StopGrace: time.Second, HealthTimeout: 5 * time.Second,
		HealthInterval: time.Hour, RestartBackoff: 10 * time.Millisecond, MaxRestartBackoff: 80 * time.Millisecond,
		ScaleInterval: 20 * time.Millisecond, DrainPoll: 5 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	}
	app := hangar.App{ID: "app1", Org: "org", Name: "app", InstanceID: "i1", AppDBName: "app", Language: hangar.LanguageNode,
		Status: hangar.StatusAvailable, MemoryMiB: 512, MinVMs: minVMs, MaxVMs: maxVMs}
	h := &harness{
		drv: newFakeDriver(),
		st: &fakeStore{apps: map[string]hangar.App{app.ID: app}, versions: map[string][]hangar.Version{app.ID: {
			{ID: "v2", AppID: app.ID, AppVersion: "av2", Status: hangar.VersionActive},
			{ID: "v1", AppID: app.ID, AppVersion: "av1", Status: hangar.VersionRetired},
		}}},
		inst: &fakeInstances{active: map[string]int{}},
		rt:   &fakeRouter{routes: map[string][]string{}},
		logs: &fakeLogs{},
		app:  app,
		db:   hangar.DBInstance{ID: "i1", Name: "db", Port: 5432},
	}
	h.s = New(cfg, h.st, h.inst, h.drv, h.rt, h.logs, fakeSpecs{dataDir: t.TempDir()})
	for _, v := range []string{"v1", "v2"} {
		dir := h.s.versionDir(app.ID, v)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "dbos-config.yaml"), []byte("name: app\nruntimeConfig:\n  start:\n    - node app.mjs\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if loop {
		h.s.Start()
	}
	t.Cleanup(func() {
		h.s.Close(context.Background())
		if left := h.drv.running(); len(left) > 0 {
			t.Errorf("executors left running after Shutdown: %v", left)
		}
	})
	return h
}

// serve serves version (app version "a"+version) and returns its
// executors' IDs.
func (h *harness) serve(t *testing.T, version string) []string {
	t.Helper()
	if err := h.s.Serve(t.Context(), h.app, h.db, version, "a"+version); err != nil {
		t.Fatal(err)
	}
	return h.routed(t)
}

// routed returns the IDs of the executors the app's route points at; ""
// for one that does not answer.
func (h *harness) routed(t testing.TB) []string {
	t.Helper()
	var ids []string
	for _, addr := range h.rt.get(testHost) {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			ids = append(ids, "")
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		ids = append(ids, string(b))
	}
	return ids
}

// eventually polls cond until it holds, failing the test after 10 s.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}
