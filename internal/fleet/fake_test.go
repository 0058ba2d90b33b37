package fleet

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

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
func versionDir(f *Fleet, appID, version string) string {
	return f.specs.(fakeSpecs).dir(appID, version)
}

// fakeRouter records routes and limits; requests in flight are as a test
// sets them.
type fakeRouter struct {
	mu       sync.Mutex
	routes   map[string][]string
	inflight map[string]int64
	limits   map[string]int
}

func (r *fakeRouter) Set(host string, upstreams []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.routes[host] = slices.Clone(upstreams)
}

func (r *fakeRouter) InFlight(addr string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[addr]
}

func (r *fakeRouter) SetLimit(addr string, limit int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.limits == nil {
		r.limits = map[string]int{}
	}
	if limit == 0 {
		delete(r.limits, addr)
	} else {
		r.limits[addr] = limit
	}
}

func (r *fakeRouter) setInFlight(addr string, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight == nil {
		r.inflight = map[string]int64{}
	}
	r.inflight[addr] = n
}

func (r *fakeRouter) limited() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.limits)
}

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
	drv  *runtimetest.Fake
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
		drv: runtimetest.NewFake(),
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
	cfg.Now = h.drv.Now // the fake's CPU time follows the samples
	h.s = New(cfg, h.st, h.inst, h.drv, h.rt, h.logs, fakeSpecs{dataDir: t.TempDir()})
	for _, v := range []string{"v1", "v2"} {
		dir := versionDir(h.s, app.ID, v)
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
		if left := h.drv.ByVersion(); len(left) > 0 {
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

// exit ends executor id's process with st.
func (h *harness) exit(t testing.TB, id string, st runtime.Status) {
	t.Helper()
	if err := h.drv.Exit(id, st); err != nil {
		t.Fatal(err)
	}
}

// hang makes executor id's requests hang.
func (h *harness) hang(t testing.TB, id string) {
	t.Helper()
	if err := h.drv.Hang(id); err != nil {
		t.Fatal(err)
	}
}
