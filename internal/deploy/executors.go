package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// executor is one running executor of an app version.
type executor struct {
	id         string
	app        string // app ID
	version    string
	appVersion string // its DBOS__APPVERSION
	inst       hangar.DBInstance
	sysDB      string // the app's DBOS system database
	addr       string
	log        io.WriteCloser
	stopped    chan struct{} // closed when a stop was requested
	stopOnce   sync.Once
}

// dbProxyPort is the port an executor reaches its database instance at, on
// its gateway address.
const dbProxyPort = 5432

// serve starts an executor of version for a, with its database on inst,
// waits until it answers HTTP, points the app's hostname at it, and retires
// the executors it replaces once they are drained.
func (s *Service) serve(ctx context.Context, a hangar.App, inst hangar.DBInstance, version, appVersion string) error {
	dir := s.versionDir(a.ID, version)
	cfg, err := build.LoadConfig(dir)
	if err != nil {
		return err
	}
	ex := &executor{
		id: "ex-" + strings.ToLower(ulid.Make().String()), app: a.ID, version: version, appVersion: appVersion,
		inst: inst, sysDB: a.SysDBName(), stopped: make(chan struct{}),
	}
	ex.log = s.logs.Writer(a.ID, sourceExecutor, version, ex.id)
	netw, err := s.driver.Prepare(ctx, ex.id)
	if err != nil {
		ex.log.Close()
		return fmt.Errorf("prepare executor: %w", err)
	}
	env := append(s.baseEnv(dir),
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
		env = append(env, k+"="+v)
	}
	started, err := s.driver.Start(ctx, runtime.Spec{
		ID: ex.id, App: a.Name, Version: version, Dir: dir,
		Command:   []string{"/bin/sh", "-c", startScript(cfg.Runtime.Start)},
		Env:       env,
		Port:      a.Language.Port(),
		MemoryMiB: a.MemoryMiB,
		Stdout:    ex.log,
		Forwards:  []runtime.Forward{{ListenPort: dbProxyPort, Target: fmt.Sprintf("127.0.0.1:%d", inst.Port)}},
	})
	if err != nil {
		s.stopExecutor(ctx, ex)
		return fmt.Errorf("start executor: %w", err)
	}
	ex.addr = started.Addr
	s.log.InfoContext(ctx, "executor started", "app", a.Name, "version", version, "executor", ex.id, "addr", ex.addr)
	if err := s.waitHealthy(ctx, ex); err != nil {
		s.stopExecutor(ctx, ex)
		return &hangar.Error{
			Kind:    hangar.KindUnavailable,
			Message: fmt.Sprintf("version %s did not become healthy: %v", version, err),
			Detail:  s.executorLogTail(ctx, a.ID, version),
		}
	}
	s.mu.Lock()
	old := s.executors[a.ID]
	s.executors[a.ID] = []*executor{ex}
	s.router.Set(a.Hostname(s.cfg.Domain), []string{ex.addr})
	s.mu.Unlock()
	go s.supervise(ex, a)
	for _, o := range old {
		go s.retire(o, appVersion)
	}
	return nil
}

// retire stops a replaced executor once it is drained: the router sends it
// nothing new, so it waits for its requests in flight to finish and, unless
// the new executors run the same app version, for the workflows of its
// version that are PENDING or ENQUEUED to complete (bounded by DrainTimeout).
func (s *Service) retire(ex *executor, newAppVersion string) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		busy := s.router.InFlight(ex.addr) > 0
		if !busy && ex.appVersion != newAppVersion {
			n, err := s.instances.ActiveWorkflows(ctx, ex.inst, ex.sysDB, ex.appVersion)
			if err != nil {
				s.log.WarnContext(ctx, "count workflows of a replaced executor", "executor", ex.id, "err", err)
			}
			busy = n > 0
		}
		if !busy {
			break
		}
		select {
		case <-ctx.Done():
			s.log.Warn("replaced executor not drained in time: stopping it", "executor", ex.id, "version", ex.version, "timeout", s.cfg.DrainTimeout)
			s.stopExecutor(context.Background(), ex)
			return
		case <-ex.stopped:
			return
		case <-tick.C:
		}
	}
	s.log.Info("retiring replaced executor", "executor", ex.id, "version", ex.version)
	s.stopExecutor(ctx, ex)
}

// baseEnv is the environment every executor starts from.
func (s *Service) baseEnv(home string) []string {
	return []string{
		"PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=" + home,
		"LANG=C.UTF-8",
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
// response, the process exits, or HealthTimeout passes.
func (s *Service) waitHealthy(ctx context.Context, ex *executor) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.HealthTimeout)
	defer cancel()
	exited := make(chan runtime.Status, 1)
	go func() {
		if st, err := s.driver.Wait(ctx, ex.id); err == nil {
			exited <- st
		}
	}()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+ex.addr+"/", nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			return nil
		}
		select {
		case st := <-exited:
			return fmt.Errorf("the app exited with code %d before it served HTTP", st.ExitCode)
		case <-ctx.Done():
			return fmt.Errorf("no HTTP answer on port %s within %s", ex.addr[strings.LastIndex(ex.addr, ":")+1:], s.cfg.HealthTimeout)
		case <-tick.C:
		}
	}
}

// supervise watches a serving executor: when it dies without being stopped,
// its route is withdrawn and the app reads UNAVAILABLE.
func (s *Service) supervise(ex *executor, a hangar.App) {
	st, err := s.driver.Wait(context.Background(), ex.id)
	select {
	case <-ex.stopped:
		return
	default:
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		s.log.Error("wait for executor", "app", a.Name, "executor", ex.id, "err", err)
	}
	s.log.Error("executor exited", "app", a.Name, "version", ex.version, "executor", ex.id, "code", st.ExitCode)
	s.mu.Lock()
	cur := s.executors[a.ID]
	if len(cur) == 1 && cur[0] == ex {
		delete(s.executors, a.ID)
		s.router.Set(a.Hostname(s.cfg.Domain), nil)
		_ = s.store.SetAppStatus(context.Background(), a.ID, hangar.StatusUnavailable)
	}
	s.mu.Unlock()
}

// serving reports whether the app has running executors.
func (s *Service) serving(appID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.executors[appID]) > 0
}

// stopExecutor stops ex (SIGTERM, then kill after StopGrace) and closes its
// log. It is idempotent.
func (s *Service) stopExecutor(ctx context.Context, ex *executor) {
	ex.stopOnce.Do(func() {
		close(ex.stopped)
		if err := s.driver.Stop(context.WithoutCancel(ctx), ex.id, s.cfg.StopGrace); err != nil {
			s.log.ErrorContext(ctx, "stop executor", "executor", ex.id, "err", err)
		}
		ex.log.Close()
	})
}

// executorLogTail is the end of a version's executor output.
func (s *Service) executorLogTail(ctx context.Context, appID, version string) string {
	t, err := s.logs.Tail(ctx, appID, sourceExecutor, version, 40)
	if err != nil {
		s.log.WarnContext(ctx, "read executor log", "app", appID, "version", version, "err", err)
	}
	return t
}
