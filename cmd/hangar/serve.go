package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/api"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/console"
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/frontdoor"
	"github.com/hangar-oss/hangar/internal/history"
	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/logs"
	"github.com/hangar-oss/hangar/internal/metrics"
	"github.com/hangar-oss/hangar/internal/router"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/netns"
	"github.com/hangar-oss/hangar/internal/runtime/sandbox"
	"github.com/hangar-oss/hangar/internal/secretbox"
	"github.com/hangar-oss/hangar/internal/store"
	"github.com/hangar-oss/hangar/internal/tlsca"
)

func newServeCmd(cfg *config.Config, stdout, stderr io.Writer) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Hangar server: API, router, deploy pipeline and executors on one HTTPS port",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return err
			}
			return serve(cmd.Context(), *cfg, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Listen, "listen", cfg.Listen, "HTTPS listen address (env HANGAR_LISTEN)")
	f.StringVar(&cfg.MetricsListen, "metrics-listen", cfg.MetricsListen, "plain-HTTP address serving Prometheus metrics at /metrics, e.g. 127.0.0.1:9464; they name orgs and apps, keep it private; empty = off (env HANGAR_METRICS_LISTEN)")
	f.DurationVar(&cfg.IdleTimeout, "idle-timeout", cfg.IdleTimeout, "close keep-alive connections idle this long (env HANGAR_IDLE_TIMEOUT)")
	f.DurationVar(&cfg.ReadHeaderTimeout, "read-header-timeout", cfg.ReadHeaderTimeout, "time allowed to read a request's headers (env HANGAR_READ_HEADER_TIMEOUT)")
	f.DurationVar(&cfg.BodyReadTimeout, "body-read-timeout", cfg.BodyReadTimeout, "cut a request whose body sends nothing for this long (env HANGAR_BODY_READ_TIMEOUT)")
	f.IntVar(&cfg.MaxHeaderBytes, "max-header-bytes", cfg.MaxHeaderBytes, "cap on a request's headers, in bytes (env HANGAR_MAX_HEADER_BYTES)")
	f.IntVar(&cfg.MaxConnsPerIP, "max-conns-per-ip", cfg.MaxConnsPerIP, "cap on open connections from one client IP; negative = no cap (env HANGAR_MAX_CONNS_PER_IP)")
	f.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "cap on request bodies of API routes other than deploy uploads, in bytes (env HANGAR_MAX_BODY_BYTES)")
	f.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", cfg.ShutdownTimeout, "how long a stopping server lets requests in flight finish (env HANGAR_SHUTDOWN_TIMEOUT)")
	f.StringVar(&cfg.Domain, "domain", cfg.Domain, "public host[:port] of the API; apps are served at <org>-<app>.<domain> (env HANGAR_DOMAIN)")
	f.DurationVar(&cfg.HealthTimeout, "health-timeout", cfg.HealthTimeout, "how long a new version may take to answer HTTP (env HANGAR_HEALTH_TIMEOUT)")
	f.DurationVar(&cfg.LogMaxAge, "log-max-age", cfg.LogMaxAge, "how long app log lines are kept; 0 = 7 days (env HANGAR_LOG_MAX_AGE)")
	f.IntVar(&cfg.LogMaxLines, "log-max-lines", cfg.LogMaxLines, "how many log lines are kept per app; 0 = 1000000 (env HANGAR_LOG_MAX_LINES)")
	f.Int64Var(&cfg.LogMaxBytes, "log-max-bytes", cfg.LogMaxBytes, "how many bytes of log text are kept per app, oldest dropped first; 0 = 256 MiB (env HANGAR_LOG_MAX_BYTES)")
	f.IntVar(&cfg.OrgMaxApps, "org-max-apps", cfg.OrgMaxApps, "applications per organization; 0 = 20, -1 = no limit (env HANGAR_ORG_MAX_APPS)")
	f.IntVar(&cfg.OrgMaxDBInstances, "org-max-db-instances", cfg.OrgMaxDBInstances, "managed database instances per organization; 0 = 4, -1 = no limit (env HANGAR_ORG_MAX_DB_INSTANCES)")
	f.IntVar(&cfg.OrgMaxExecutors, "org-max-executors", cfg.OrgMaxExecutors, "sum of the minimum executors of an organization's applications; 0 = 40, -1 = no limit (env HANGAR_ORG_MAX_EXECUTORS)")
	f.DurationVar(&cfg.MetricsRetention, "metrics-retention", cfg.MetricsRetention, "how long the apps' monitoring history (console dashboards) is kept; 0 = 14 days (env HANGAR_METRICS_RETENTION)")
	f.DurationVar(&cfg.MetricsInterval, "metrics-interval", cfg.MetricsInterval, "resolution of the monitoring history; 0 = 1m (env HANGAR_METRICS_INTERVAL)")
	f.StringVar(&cfg.Driver, "driver", cfg.Driver, "executor driver: sandbox (runc), kubernetes (Pods) or netns (unsandboxed, for development only) (env HANGAR_DRIVER)")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "kubeconfig of the cluster of --driver=kubernetes; default: the in-cluster config (env HANGAR_KUBECONFIG)")
	f.StringVar(&cfg.K8sNamespace, "k8s-namespace", cfg.K8sNamespace, "namespace of the executors' Pods (env HANGAR_K8S_NAMESPACE)")
	f.StringVar(&cfg.RuntimeClass, "runtime-class", cfg.RuntimeClass, "RuntimeClass of the executors' Pods (gVisor, Kata); default the cluster's (env HANGAR_RUNTIME_CLASS)")
	f.StringVar(&cfg.Registry, "registry", cfg.Registry, "registry app images are pushed to and pulled from with --driver=kubernetes: host[:port][/path], http:// for plain HTTP (env HANGAR_REGISTRY)")
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate (e.g. *.<domain> and <domain>, then its chain) served instead of the local CA's; reloaded when it changes (env HANGAR_TLS_CERT)")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM key of --tls-cert (env HANGAR_TLS_KEY)")
	f.StringVar(&cfg.ACMEEmail, "acme-email", cfg.ACMEEmail, "get certificates from an ACME CA (Let's Encrypt unless --acme-ca), with this account contact (env HANGAR_ACME_EMAIL)")
	f.StringVar(&cfg.ACMECA, "acme-ca", cfg.ACMECA, "ACME directory URL; setting it turns ACME on (env HANGAR_ACME_CA)")
	f.StringVar(&cfg.ACMECARoots, "acme-ca-roots", cfg.ACMECARoots, "PEM roots to verify a private ACME CA's HTTPS with (env HANGAR_ACME_CA_ROOTS)")
	f.StringVar(&cfg.ACMEHTTPListen, "acme-http-listen", cfg.ACMEHTTPListen, "plain-HTTP address (e.g. :80) for ACME HTTP-01 challenges, redirecting the rest to HTTPS; empty = TLS-ALPN-01 only (env HANGAR_ACME_HTTP_LISTEN)")
	f.IntVar(&cfg.PasswordHashes, "password-hashes", cfg.PasswordHashes, "password hashes (19 MiB each) computed at once; more sign-ins wait up to 2 s, then get 429; 0 = 2 × CPUs (env HANGAR_PASSWORD_HASHES)")
	f.StringVar(&cfg.NetworkPrefix, "network-prefix", cfg.NetworkPrefix, "name prefix of executor network namespaces (env HANGAR_NETWORK_PREFIX)")
	f.StringVar(&cfg.Subnet, "subnet", cfg.Subnet, "IPv4 pool for executor networks (env HANGAR_SUBNET)")
	f.StringVar(&cfg.DBListen, "db-listen", cfg.DBListen, "host address managed database instances' TLS ports listen on; empty = every address (env HANGAR_DB_LISTEN)")
	f.StringVar(&cfg.DBPorts, "db-ports", cfg.DBPorts, "port range of managed database instances, first-last (one port each), or 0 for any free port; empty = 15432-16431 (env HANGAR_DB_PORTS)")
	f.StringVar(&cfg.DBHost, "db-host", cfg.DBHost, "host name or IP address users connect to database instances at, shown by db url and named by their certificate; empty = the host of --domain (env HANGAR_DB_HOST)")
	f.IntVar(&cfg.DBMemoryMiB, "db-memory-mib", cfg.DBMemoryMiB, "memory limit of each managed database instance, MiB; 0 = 1024 (env HANGAR_DB_MEMORY_MIB)")
	f.Float64Var(&cfg.DBCPUs, "db-cpus", cfg.DBCPUs, "CPU limit of each managed database instance; 0 = 1 (env HANGAR_DB_CPUS)")
	f.IntVar(&cfg.DBPids, "db-pids", cfg.DBPids, "process limit of each managed database instance; 0 = 512 (env HANGAR_DB_PIDS)")
	f.StringSliceVar(&cfg.EgressAllow, "egress-allow", cfg.EgressAllow, "IPv4 prefixes executors may reach although private (RFC 1918, 100.64.0.0/10), comma-separated or repeated (env HANGAR_EGRESS_ALLOW)")
	f.StringSliceVar(&cfg.EgressDeny, "egress-deny", cfg.EgressDeny, "IPv4 prefixes executors never reach, besides the private ones; wins over --egress-allow; 0.0.0.0/0 = no egress (env HANGAR_EGRESS_DENY)")
	f.StringSliceVar(&cfg.EgressResolvers, "egress-resolver", cfg.EgressResolvers, "DNS servers (ip or ip:port) that executors' resolvers forward to; default the nameservers of /etc/resolv.conf (env HANGAR_EGRESS_RESOLVERS)")
	f.StringVar(&cfg.ImageCache, "image-cache", cfg.ImageCache, "directory of the images builds and executors run on: Debian base, Node.js, setup layers; default <data-dir>/images (env HANGAR_IMAGE_CACHE)")
	f.DurationVar(&cfg.BuildStepTimeout, "build-step-timeout", cfg.BuildStepTimeout, "wall-clock limit of each setup, install and build command; 0 = 30m (env HANGAR_BUILD_STEP_TIMEOUT)")
	f.IntVar(&cfg.BuildMemoryMiB, "build-memory-mib", cfg.BuildMemoryMiB, "memory limit of each sandboxed build command; 0 = 2048 (env HANGAR_BUILD_MEMORY_MIB)")
	return cmd
}

// serve runs the server until ctx is done, then shuts everything down:
// HTTP first, then executors, database instances and the metadata cluster.
func serve(ctx context.Context, cfg config.Config, stdout, stderr io.Writer) (err error) {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	mdb, started, err := openMetadata(ctx, cfg, true, log)
	if err != nil {
		return err
	}
	// Shutdown work must run even though ctx is done by then.
	bg := context.WithoutCancel(ctx)
	if started {
		defer func() {
			if serr := mdb.cluster.Stop(bg); serr != nil {
				err = errors.Join(err, fmt.Errorf("stop metadata PostgreSQL: %w", serr))
			}
		}()
	}
	// App secrets and database passwords are sealed with a key kept
	// outside the metadata database, created (0600) on first start.
	box, err := secretbox.Open(filepath.Join(cfg.DataDir, "secrets.key"))
	if err != nil {
		return err
	}
	st, err := store.Open(ctx, mdb.url, store.WithSealer(box))
	if err != nil {
		return err
	}
	defer st.Close()
	tokens, err := auth.Open(ctx, st, auth.Config{Logger: log})
	if err != nil {
		return err
	}
	keysCtx, stopKeys := context.WithCancel(bg)
	keysDone := make(chan struct{})
	go func() { defer close(keysDone); tokens.Run(keysCtx) }()
	defer func() { stopKeys(); <-keysDone }()
	ca, err := tlsca.LoadOrCreate(cfg.DataDir)
	if err != nil {
		return err
	}
	drv, err := newDriver(ctx, cfg, log)
	if err != nil {
		return err
	}
	if err := drv.Cleanup(ctx); err != nil {
		return fmt.Errorf("clean up executors of an earlier run: %w", err)
	}
	instances := dbinstance.New(dbinstance.Config{
		Dir: filepath.Join(cfg.DataDir, "instances"), Settings: cfg.PGSettings,
		Sandbox: dbSandbox(cfg, ca, log),
		Logger:  log.With("component", "dbinstance"),
	})
	rt := router.New(log.With("component", "router"))
	// Counting is cheap, so it always runs; --metrics-listen only decides
	// whether the metrics are served.
	met := metrics.New(log.With("component", "metrics"))
	logStore, err := logs.Open(ctx, st.Pool(), logs.Config{
		MaxAge: cfg.LogMaxAge, MaxLinesPerApp: cfg.LogMaxLines, MaxBytesPerApp: cfg.LogMaxBytes,
		Logger: log.With("component", "logs"),
	})
	if err != nil {
		return err
	}
	logCtx, stopLogs := context.WithCancel(bg)
	logsDone := make(chan struct{})
	go func() { defer close(logsDone); logStore.Run(logCtx) }()
	defer func() { stopLogs(); <-logsDone }()
	hist, err := history.Open(ctx, st.Pool())
	if err != nil {
		return err
	}
	requests, events := history.NewRecorder(), history.NewEvents()
	// Not ctx: a signal must not cancel running workflows durably; Shutdown
	// stops DBOS, and a restarted server resumes them.
	svc, err := deploy.New(bg, deploy.Config{
		DataDir: cfg.DataDir, Domain: cfg.Domain, DBHost: cfg.DBHost,
		SystemDatabaseURL: sysDBURL(mdb),
		HealthTimeout:     cfg.HealthTimeout,
		StepDelay:         cfg.StepDelay,
		OrgLimits:         cfg.OrgLimits(),
		Build: build.Options{
			NPMCacheDir: cfg.NPMCacheDir, PipIndexURL: cfg.PipIndexURL, PipFindLinks: cfg.PipFindLinks,
			CacheDir: filepath.Join(cfg.DataDir, "cache", "deps"), Logger: log.With("component", "build"),
			CommandTimeout: cfg.BuildStepTimeout,
		},
		BuildRunner: buildRunner(drv),
		Images:      buildRunner(drv) != nil,
		Logger:      log,
		Secrets:     accounts.NewOpener(st, box),
		Observer:    events.Tee(met),
	}, st, instances, drv, rt, logStore)
	if err != nil {
		return err
	}
	defer svc.Shutdown(bg)
	if err := svc.Launch(ctx); err != nil {
		return err
	}

	met.Watch(svc)
	sampler := history.NewSampler(history.Config{
		Domain: cfg.Domain, Interval: cfg.MetricsInterval, Retention: cfg.MetricsRetention, Logger: log,
	}, hist, svc, requests, events)
	sampleCtx, stopSampling := context.WithCancel(bg)
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); sampler.Run(sampleCtx) }()
	defer func() { stopSampling(); <-samplerDone }()

	accts := accounts.New(accounts.Config{Logger: log}, st, box, svc)
	apiHandler := api.NewHandler(api.Config{
		Domain: cfg.Domain, PasswordHashes: cfg.PasswordHashes, MaxBodyBytes: cfg.MaxBodyBytes, Middleware: met.API, History: hist,
	}, svc, st, tokens, accts, logStore, log)
	con, err := console.New(console.Config{Domain: cfg.Domain, API: apiHandler, Logger: log})
	if err != nil {
		return err
	}
	handler := api.HostSwitch(cfg.Domain, con, met.Router(requests.Wrap(rt)))
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return err
	}
	// Only the API host and registered apps get a certificate. Serving
	// apps are in the router's table; others cost a query.
	policy := tlsca.AppHosts(cfg.Domain, func(ctx context.Context, label string) (bool, error) {
		if rt.Has(label + "." + cfg.Domain) {
			return true, nil
		}
		return st.AppHostExists(ctx, label)
	})
	certs, err := newCertSource(cfg, ca, policy, ln.Addr().String(), log)
	if err != nil {
		ln.Close()
		return err
	}
	defer certs.close()
	door := frontdoor.Config{
		IdleTimeout: cfg.IdleTimeout, ReadHeaderTimeout: cfg.ReadHeaderTimeout, BodyReadTimeout: cfg.BodyReadTimeout,
		MaxHeaderBytes: cfg.MaxHeaderBytes, MaxConnsPerIP: cfg.MaxConnsPerIP,
	}
	srv := frontdoor.NewServer(door, handler, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: certs.getCertificate,
		NextProtos:     certs.nextProtos,
	}, slog.NewLogLogger(log.Handler(), slog.LevelWarn))
	ln = frontdoor.LimitPerIP(ln, door)
	errc := make(chan error, 3)
	servers := []*http.Server{srv}
	if cfg.ACMEHTTPListen != "" {
		hln, err := net.Listen("tcp", cfg.ACMEHTTPListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("ACME HTTP listener: %w", err)
		}
		hsrv := &http.Server{Handler: certs.acme.HTTPHandler(toHTTPS(cfg.Domain)), ReadHeaderTimeout: 30 * time.Second, ErrorLog: srv.ErrorLog}
		go func() { errc <- hsrv.Serve(hln) }()
		servers = append(servers, hsrv)
	}
	if cfg.MetricsListen != "" {
		// Plain HTTP on an address of its own, never on the API host: the
		// metrics name orgs, apps and executors.
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			ln.Close()
			return fmt.Errorf("metrics listener: %w", err)
		}
		msrv := &http.Server{Handler: met.Handler(), ReadHeaderTimeout: 30 * time.Second, ErrorLog: srv.ErrorLog}
		go func() { errc <- msrv.Serve(mln) }()
		servers = append(servers, msrv)
		fmt.Fprintf(stdout, "Metrics: http://%s/metrics\n", mln.Addr())
	}
	fmt.Fprintf(stdout, "Hangar is serving https://%s/ on %s\n", cfg.Domain, ln.Addr())
	if certs.localCA {
		fmt.Fprintf(stdout, "CA certificate: %s\nPoint the DBOS Cloud CLI at it: DBOS_DOMAIN=%s NODE_EXTRA_CA_CERTS=%s\n", ca.CertPath(), cfg.Domain, ca.CertPath())
	} else {
		fmt.Fprintf(stdout, "Point the DBOS Cloud CLI at it: DBOS_DOMAIN=%s\n", cfg.Domain)
	}
	go func() { errc <- srv.ServeTLS(ln, "", "") }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down")
	}
	sctx, cancel := context.WithTimeout(bg, cfg.ShutdownTimeout)
	defer cancel()
	for _, s := range servers {
		err = errors.Join(err, s.Shutdown(sctx))
	}
	return err
}

// certSource is where the HTTPS port's certificates come from.
type certSource struct {
	getCertificate func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	nextProtos     []string    // nil: http.Server's own
	acme           *tlsca.ACME // nil unless ACME
	localCA        bool        // clients must trust the local CA
	close          func()
}

// newCertSource returns the configured source: an operator's files, an
// ACME CA answering challenges on tlsAddr, or the local CA.
func newCertSource(cfg config.Config, ca *tlsca.CA, policy tlsca.HostPolicy, tlsAddr string, log *slog.Logger) (certSource, error) {
	switch {
	case cfg.TLSCert != "":
		f, err := tlsca.OpenFile(cfg.TLSCert, cfg.TLSKey, log.With("component", "tls"))
		if err != nil {
			return certSource{}, err
		}
		return certSource{getCertificate: f.GetCertificate(policy), close: func() {}}, nil
	case cfg.ACME():
		acfg := tlsca.ACMEConfig{
			Dir: filepath.Join(cfg.DataDir, "acme"), CA: cfg.ACMECA, Email: cfg.ACMEEmail,
			TLSAddr: tlsAddr, HTTPAddr: cfg.ACMEHTTPListen, DefaultHost: hostOnly(cfg.Domain),
			Logger: log.With("component", "acme"),
		}
		if cfg.ACMECARoots != "" {
			pem, err := os.ReadFile(cfg.ACMECARoots)
			if err != nil {
				return certSource{}, fmt.Errorf("read --acme-ca-roots: %w", err)
			}
			acfg.RootCAs = x509.NewCertPool()
			if !acfg.RootCAs.AppendCertsFromPEM(pem) {
				return certSource{}, fmt.Errorf("--acme-ca-roots %s holds no PEM certificate", cfg.ACMECARoots)
			}
		}
		a, err := tlsca.NewACME(acfg, policy)
		if err != nil {
			return certSource{}, err
		}
		return certSource{getCertificate: a.GetCertificate, nextProtos: a.NextProtos(), acme: a, close: a.Close}, nil
	}
	return certSource{getCertificate: ca.GetCertificate(policy), localCA: true, close: func() {}}, nil
}

// toHTTPS redirects plain-HTTP requests to HTTPS on the domain's port.
func toHTTPS(domain string) http.Handler {
	port := ""
	if _, p, err := net.SplitHostPort(domain); err == nil && p != "443" {
		port = ":" + p
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://"+hostOnly(r.Host)+port+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// hostOnly drops a port.
func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// driver is an executor driver that can clean up after an earlier run.
type driver interface {
	runtime.Driver
	Cleanup(ctx context.Context) error
}

// newDriver returns the configured executor driver.
func newDriver(ctx context.Context, cfg config.Config, log *slog.Logger) (driver, error) {
	egress := runtime.Egress{Allow: cfg.EgressAllow, Deny: cfg.EgressDeny, Resolvers: cfg.EgressResolvers}
	if cfg.Driver == "netns" {
		log.Warn("executors are NOT sandboxed (--driver=netns): use it for development only")
		return netns.New(netns.Config{Subnet: cfg.Subnet, Prefix: cfg.NetworkPrefix, Egress: egress}, log.With("component", "netns"))
	}
	images, err := image.New(image.Config{Dir: cfg.ImageCache, Logger: log.With("component", "image")})
	if err != nil {
		return nil, err
	}
	sb, err := sandbox.New(sandbox.Config{
		Subnet: cfg.Subnet, Prefix: cfg.NetworkPrefix, Egress: egress,
		// Executors must not see Hangar's state: the metadata cluster, the
		// database instances, the archives and the other apps.
		HiddenPaths:   []string{cfg.DataDir},
		Images:        images,
		GoRoot:        goRoot(),
		StepMemoryMiB: cfg.BuildMemoryMiB,
	}, log.With("component", "sandbox"))
	if err != nil || cfg.Driver != "kubernetes" {
		return sb, err
	}
	return newKubeDriver(ctx, cfg, sb, images, log)
}

// dbSandbox returns the sandbox of managed database instances, or nil
// (instances run as postgres on loopback) when Hangar is not root.
func dbSandbox(cfg config.Config, ca *tlsca.CA, log *slog.Logger) *dbinstance.Sandbox {
	if os.Geteuid() != 0 {
		log.Warn("not running as root: database instances are NOT sandboxed and not reachable from other hosts")
		return nil
	}
	first, count, _ := cfg.DBPortRange() // checked by Validate
	return &dbinstance.Sandbox{
		Prefix:      cfg.NetworkPrefix + "-db",
		MemoryBytes: int64(cfg.DBMemoryMiB) << 20, CPUs: cfg.DBCPUs, Pids: int64(cfg.DBPids),
		Listen:    cfg.DBListen,
		FirstPort: first, PortCount: count,
		Certificate: func() ([]byte, []byte, error) {
			leaf, err := ca.Issue(cfg.DBHost)
			if err != nil {
				return nil, nil, err
			}
			key, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
			if err != nil {
				return nil, nil, err
			}
			var chain []byte
			for _, der := range append(leaf.Certificate, ca.Certificate().Raw) {
				chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
			}
			return chain, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: key}), nil
		},
	}
}

// buildRunner returns the runner of build commands: the sandbox's steps,
// or nil (commands on the host) with the development driver.
func buildRunner(drv driver) build.Runner {
	if steps, ok := drv.(runtime.StepRunner); ok {
		return build.StepRunner{Steps: steps}
	}
	return nil
}

// goRoot returns the Go toolchain images get at /usr/local/go: the one
// the go command in PATH reports, or none.
func goRoot() string {
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// sysDBURL is the DBOS system database of Hangar's own workflows: beside the
// metadata database, named after it.
func sysDBURL(m metadataDB) string {
	u, err := url.Parse(m.url)
	if err != nil {
		return m.url
	}
	u.Path = u.Path + "_dbos_sys"
	return u.String()
}
