// Package server is Hangar's composition root: New builds every component
// of `hangar serve` from one configuration (metadata database, stores,
// executor driver, database instances, the deploy service, API, console,
// router, certificates and the HTTPS port), and Run serves until its
// context ends, then stops them all in order. It is the only package that
// wires: only cmd/* and internal/hangartest import it.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/dbos-inc/dbos-transact-golang/dbos"
	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/api"
	"github.com/hangar-oss/hangar/internal/archive"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/console"
	"github.com/hangar-oss/hangar/internal/databases"
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/frontdoor"
	"github.com/hangar-oss/hangar/internal/history"
	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/logs"
	"github.com/hangar-oss/hangar/internal/metrics"
	"github.com/hangar-oss/hangar/internal/replica"
	"github.com/hangar-oss/hangar/internal/router"
	"github.com/hangar-oss/hangar/internal/secretbox"
	"github.com/hangar-oss/hangar/internal/store"
	"github.com/hangar-oss/hangar/internal/sysdb"
	"github.com/hangar-oss/hangar/internal/tlsca"
)

// Config is the server's configuration: `hangar serve`'s, validated by the
// caller, plus what an in-process server (hangartest) replaces.
type Config struct {
	config.Config
	// Logger receives the server's logs. Default text on os.Stderr at
	// level info.
	Logger *slog.Logger
	// Stdout receives the banner: the URL served, the CA to trust.
	// Default io.Discard.
	Stdout io.Writer
	// Listener, when set, is the HTTPS port, instead of one New opens on
	// Config.Listen: a caller that listens on :0 first knows the port it
	// must put in Config.Domain. Run closes it. Default nil.
	Listener net.Listener
	// Driver, when set, runs executors instead of the driver Config.Driver
	// names (a fake, in tests). Default nil.
	Driver Driver
	// UnsandboxedDatabases runs managed database instances on loopback,
	// without their runc sandbox, even as root, as they always run when
	// Hangar is not root. Default false: sandboxed as root.
	UnsandboxedDatabases bool
	// Now, when set, is the clock of access tokens, device logins,
	// password sign-ins and the API (tests). Default time.Now.
	Now func() time.Time
	// Hasher, when set, checks passwords instead of the hasher that
	// Config.PasswordHashes bounds (tests count its checks). Default nil.
	Hasher accounts.Hasher
}

// Server is a whole Hangar server. Create it with New, then call Run once.
type Server struct {
	cfg     Config
	log     *slog.Logger
	ca      *tlsca.CA
	local   bool // clients must trust the local CA
	ln      net.Listener
	servers []served
	// closers release what New built, in reverse order.
	closers []func(context.Context) error
	// fatal ends Run: a replica another one took over as dead.
	fatal chan error
}

// served is an HTTP server and how it serves.
type served struct {
	srv   interface{ Shutdown(context.Context) error }
	serve func() error
}

// parts are what New's steps build and hand on to the next.
type parts struct {
	metadata  Metadata
	st        *store.DB
	box       *secretbox.Box
	tokens    *auth.Issuer
	drv       Driver
	disks     *image.Disks // nil with the development driver
	instances *dbinstance.Manager
	sys       *sysdb.DB
	rt        *router.Router
	met       *metrics.Metrics
	logs      *logs.Store
	hist      *history.Store
	requests  *history.Recorder
	events    *history.Events
	fl        *fleet.Fleet
	svc       *deploy.Service
	archives  *archive.Store
	dbs       *databases.Service
	wfs       *deploy.WorkflowAdmin
	reg       *replica.Registry // nil without --replica-id
	routes    *replica.Routes   // nil without --replica-id
}

// New builds a server: it starts (or adopts) the metadata database, the
// managed database instances and the executors of every serving app, and
// DBOS, which resumes interrupted workflows; it opens the listeners but
// serves nothing until Run. The deploy workflows outlive ctx (a signal must
// not cancel them durably: Run's shutdown stops DBOS, and a restarted
// server resumes them).
func New(ctx context.Context, cfg Config) (_ *Server, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if cfg.Stdout == nil {
		cfg.Stdout = io.Discard
	}
	s := &Server{cfg: cfg, log: cfg.Logger, fatal: make(chan error, 1)}
	defer func() {
		if err != nil {
			if cfg.Listener != nil {
				cfg.Listener.Close()
			}
			// Shutdown work must run even though ctx is done by then.
			err = errors.Join(err, s.close(context.WithoutCancel(ctx)))
		}
	}()
	var p parts
	for _, step := range []func(context.Context, *parts) error{
		s.openStores, s.joinReplicas, s.openRuntime, s.startServices, s.startSampler,
	} {
		if err := step(ctx, &p); err != nil {
			return nil, err
		}
	}
	handler, err := s.handler(&p)
	if err != nil {
		return nil, err
	}
	return s, s.listen(handler, p.rt, s.hostPolicy(&p), p.met.Handler())
}

// openStores opens the metadata database, the sealing key, the store, the
// token keys and the local CA.
func (s *Server) openStores(ctx context.Context, p *parts) error {
	cfg, log := s.cfg, s.log
	mdb, started, err := OpenMetadata(ctx, cfg.Config, true, log)
	if err != nil {
		return err
	}
	p.metadata = mdb
	if started {
		s.onClose(func(ctx context.Context) error {
			if err := mdb.Stop(ctx); err != nil {
				return fmt.Errorf("stop metadata PostgreSQL: %w", err)
			}
			return nil
		})
	}
	// App secrets and database passwords are sealed with a key kept
	// outside the metadata database, created (0600) on first start.
	if p.box, err = secretbox.Open(filepath.Join(cfg.DataDir, "secrets.key")); err != nil {
		return err
	}
	if p.st, err = store.Open(ctx, mdb.URL, store.WithSealer(p.box)); err != nil {
		return err
	}
	s.onClose(func(context.Context) error { p.st.Close(); return nil })
	if p.tokens, err = auth.Open(ctx, p.st, auth.Config{Logger: log, Now: s.cfg.Now}); err != nil {
		return err
	}
	s.goRun(ctx, p.tokens.Run)
	s.ca, err = tlsca.LoadOrCreate(cfg.DataDir)
	return err
}

// openRuntime builds the executor driver (cleaning up after an earlier
// run), the database instances, the router, and what counts and logs.
func (s *Server) openRuntime(ctx context.Context, p *parts) error {
	cfg, log := s.cfg, s.log
	var err error
	if p.drv = cfg.Driver; p.drv == nil {
		// Disks go with the server's own driver: an injected one (tests)
		// keeps plain folders.
		p.disks = appDisks(ctx, cfg.Config, log)
		if p.drv, err = newDriver(ctx, cfg.Config, p.disks, s.dbCA(), log); err != nil {
			return err
		}
	}
	if err := p.drv.Cleanup(ctx); err != nil {
		return fmt.Errorf("clean up executors of an earlier run: %w", err)
	}
	p.instances = dbinstance.New(dbinstance.Config{
		Dir: filepath.Join(cfg.DataDir, "instances"), Settings: cfg.PGSettings,
		Sandbox: s.dbSandbox(),
		Logger:  log.With("component", "dbinstance"),
	})
	p.sys = sysdb.New(p.instances)
	// Counting is cheap, so it always runs; --metrics-listen only decides
	// whether the metrics are served.
	p.met = metrics.New(log.With("component", "metrics"))
	p.requests, p.events = history.NewRecorder(), history.NewEvents()
	p.rt = router.New(log.With("component", "router"), p.met, p.requests)
	p.logs, err = logs.Open(ctx, p.st.Pool(), logs.Config{
		MaxAge: cfg.LogMaxAge, MaxLinesPerApp: cfg.LogMaxLines, MaxBytesPerApp: cfg.LogMaxBytes,
		Logger: log.With("component", "logs"),
	})
	if err != nil {
		return err
	}
	s.goRun(ctx, p.logs.Run)
	p.hist, err = history.Open(ctx, p.st.Pool())
	return err
}

// startServices creates the DBOS context, once, and the fleet, deploy
// and database services on it, and launches them: instances and the
// executors of serving apps start, and DBOS resumes interrupted workflows.
func (s *Server) startServices(ctx context.Context, p *parts) error {
	cfg, log := s.cfg, s.log
	obs := p.events.Tee(p.met)
	rt, err := localRouter(p.drv, p.rt)
	if err != nil {
		return err
	}
	p.fl = fleet.New(fleet.Config{
		Domain: cfg.Domain, HealthTimeout: cfg.HealthTimeout, Logger: log, Observer: obs,
	}, p.st, p.sys, p.drv, s.fleetRouter(p, rt), p.logs, deploy.NewSpecs(deploy.SpecsConfig{
		DataDir: cfg.DataDir, Domain: cfg.Domain, Images: buildRunner(p.drv) != nil,
		Secrets: accounts.NewOpener(p.st, p.box), DBTLS: s.dbTLS(),
	}))
	// Not ctx: a signal must not cancel running workflows durably; Close
	// stops DBOS, and a restarted server resumes them.
	dctx, err := dbos.NewContext(context.WithoutCancel(ctx), dbos.Config{
		AppName: "hangar", DatabaseURL: sysDBURL(p.metadata), ApplicationVersion: deploy.WorkflowVersion,
		ExecutorID: executorID(cfg), Logger: log.With("component", "dbos"),
	})
	if err != nil {
		return fmt.Errorf("start DBOS: %w", err)
	}
	p.archives, err = archive.New(archive.Config{Dir: filepath.Join(cfg.DataDir, "archives"), Logger: log}, p.st)
	if err != nil {
		return err
	}
	p.svc, err = deploy.New(deploy.Config{
		DataDir:   cfg.DataDir,
		StepDelay: cfg.StepDelay,
		OrgLimits: cfg.OrgLimits(),
		Build: build.Options{
			NPMCacheDir: cfg.NPMCacheDir, PipIndexURL: cfg.PipIndexURL, PipFindLinks: cfg.PipFindLinks,
			CacheDir: filepath.Join(cfg.DataDir, "cache", "deps"), Logger: log.With("component", "build"),
			CommandTimeout: cfg.BuildStepTimeout, MaxInstalledBytes: int64(cfg.AppInstalledMiB) << 20,
			CacheDisks: cacheDisks(p.disks, buildRunner(p.drv) != nil),
		},
		Disks:       versionDisks(p.disks, buildRunner(p.drv) != nil),
		BuildRunner: buildRunner(p.drv),
		Logger:      log,
		Observer:    obs,
		Elsewhere:   s.elsewhere(p),
		// With replicas, another one may be about to start the workflow
		// of an operation it took.
		OperationSettle: settle(cfg.Config),
	}, dctx, p.st, p.instances, p.fl, p.logs, p.archives)
	if err != nil {
		return err
	}
	p.dbs, err = databases.New(databases.Config{
		Domain: cfg.Domain, DBHost: cfg.DBHost, SystemDatabaseURL: sysDBURL(p.metadata), OrgLimits: cfg.OrgLimits(), Logger: log,
		Owners: instanceOwners(p), StepDelay: cfg.StepDelay,
	}, dctx, p.st, p.instances)
	if err != nil {
		return err
	}
	// Closed in reverse: DBOS first, then the executors, then the
	// database instances they use.
	if err := p.dbs.Start(ctx); err != nil {
		return err
	}
	s.onClose(func(ctx context.Context) error { p.dbs.Close(ctx); return nil })
	s.onClose(func(ctx context.Context) error { p.fl.Close(ctx); return closeDriver(p.drv) })
	s.onClose(func(context.Context) error { p.svc.Shutdown(); return nil })
	if err := p.svc.Launch(ctx); err != nil {
		return err
	}
	p.fl.Start()
	s.runReplicas(ctx, p)
	p.wfs = deploy.NewWorkflowAdmin(p.st, p.sys, p.fl)
	return nil
}

// startSampler feeds the Prometheus metrics and the apps' monitoring
// history.
func (s *Server) startSampler(ctx context.Context, p *parts) error {
	cfg := s.cfg
	p.met.Watch(struct {
		*fleet.Fleet
		*store.DB
	}{p.fl, p.st})
	sampler := history.NewSampler(history.Config{
		Domain: cfg.Domain, Interval: cfg.MetricsInterval, Retention: cfg.MetricsRetention, Logger: s.log,
	}, p.hist, struct {
		*fleet.Fleet
		*store.DB
		*deploy.WorkflowAdmin
	}{p.fl, p.st, p.wfs}, p.requests, p.events)
	s.goRun(ctx, func(ctx context.Context) { sampler.Run(ctx) }) // it logs its own errors
	return nil
}

// handler is the HTTPS port's handler: the API and console on the
// domain, the router on every other host.
func (s *Server) handler(p *parts) (http.Handler, error) {
	cfg, log := s.cfg, s.log
	accts := accounts.New(accounts.Config{Logger: log}, p.st, p.box, p.fl)
	hasher := s.cfg.Hasher
	if hasher == nil {
		hasher = auth.NewHasher(auth.HasherConfig{MaxConcurrent: cfg.PasswordHashes})
	}
	apiHandler := api.NewHandler(api.Config{
		Domain: cfg.Domain, MaxBodyBytes: cfg.MaxBodyBytes, Now: s.cfg.Now, Middleware: p.met.API, History: p.hist,
	}, api.Deps{
		Apps: p.svc, Reads: p.st, Archives: p.archives, Logs: p.logs, Tokens: p.tokens, Users: p.st, Accounts: accts, Workflows: p.wfs,
		Logins:    auth.NewLogins(auth.LoginsConfig{Now: s.cfg.Now}, p.st, p.tokens),
		Passwords: accounts.NewSignIn(accounts.SignInConfig{Now: s.cfg.Now}, p.st, hasher),
		Executors: p.fl, Databases: p.dbs,
	}, log)
	con, err := console.New(console.Config{Domain: cfg.Domain, API: s.forwardExecutors(p, apiHandler), Logger: log})
	if err != nil {
		return nil, err
	}
	return api.HostSwitch(cfg.Domain, con, p.rt), nil
}

// hostPolicy gives a certificate to the API host and registered apps
// only. Serving apps are in the router's table; others cost a query.
func (s *Server) hostPolicy(p *parts) tlsca.HostPolicy {
	domain := s.cfg.Domain
	return tlsca.AppHosts(domain, func(ctx context.Context, label string) (bool, error) {
		if p.rt.Has(label + "." + domain) {
			return true, nil
		}
		return p.st.AppHostExists(ctx, label)
	})
}

// listen opens the HTTPS port, whose HTTP/1.1 requests for apps proxy
// serves, and, when configured, the ACME challenge and metrics ports.
func (s *Server) listen(handler http.Handler, proxy frontdoor.Proxy, policy tlsca.HostPolicy, metricsHandler http.Handler) error {
	cfg := s.cfg
	ln := cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", cfg.Listen); err != nil {
			return err
		}
	}
	s.ln = ln
	s.onClose(func(context.Context) error { ln.Close(); return nil })
	certs, err := newCertSource(cfg.Config, s.ca, policy, ln.Addr().String(), s.log)
	if err != nil {
		return err
	}
	s.local = certs.localCA
	s.onClose(func(context.Context) error { certs.close(); return nil })
	door := frontdoor.Config{
		IdleTimeout: cfg.IdleTimeout, ReadHeaderTimeout: cfg.ReadHeaderTimeout, BodyReadTimeout: cfg.BodyReadTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes, MaxConnsPerIP: cfg.MaxConnsPerIP, Loops: cfg.HTTP1Loops,
	}
	errorLog := slog.NewLogLogger(s.log.Handler(), slog.LevelWarn)
	srv := frontdoor.NewServer(door, handler, proxy, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.getCertificate,
		NextProtos:     certs.nextProtos,
	}, errorLog)
	limited := frontdoor.LimitPerIP(ln, door)
	s.servers = append(s.servers, served{srv, func() error { return srv.Serve(limited) }})
	if cfg.ACMEHTTPListen != "" {
		hln, err := net.Listen("tcp", cfg.ACMEHTTPListen)
		if err != nil {
			return fmt.Errorf("ACME HTTP listener: %w", err)
		}
		s.onClose(func(context.Context) error { hln.Close(); return nil })
		hsrv := &http.Server{Handler: certs.acme.HTTPHandler(toHTTPS(cfg.Domain)), ReadHeaderTimeout: 30 * time.Second, ErrorLog: errorLog}
		s.servers = append(s.servers, served{hsrv, func() error { return hsrv.Serve(hln) }})
	}
	if cfg.MetricsListen != "" {
		// Plain HTTP on an address of its own, never on the API host: the
		// metrics name orgs, apps and executors.
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		s.onClose(func(context.Context) error { mln.Close(); return nil })
		msrv := &http.Server{Handler: metricsHandler, ReadHeaderTimeout: 30 * time.Second, ErrorLog: errorLog}
		s.servers = append(s.servers, served{msrv, func() error { return msrv.Serve(mln) }})
		fmt.Fprintf(cfg.Stdout, "Metrics: http://%s/metrics\n", mln.Addr())
	}
	return nil
}

// Addr is the address of the HTTPS port.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// CACertPath is the PEM file of the local CA that clients trust.
func (s *Server) CACertPath() string { return s.ca.CertPath() }

// Run serves until ctx is done or a listener fails, then shuts everything
// down: HTTP first (requests in flight get Config.ShutdownTimeout), then
// executors, database instances and the metadata cluster.
func (s *Server) Run(ctx context.Context) (err error) {
	bg := context.WithoutCancel(ctx)
	defer func() { err = errors.Join(err, s.close(bg)) }()
	cfg := s.cfg
	fmt.Fprintf(cfg.Stdout, "Hangar is serving https://%s/ on %s\n", cfg.Domain, s.ln.Addr())
	if s.local {
		fmt.Fprintf(cfg.Stdout, "CA certificate: %s\nPoint the DBOS Cloud CLI at it: DBOS_DOMAIN=%s NODE_EXTRA_CA_CERTS=%s\n", s.ca.CertPath(), cfg.Domain, s.ca.CertPath())
	} else {
		fmt.Fprintf(cfg.Stdout, "Point the DBOS Cloud CLI at it: DBOS_DOMAIN=%s\n", cfg.Domain)
	}
	errc := make(chan error, len(s.servers))
	for _, sv := range s.servers {
		go func() { errc <- sv.serve() }()
	}
	select {
	case err = <-errc:
	case err = <-s.fatal:
	case <-ctx.Done():
		s.log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(bg, cfg.ShutdownTimeout)
	defer cancel()
	for _, sv := range s.servers {
		err = errors.Join(err, sv.srv.Shutdown(sctx))
	}
	return err
}

// onClose registers f to run when the server closes, before what was
// registered earlier.
func (s *Server) onClose(f func(context.Context) error) { s.closers = append(s.closers, f) }

// goRun runs f until the server closes (not when ctx ends: shutdown
// needs it), which waits for it to return.
func (s *Server) goRun(ctx context.Context, f func(context.Context)) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); f(ctx) }()
	s.onClose(func(context.Context) error { cancel(); <-done; return nil })
}

// close releases everything New built, last built first.
func (s *Server) close(ctx context.Context) error {
	var err error
	for i := len(s.closers) - 1; i >= 0; i-- {
		err = errors.Join(err, s.closers[i](ctx))
	}
	s.closers = nil
	return err
}

// sysDBURL is the DBOS system database of Hangar's own workflows: beside the
// metadata database, named after it.
func sysDBURL(m Metadata) string {
	u, err := url.Parse(m.URL)
	if err != nil {
		return m.URL
	}
	u.Path = u.Path + "_dbos_sys"
	return u.String()
}
