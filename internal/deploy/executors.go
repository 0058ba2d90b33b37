package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// executor is one executor of an app version: serving in its app's pool,
// retiring, or draining the workflows of a version nothing else runs.
type executor struct {
	id         string
	app        string // app ID
	version    string
	appVersion string // its DBOS__APPVERSION
	inst       hangar.DBInstance
	sysDB      string // the app's DBOS system database
	memoryMiB  int
	addr       string
	log        io.WriteCloser
	drain      *drain // set for an executor started to drain a version

	stopped  chan struct{} // closed when Hangar asked it to stop
	stopOnce sync.Once
	exited   chan struct{} // closed when its process ended; status says how
	status   runtime.Status
	left     chan struct{} // closed when it left its pool (replaced or scaled down)
	leftOnce sync.Once
	diedOnce sync.Once // handling of its death runs once

	startedAt time.Time // when Hangar started it
	readyAt   time.Time // when it first answered HTTP; set under Service.mu

	// The previous CPU reading, for scaling; only the supervisor loop uses
	// them.
	cpu   time.Duration
	cpuAt time.Time
	// cpuUse is the vCPUs it used between the last two scaling samples; NaN
	// until two were taken. Guarded by Service.mu.
	cpuUse float64
}

// leave marks the executor out of its pool, which stops its supervisor.
func (ex *executor) leave() { ex.leftOnce.Do(func() { close(ex.left) }) }

// closed reports whether ch is closed.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// dbProxyPort is the port an executor reaches its database instance at, on
// its gateway address.
const dbProxyPort = 5432

// executorPrefix starts the ID of every executor Hangar runs, so that the
// system database tells Hangar's executors from others (a developer's
// machine running the app against its database).
const executorPrefix = "ex-"

// serve starts the pool of version for a: a.MinVMs executors (at least
// one, the others once the first answers), with its database on inst.
// Once all of them answer HTTP it points
// the app's hostname at them, hands them to the supervisor, and retires the
// executors of the pool it replaces once they are drained. When one fails
// to start, it stops them all and the previous pool keeps serving.
func (s *Service) serve(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error {
	p := newPool(a, inst, version, appVersion)
	exs := make([]*executor, p.min)
	errs := make([]error, p.min)
	start := func(i int) { exs[i], errs[i] = s.startExecutor(ctx, a, inst, version, appVersion) }
	// The first executor starts alone: the DBOS SDKs create or migrate the
	// system database's schema at launch, without a lock against other
	// executors doing the same at once.
	start(0)
	if errs[0] == nil {
		var wg sync.WaitGroup
		for i := 1; i < len(exs); i++ {
			wg.Go(func() { start(i) })
		}
		wg.Wait()
	}
	err := errors.Join(errs...)
	if err == nil && s.life.Err() != nil {
		err = errors.New("hangar is shutting down")
	}
	if err != nil {
		for _, ex := range exs {
			if ex != nil {
				s.stopExecutor(ctx, ex)
			}
		}
		for _, e := range errs {
			if e != nil {
				return e // the first, with its log tail
			}
		}
		return err
	}
	s.mu.Lock()
	old := s.fleet.pools[a.ID]
	s.fleet.pools[a.ID] = p
	p.executors = exs
	s.routeLocked(p)
	var retiring []*executor
	if old != nil {
		retiring = old.close()
	}
	s.mu.Unlock()
	for _, ex := range exs {
		s.spawn(func() { s.supervise(p, ex) })
	}
	for _, o := range retiring {
		s.spawn(func() { s.retire(o, appVersion, s.cfg.DrainTimeout) })
	}
	return nil
}

// routeLocked points the pool's hostname at its executors; s.mu is held.
func (s *Service) routeLocked(p *pool) {
	addrs := make([]string, len(p.executors))
	for i, ex := range p.executors {
		addrs[i] = ex.addr
	}
	s.router.Set(p.app.Hostname(s.cfg.Domain), addrs)
}

// startExecutor starts an executor of version for a, with its database on
// inst, and waits until it answers HTTP. When it fails, it stops what it
// started and returns the stopped executor, if it got that far, with the
// error: KindUnavailable, with the end of the version's executor output as
// detail, when the app did not become healthy.
func (s *Service) startExecutor(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) (*executor, error) {
	dir := s.versionDir(a.ID, version)
	cfg, err := build.LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	var secrets map[string]string
	if s.cfg.Secrets != nil {
		if secrets, err = s.cfg.Secrets.Secrets(ctx, a.ID); err != nil {
			return nil, fmt.Errorf("open secrets: %w", err)
		}
	}
	ex := &executor{
		id: executorPrefix + strings.ToLower(ulid.Make().String()), app: a.ID, version: version, appVersion: appVersion,
		inst: inst, sysDB: a.SysDBName(), memoryMiB: a.MemoryMiB, startedAt: s.now(), cpuUse: math.NaN(),
		stopped: make(chan struct{}), exited: make(chan struct{}), left: make(chan struct{}),
	}
	if ex.memoryMiB == 0 {
		ex.memoryMiB = hangar.DefaultMemoryMiB
	}
	ex.log = s.logs.Writer(a.ID, sourceExecutor, version, ex.id)
	// Known before it can own workflows: the sweep takes the workflows of
	// executors it does not know for the work of dead ones.
	s.mu.Lock()
	s.fleet.live[ex.id] = ex
	s.mu.Unlock()
	netw, err := s.driver.Prepare(ctx, ex.id)
	if err != nil {
		s.stopExecutor(ctx, ex)
		return ex, fmt.Errorf("prepare executor: %w", err)
	}
	home := dir
	if s.cfg.Images {
		home = runtime.AppDir
	}
	env := append(s.baseEnv(home),
		"DBOS__VMID="+ex.id,
		"DBOS__APPVERSION="+appVersion,
		"DBOS__APPID="+a.ID,
		"DBOS_APP_HOSTNAME=https://"+a.Hostname(s.cfg.Domain)+"/",
		"NODE_ENV=production",
	)
	env = append(env, dbEnv(a, netw.Gateway, dbProxyPort)...)
	if cloudModeWorks(dir, a.Language) {
		env = append(env, "DBOS__CLOUD=true")
	}
	for k, v := range cfg.Env {
		if _, ok := secrets[k]; !ok {
			env = append(env, k+"="+v)
		}
	}
	// Secret names never collide with the variables above: accounts
	// refuses DBOS_*, PG*, PATH and HOME. They win over the config's env.
	for _, k := range slices.Sorted(maps.Keys(secrets)) {
		env = append(env, k+"="+secrets[k])
	}
	started, err := s.driver.Start(ctx, runtime.Spec{
		ID: ex.id, Org: a.Org, App: a.Name, Version: version, Dir: dir,
		Command:   []string{"/bin/sh", "-c", startScript(cfg.Runtime.Start)},
		Env:       env,
		Port:      a.Language.Port(),
		MemoryMiB: a.MemoryMiB,
		Stdout:    ex.log,
		Forwards:  []runtime.Forward{{ListenPort: dbProxyPort, Target: DBForwardTarget(inst)}},
		Image:     runtime.Image{AppID: a.ID, Layer: build.SetupLayer(cfg)},
	})
	if err != nil {
		s.stopExecutor(ctx, ex)
		return ex, fmt.Errorf("start executor: %w", err)
	}
	ex.addr = started.Addr
	if !s.spawn(func() { s.watch(ex) }) {
		s.stopExecutor(ctx, ex)
		return ex, errors.New("hangar is shutting down")
	}
	s.log.InfoContext(ctx, "executor started", "app", a.Name, "version", version, "executor", ex.id, "addr", ex.addr)
	if err := s.waitHealthy(ctx, ex); err != nil {
		s.stopExecutor(ctx, ex)
		return ex, &hangar.Error{
			Kind:    hangar.KindUnavailable,
			Message: fmt.Sprintf("version %s did not become healthy: %v", version, err),
			Detail:  s.executorLogTail(ctx, a.ID, version),
		}
	}
	s.mu.Lock() // Executors reads it
	ex.readyAt = s.now()
	s.mu.Unlock()
	return ex, nil
}

// watch waits for the executor's process to end and records how.
func (s *Service) watch(ex *executor) {
	st, err := s.driver.Wait(s.life, ex.id)
	if s.life.Err() != nil {
		return // shutting down: Shutdown stops every executor
	}
	if err != nil {
		// Wait knows the executor no more: it was stopped.
		st = runtime.Status{ExitCode: -1, Err: err}
	}
	ex.status = st
	close(ex.exited)
}

// retire stops an executor that no longer receives requests once it is
// drained: it waits for its requests in flight to finish and, unless
// newAppVersion is its own app version, for the workflows of its version
// that are PENDING or ENQUEUED to complete, up to timeout (0: no limit).
// Then it stops it and releases its unfinished work (see release). An
// executor that dies meanwhile is released at once.
func (s *Service) retire(ex *executor, newAppVersion string, timeout time.Duration) {
	ctx := s.life
	var deadline <-chan time.Time
	if timeout > 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(s.cfg.drainPoll)
	defer tick.Stop()
	for {
		busy := s.router.InFlight(ex.addr) > 0
		if !busy && ex.appVersion != newAppVersion {
			n, err := s.instances.ActiveWorkflows(ctx, ex.inst, ex.sysDB, ex.appVersion)
			if err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "count workflows of a retiring executor", "app", ex.app, "executor", ex.id, "err", err)
			}
			busy = n > 0 || err != nil
		}
		if !busy {
			break
		}
		select {
		case <-ctx.Done():
			return // Shutdown stops it
		case <-ex.stopped:
			return
		case <-ex.exited:
			s.died(ex, death{status: ex.status}, nil)
			return
		case <-deadline:
			s.log.Warn("retiring executor not drained in time: stopping it", "app", ex.app, "executor", ex.id, "version", ex.version, "timeout", timeout)
			s.stopExecutor(ctx, ex)
			s.release(ex)
			return
		case <-tick.C:
		}
	}
	s.log.Info("retiring executor", "app", ex.app, "executor", ex.id, "version", ex.version)
	s.stopExecutor(ctx, ex)
	s.release(ex)
}

// baseEnv is the environment every executor starts from.
func (s *Service) baseEnv(home string) []string {
	return []string{
		"PATH=/opt/hangar/node/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"LANG=C.UTF-8",
		// Node brings its own CA list: make it trust the system's too,
		// where the operator's own CAs are.
		"NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt",
	}
}

// cloudModeWorks reports whether the app can run with DBOS__CLOUD=true. The
// TypeScript SDK since 5.x loads @dbos-inc/dbos-enterprise (Conductor) at
// launch in cloud mode and fails without it, so Hangar leaves cloud mode off
// for such apps; they still read DBOS__APPVERSION and DBOS__VMID.
func cloudModeWorks(dir string, lang hangar.Language) bool {
	if lang != hangar.LanguageNode {
		return true
	}
	nm := filepath.Join(dir, "node_modules", "@dbos-inc")
	if _, err := os.Stat(filepath.Join(nm, "dbos-sdk", "dist", "src", "enterprise.js")); err != nil {
		return true
	}
	_, err := os.Stat(filepath.Join(nm, "dbos-enterprise", "package.json"))
	return err == nil
}

// startScript runs the start commands in order in one shell; the last one
// replaces the shell so that signals reach the app directly.
func startScript(cmds []string) string {
	if len(cmds) == 0 {
		return "exit 1"
	}
	last := len(cmds) - 1
	parts := append([]string{}, cmds[:last]...)
	parts = append(parts, "exec "+cmds[last])
	return strings.Join(parts, " && ")
}

// waitHealthy polls the executor's HTTP port until it answers any HTTP
// response, the process exits, it is stopped, or HealthTimeout passes.
func (s *Service) waitHealthy(ctx context.Context, ex *executor) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if probe(ctx, client, ex.addr) {
			return nil
		}
		select {
		case <-ex.exited:
			if ex.status.OOMKilled {
				return fmt.Errorf("the app ran out of memory (limit %d MiB) before it served HTTP", ex.memoryMiB)
			}
			return fmt.Errorf("the app exited with code %d before it served HTTP", ex.status.ExitCode)
		case <-ex.stopped:
			return errors.New("the executor was stopped before it served HTTP")
		case <-ctx.Done():
			return fmt.Errorf("no HTTP answer on port %s within %s", ex.addr[strings.LastIndex(ex.addr, ":")+1:], s.cfg.HealthTimeout)
		case <-tick.C:
		}
	}
}

// probe reports whether the app at addr answers HTTP, whatever the status.
func probe(ctx context.Context, client *http.Client, addr string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return true
}

// serving reports whether the app has executors that serve it.
func (s *Service) serving(appID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.fleet.pools[appID]
	return p != nil && len(p.executors) > 0
}

// stopExecutor stops ex (SIGTERM, then kill after StopGrace), releases what
// the driver allocated for it and closes its log. It is idempotent.
func (s *Service) stopExecutor(ctx context.Context, ex *executor) {
	ex.stopOnce.Do(func() {
		close(ex.stopped)
		if err := s.driver.Stop(context.WithoutCancel(ctx), ex.id, s.cfg.StopGrace); err != nil {
			s.log.ErrorContext(ctx, "stop executor", "app", ex.app, "executor", ex.id, "err", err)
		}
		ex.log.Close()
		// Forgotten only once its process is gone: from now on, its
		// PENDING workflows are a dead executor's.
		s.mu.Lock()
		delete(s.fleet.live, ex.id)
		s.mu.Unlock()
	})
}

// stopApp withdraws the app's route and stops all its executors (serving,
// starting, retiring, draining); none is started for it afterwards. The
// app is being deleted.
func (s *Service) stopApp(ctx context.Context, a hangar.App) {
	s.mu.Lock()
	s.fleet.deleted[a.ID] = true
	delete(s.fleet.events, a.ID)
	for key, d := range s.fleet.drains {
		if d.appID == a.ID {
			delete(s.fleet.drains, key)
		}
	}
	if p := s.fleet.pools[a.ID]; p != nil {
		p.close()
		delete(s.fleet.pools, a.ID)
	}
	s.router.Set(a.Hostname(s.cfg.Domain), nil)
	var exs []*executor
	for _, ex := range s.fleet.live {
		if ex.app == a.ID {
			exs = append(exs, ex)
		}
	}
	s.mu.Unlock()
	s.stopAll(ctx, exs)
}

// stopExecutors stops supervising and then stops every executor; Shutdown
// calls it. Workflows the executors leave PENDING are recovered by the
// next Hangar's sweep.
func (s *Service) stopExecutors(ctx context.Context) {
	s.mu.Lock()
	s.closing = true
	for id, p := range s.fleet.pools {
		p.close()
		delete(s.fleet.pools, id)
	}
	s.mu.Unlock()
	s.stopLife()
	s.wg.Wait()
	s.mu.Lock()
	exs := make([]*executor, 0, len(s.fleet.live))
	for _, ex := range s.fleet.live {
		exs = append(exs, ex)
	}
	s.mu.Unlock()
	s.stopAll(ctx, exs)
}

// stopAll stops executors in parallel.
func (s *Service) stopAll(ctx context.Context, exs []*executor) {
	var wg sync.WaitGroup
	for _, ex := range exs {
		wg.Go(func() { s.stopExecutor(ctx, ex) })
	}
	wg.Wait()
}

// spawn runs f in a goroutine that Shutdown waits for, unless Shutdown
// has begun; it reports whether f runs.
func (s *Service) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

// executorLogTail is the end of a version's executor output.
func (s *Service) executorLogTail(ctx context.Context, appID, version string) string {
	t, err := s.logs.Tail(ctx, appID, sourceExecutor, version, 40)
	if err != nil {
		s.log.WarnContext(ctx, "read executor log", "app", appID, "version", version, "err", err)
	}
	return t
}

// OrgRenamed serves the apps of the org renamed from oldName to newName at
// their new hostnames (<newName>-<app>.<domain>) and stops serving the old
// ones; executors started from now on get the new DBOS_APP_HOSTNAME.
// accounts calls it after a rename.
func (s *Service) OrgRenamed(ctx context.Context, oldName, newName string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.fleet.pools {
		if p.app.Org != oldName {
			continue
		}
		s.router.Set(p.app.Hostname(s.cfg.Domain), nil)
		p.app.Org = newName
		s.routeLocked(p)
	}
	return nil
}
