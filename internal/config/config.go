// Package config holds the server's configuration: defaults, environment
// (HANGAR_*) and flags, validated once by the composition root. It is a leaf:
// it imports only internal/hangar. Only the composition roots import it;
// each package gets its own small Config from them.
package config

// size: one documented field per flag, its default and its check; candidates to split: the TLS and database settings.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Config is the configuration of `hangar serve` and the operator commands.
type Config struct {
	// DataDir holds everything Hangar keeps on disk: the embedded metadata
	// cluster, the CA, archives, apps and database instances. Default
	// $XDG_DATA_HOME/hangar (~/.local/share/hangar), or /var/lib/hangar when
	// running as root, since the unprivileged postgres user must reach it.
	DataDir string
	// Listen is the HTTPS listen address. Default "127.0.0.1:8443".
	Listen string
	// MetricsListen is the plain-HTTP address that serves Prometheus
	// metrics at /metrics, apart from the API because they name tenants.
	// Default "": no metrics listener.
	MetricsListen string
	// IdleTimeout closes a keep-alive connection to the HTTPS port that has
	// no request for this long. Default 2m.
	IdleTimeout time.Duration
	// ReadHeaderTimeout bounds reading a request's headers. Default 30s.
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout cuts a request whose body sends nothing for this long
	// (each read must return within it; a long upload that keeps moving
	// lives on). Default 30s.
	BodyReadTimeout time.Duration
	// MaxHeaderBytes caps a request's headers. Default 64 KiB.
	MaxHeaderBytes int
	// MaxConnsPerIP caps the connections open from one client IP; more are
	// closed on accept. Default 256; negative means no cap.
	MaxConnsPerIP int
	// HTTP1Loops is the number of event loops serving HTTP/1.1
	// connections. 0: half the CPUs, at least 1; negative: none, a
	// goroutine per connection.
	HTTP1Loops int
	// MaxBodyBytes caps request bodies on API routes other than deploy
	// uploads (those take archives up to 500 MiB). Default 1 MiB.
	MaxBodyBytes int64
	// ShutdownTimeout is how long a stopping server lets requests in
	// flight finish. Default 30s.
	ShutdownTimeout time.Duration
	// Domain is the public host[:port] of the API; apps are served at
	// <org>-<app>.<Domain>. Default "localhost:8443".
	Domain string
	// TLSCert and TLSKey are PEM files of an operator's certificate
	// (typically *.<Domain> and <Domain>, leaf first, then its chain) and
	// its key, served instead of the local CA's and reloaded when either
	// file changes. Default "": the local CA.
	TLSCert, TLSKey string
	// ACMEEmail is the contact of the ACME account. Setting it or ACMECA
	// gets the certificates from an ACME CA, on demand, validated by
	// TLS-ALPN-01 on the HTTPS port (and HTTP-01 with ACMEHTTPListen).
	// Default "": no ACME.
	ACMEEmail string
	// ACMECA is the ACME directory URL. Default "": Let's Encrypt's
	// production directory when ACME is on.
	ACMECA string
	// ACMECARoots is a PEM file of the roots that the ACME server's own
	// HTTPS is verified with, for a private ACME CA. Default "": the
	// system's roots.
	ACMECARoots string
	// ACMEHTTPListen is a plain-HTTP address (such as ":80") answering
	// ACME HTTP-01 challenges and redirecting everything else to HTTPS.
	// Default "": TLS-ALPN-01 only.
	ACMEHTTPListen string
	// PasswordHashes bounds the password hashes (argon2id, 19 MiB each)
	// computed at once; sign-ins past it wait up to 2 s, then get 429.
	// Default 0: 2 × the number of CPUs.
	PasswordHashes int
	// DatabaseURL is the metadata database. Default "": Hangar runs its own
	// PostgreSQL cluster in DataDir/postgres.
	DatabaseURL string
	// ReplicaID makes this process one of several replicas sharing
	// DatabaseURL (required) and DataDir (on shared storage), each with
	// its own NetworkPrefix: its ID, unique among them and kept across
	// restarts, is its DBOS executor ID (docs/replicas.md). Default "":
	// one process, DBOS executor ID "hangar".
	ReplicaID string
	// ReplicaTimeout is how long a replica's heartbeat may be silent
	// before another replica takes it over; heartbeats go every fifth of
	// it. Default 10s.
	ReplicaTimeout time.Duration
	// Driver runs executors: "sandbox" (runc: own uid, read-only root,
	// namespaces, cgroup limits), "kubernetes" (Pods on a cluster, see
	// Kubeconfig) or "netns" (an unsandboxed development driver: a plain
	// process in its own network namespace). Default "sandbox".
	Driver string
	// OCIRuntime is the sandbox driver's OCI runtime: crun or runc (or a
	// path). Default "": crun when installed and the host's cgroups suit
	// it, else runc.
	OCIRuntime string
	// Kubeconfig is the kubeconfig file of the cluster the kubernetes
	// driver runs executors on. Default "": the in-cluster config (Hangar
	// runs in a Pod).
	Kubeconfig string
	// K8sNamespace is the namespace of the executors' Pods. Default
	// "hangar".
	K8sNamespace string
	// RuntimeClass is the RuntimeClass of the executors' Pods (gVisor,
	// Kata). Default "": the cluster's default runtime.
	RuntimeClass string
	// Registry is where the kubernetes driver pushes each app version's
	// image and the cluster pulls it from: "host[:port][/path]", or
	// "http://host[:port][/path]" for a plain-HTTP registry. Default "":
	// required with --driver=kubernetes.
	Registry string
	// K8sForwardAddr is the IP address of Hangar that executors' Pods
	// reach it at without address translation: their database forwards
	// listen there. Default "": Hangar's address on its route to the API
	// server (its Pod IP, in a cluster).
	K8sForwardAddr string
	// NetworkPrefix names executors' network namespaces; distinct Hangar
	// processes on one host need distinct prefixes. Default "hg".
	NetworkPrefix string
	// Subnet is the IPv4 pool executors' networks come from. Default
	// "10.213.0.0/16".
	Subnet string
	// EgressAllow lists IPv4 prefixes executors may reach although they
	// are private (RFC 1918, 100.64.0.0/10), which executors reach by
	// default only through their relays. Default none.
	EgressAllow []string
	// EgressDeny lists IPv4 prefixes executors never reach, besides the
	// private ones; it wins over EgressAllow, and 0.0.0.0/0 turns egress
	// off. Default none.
	EgressDeny []string
	// EgressResolvers are the DNS servers ("ip" or "ip:port") the resolver
	// on each executor's gateway forwards queries to. Default the
	// nameservers of /etc/resolv.conf.
	EgressResolvers []string
	// HealthTimeout bounds how long a new version may take to serve HTTP.
	// Default 2m.
	HealthTimeout time.Duration
	// ImageCache holds the images builds and sandboxed executors run on
	// (docs/images.md): the Debian base, the Node.js toolchain, the apps'
	// setup layers and uid ranges. Default DataDir/images.
	ImageCache string
	// BuildStepTimeout bounds each setup, install and build command.
	// Default 30m.
	BuildStepTimeout time.Duration
	// BuildMemoryMiB caps the memory of each sandboxed build command.
	// Default 2048.
	BuildMemoryMiB int
	// AppInstalledMiB bounds what a build may write to a version's folder
	// while it runs (the installed app; docs/disk.md). Default 2048.
	AppInstalledMiB int
	// AppDiskMiB is the room the executors of a version get beyond its
	// installed app, enforced by the kernel (ENOSPC). Default 2048.
	AppDiskMiB int
	// NPMCacheDir is npm's cache shared by builds. Default DataDir/cache/npm.
	NPMCacheDir string
	// PipIndexURL and PipFindLinks configure Python installs. Default: pip's.
	PipIndexURL, PipFindLinks string
	// LogMaxAge and LogMaxLines bound how long and how many log lines are
	// kept per app. Default 7 days and 1,000,000 lines.
	LogMaxAge   time.Duration
	LogMaxLines int
	// LogMaxBytes bounds the log text kept per app; past it the app's
	// oldest lines are dropped first. Default 256 MiB.
	LogMaxBytes int64
	// OrgMaxApps, OrgMaxDBInstances and OrgMaxExecutors bound what one
	// organization may hold: registered apps, managed database instances
	// and the sum of its apps' minimum executors. A negative value means
	// no limit. Defaults 20, 4 and 40 (OrgLimits).
	OrgMaxApps, OrgMaxDBInstances, OrgMaxExecutors int
	// MetricsRetention is how long the apps' monitoring history (the
	// console's dashboards) is kept. Default 14 days.
	MetricsRetention time.Duration
	// MetricsInterval is the resolution of that history: one row per app
	// and executor per interval. Default one minute; tests set it shorter.
	MetricsInterval time.Duration
	// StepDelay pauses deploy steps after they start, for crash tests only:
	// HANGAR_FAULT_STEP_DELAY="migration=30s,upload=10s". Default none.
	StepDelay map[string]time.Duration
	// PGSettings are extra settings for every PostgreSQL cluster Hangar runs
	// (for example fsync=off in tests), as name=value pairs.
	PGSettings map[string]string
	// DBListen is the host address managed database instances' ports
	// listen on, for users' TLS connections. Default "": every address.
	DBListen string
	// DBPorts is the range new instances' ports come from, "first-last",
	// or "0" for any free port (tests). Default "15432-16431".
	DBPorts string
	// DBMaxConnsPerIP caps the connections one client IP address has open
	// to the instances' ports, all together; more are closed on accept.
	// Loopback (Hangar, the executors' relays) is not counted. Default 64;
	// negative means no cap.
	DBMaxConnsPerIP int
	// DBHost is the host name (or IP address) users connect to instances
	// at: `db url` and `db status` show it, and the instances' TLS
	// certificate names it. Default: the host of Domain.
	DBHost string
	// DBMemoryMiB, DBCPUs and DBPids limit each managed instance's
	// sandbox. Defaults 1024 MiB, 1 CPU and 512 processes.
	DBMemoryMiB int
	DBCPUs      float64
	DBPids      int
}

// Getenv reads one environment variable.
type Getenv func(string) string

// Defaults returns the configuration with environment overrides applied:
// flags, applied by the caller afterwards, override both.
// size: one line per field: the table of defaults.
func Defaults(getenv Getenv) Config {
	c := Config{
		DataDir:         getenv("HANGAR_DATA_DIR"),
		Listen:          or(getenv("HANGAR_LISTEN"), "127.0.0.1:8443"),
		MetricsListen:   getenv("HANGAR_METRICS_LISTEN"),
		Domain:          or(getenv("HANGAR_DOMAIN"), "localhost:8443"),
		TLSCert:         getenv("HANGAR_TLS_CERT"),
		TLSKey:          getenv("HANGAR_TLS_KEY"),
		ACMEEmail:       getenv("HANGAR_ACME_EMAIL"),
		ACMECA:          getenv("HANGAR_ACME_CA"),
		ACMECARoots:     getenv("HANGAR_ACME_CA_ROOTS"),
		ACMEHTTPListen:  getenv("HANGAR_ACME_HTTP_LISTEN"),
		DatabaseURL:     getenv("HANGAR_DATABASE_URL"),
		ReplicaID:       getenv("HANGAR_REPLICA_ID"),
		ReplicaTimeout:  durationEnv(getenv, "HANGAR_REPLICA_TIMEOUT", 10*time.Second),
		Driver:          or(getenv("HANGAR_DRIVER"), "sandbox"),
		OCIRuntime:      getenv("HANGAR_OCI_RUNTIME"),
		Kubeconfig:      getenv("HANGAR_KUBECONFIG"),
		K8sNamespace:    or(getenv("HANGAR_K8S_NAMESPACE"), "hangar"),
		RuntimeClass:    getenv("HANGAR_RUNTIME_CLASS"),
		Registry:        getenv("HANGAR_REGISTRY"),
		K8sForwardAddr:  getenv("HANGAR_K8S_FORWARD_ADDR"),
		NetworkPrefix:   or(getenv("HANGAR_NETWORK_PREFIX"), "hg"),
		Subnet:          or(getenv("HANGAR_SUBNET"), "10.213.0.0/16"),
		HealthTimeout:   2 * time.Minute,
		EgressAllow:     list(getenv("HANGAR_EGRESS_ALLOW")),
		EgressDeny:      list(getenv("HANGAR_EGRESS_DENY")),
		EgressResolvers: list(getenv("HANGAR_EGRESS_RESOLVERS")),
		PipIndexURL:     getenv("HANGAR_PIP_INDEX_URL"),
		PipFindLinks:    getenv("HANGAR_PIP_FIND_LINKS"),

		IdleTimeout:       durationEnv(getenv, "HANGAR_IDLE_TIMEOUT", 2*time.Minute),
		ReadHeaderTimeout: durationEnv(getenv, "HANGAR_READ_HEADER_TIMEOUT", 30*time.Second),
		BodyReadTimeout:   durationEnv(getenv, "HANGAR_BODY_READ_TIMEOUT", 30*time.Second),
		MaxHeaderBytes:    intEnv(getenv, "HANGAR_MAX_HEADER_BYTES", 64<<10),
		MaxConnsPerIP:     intEnv(getenv, "HANGAR_MAX_CONNS_PER_IP", 256),
		HTTP1Loops:        intEnv(getenv, "HANGAR_HTTP1_LOOPS", 0),
		MaxBodyBytes:      int64(intEnv(getenv, "HANGAR_MAX_BODY_BYTES", 1<<20)),
		ShutdownTimeout:   durationEnv(getenv, "HANGAR_SHUTDOWN_TIMEOUT", 30*time.Second),
		DBListen:          getenv("HANGAR_DB_LISTEN"),
		DBPorts:           getenv("HANGAR_DB_PORTS"),
		DBMaxConnsPerIP:   intEnv(getenv, "HANGAR_DB_MAX_CONNS_PER_IP", 0),
		DBHost:            getenv("HANGAR_DB_HOST"),
		DBMemoryMiB:       intEnv(getenv, "HANGAR_DB_MEMORY_MIB", 0),
		DBPids:            intEnv(getenv, "HANGAR_DB_PIDS", 0),
		ImageCache:        getenv("HANGAR_IMAGE_CACHE"),
		AppInstalledMiB:   intEnv(getenv, "HANGAR_APP_INSTALLED_MIB", 0),
		AppDiskMiB:        intEnv(getenv, "HANGAR_APP_DISK_MIB", 0),
	}
	if d, err := time.ParseDuration(getenv("HANGAR_BUILD_STEP_TIMEOUT")); err == nil {
		c.BuildStepTimeout = d
	}
	if n, err := strconv.Atoi(getenv("HANGAR_BUILD_MEMORY_MIB")); err == nil {
		c.BuildMemoryMiB = n
	}
	if d, err := time.ParseDuration(getenv("HANGAR_HEALTH_TIMEOUT")); err == nil {
		c.HealthTimeout = d
	}
	if f, err := strconv.ParseFloat(getenv("HANGAR_DB_CPUS"), 64); err == nil {
		c.DBCPUs = f
	}
	if d, err := time.ParseDuration(getenv("HANGAR_LOG_MAX_AGE")); err == nil {
		c.LogMaxAge = d
	}
	if n, err := strconv.Atoi(getenv("HANGAR_PASSWORD_HASHES")); err == nil {
		c.PasswordHashes = n
	}
	if d, err := time.ParseDuration(getenv("HANGAR_METRICS_RETENTION")); err == nil {
		c.MetricsRetention = d
	}
	if d, err := time.ParseDuration(getenv("HANGAR_METRICS_INTERVAL")); err == nil {
		c.MetricsInterval = d
	}
	if n, err := strconv.Atoi(getenv("HANGAR_LOG_MAX_LINES")); err == nil {
		c.LogMaxLines = n
	}
	if n, err := strconv.ParseInt(getenv("HANGAR_LOG_MAX_BYTES"), 10, 64); err == nil {
		c.LogMaxBytes = n
	}
	for env, dst := range map[string]*int{
		"HANGAR_ORG_MAX_APPS":         &c.OrgMaxApps,
		"HANGAR_ORG_MAX_DB_INSTANCES": &c.OrgMaxDBInstances,
		"HANGAR_ORG_MAX_EXECUTORS":    &c.OrgMaxExecutors,
	} {
		if n, err := strconv.Atoi(getenv(env)); err == nil {
			*dst = n
		}
	}
	if s := getenv("HANGAR_PG_SETTINGS"); s != "" {
		c.PGSettings = parseSettings(s)
	}
	for step, d := range parseSettings(getenv("HANGAR_FAULT_STEP_DELAY")) {
		if dur, err := time.ParseDuration(d); err == nil {
			if c.StepDelay == nil {
				c.StepDelay = map[string]time.Duration{}
			}
			c.StepDelay[step] = dur
		}
	}
	if c.DataDir == "" {
		c.DataDir = defaultDataDir(getenv)
	}
	return c
}

func defaultDataDir(getenv Getenv) string {
	if os.Geteuid() == 0 {
		return "/var/lib/hangar"
	}
	if x := getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "hangar")
	}
	return filepath.Join(getenv("HOME"), ".local", "share", "hangar")
}

// parseSettings reads "a=b,c=d".
func parseSettings(s string) map[string]string {
	m := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok {
			m[k] = v
		}
	}
	return m
}

// list reads "a,b"; "" is none.
func list(s string) []string {
	var out []string
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			out = append(out, v)
		}
	}
	return out
}

// durationEnv reads a duration from the environment variable name, or
// returns def when it is unset or invalid.
func durationEnv(getenv Getenv, name string, def time.Duration) time.Duration {
	if d, err := time.ParseDuration(getenv(name)); err == nil {
		return d
	}
	return def
}

// intEnv reads an integer from the environment variable name, or returns
// def when it is unset or invalid.
func intEnv(getenv Getenv, name string, def int) int {
	if n, err := strconv.Atoi(getenv(name)); err == nil {
		return n
	}
	return def
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// ACME reports whether certificates come from an ACME CA.
func (c *Config) ACME() bool { return c.ACMEEmail != "" || c.ACMECA != "" }

// Validate checks the configuration and makes DataDir absolute.
// size: one check per field, in the order of Config.
func (c *Config) Validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("--data-dir is required"))
	} else if abs, err := filepath.Abs(c.DataDir); err == nil {
		c.DataDir = abs
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("--listen %q: want host:port", c.Listen))
	}
	if _, _, err := net.SplitHostPort(c.MetricsListen); c.MetricsListen != "" && err != nil {
		errs = append(errs, fmt.Errorf("--metrics-listen %q: want host:port", c.MetricsListen))
	}
	if c.Domain == "" || strings.ContainsAny(c.Domain, "/ ") {
		errs = append(errs, fmt.Errorf("--domain %q: want a host or host:port", c.Domain))
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		errs = append(errs, errors.New("--tls-cert and --tls-key go together"))
	}
	if c.ACME() && c.TLSCert != "" {
		errs = append(errs, errors.New("--tls-cert and ACME (--acme-email, --acme-ca) exclude each other: choose one certificate source"))
	}
	if u, err := url.Parse(c.ACMECA); c.ACMECA != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
		errs = append(errs, fmt.Errorf("--acme-ca %q: want the https:// URL of an ACME directory", c.ACMECA))
	}
	if c.ACMECARoots != "" && !c.ACME() {
		errs = append(errs, errors.New("--acme-ca-roots needs ACME (--acme-email or --acme-ca)"))
	}
	if c.ACMEHTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.ACMEHTTPListen); err != nil {
			errs = append(errs, fmt.Errorf("--acme-http-listen %q: want host:port", c.ACMEHTTPListen))
		}
		if !c.ACME() {
			errs = append(errs, errors.New("--acme-http-listen needs ACME (--acme-email or --acme-ca)"))
		}
	}
	switch c.Driver {
	case "sandbox", "netns":
	case "kubernetes":
		if c.Registry == "" {
			errs = append(errs, errors.New("--driver=kubernetes needs --registry: the registry the cluster pulls app images from"))
		}
	default:
		errs = append(errs, fmt.Errorf("--driver %q: want sandbox, kubernetes or netns", c.Driver))
	}
	for _, f := range []struct {
		flag string
		ps   []string
	}{{"--egress-allow", c.EgressAllow}, {"--egress-deny", c.EgressDeny}} {
		for _, p := range f.ps {
			if pp, err := netip.ParsePrefix(p); err != nil || !pp.Addr().Is4() {
				errs = append(errs, fmt.Errorf("%s %q: want an IPv4 prefix such as 10.1.0.0/16 (executors have no IPv6)", f.flag, p))
			}
		}
	}
	for _, r := range c.EgressResolvers {
		if _, err := netip.ParseAddr(r); err != nil {
			if _, err := netip.ParseAddrPort(r); err != nil {
				errs = append(errs, fmt.Errorf("--egress-resolver %q: want an IP address, optionally with a port", r))
			}
		}
	}
	if c.PasswordHashes < 0 {
		errs = append(errs, errors.New("--password-hashes must not be negative"))
	}
	if c.MetricsRetention < 0 || c.MetricsInterval < 0 || (c.MetricsInterval > 0 && c.MetricsInterval < time.Second) {
		errs = append(errs, fmt.Errorf("--metrics-retention must not be negative, and --metrics-interval at least 1s"))
	}
	if c.LogMaxAge < 0 || c.LogMaxLines < 0 || c.LogMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("log retention must not be negative"))
	}
	if c.IdleTimeout <= 0 || c.ReadHeaderTimeout <= 0 || c.BodyReadTimeout <= 0 || c.ShutdownTimeout <= 0 {
		errs = append(errs, fmt.Errorf("--idle-timeout, --read-header-timeout, --body-read-timeout and --shutdown-timeout must be positive"))
	}
	if c.MaxHeaderBytes <= 0 || c.MaxBodyBytes <= 0 {
		errs = append(errs, fmt.Errorf("--max-header-bytes and --max-body-bytes must be positive"))
	}
	if c.HealthTimeout <= 0 {
		errs = append(errs, fmt.Errorf("health timeout must be positive"))
	}
	if c.ReplicaID != "" && c.DatabaseURL == "" {
		errs = append(errs, errors.New("--replica-id needs --database-url: replicas share one metadata database"))
	}
	if c.ReplicaTimeout < time.Second {
		errs = append(errs, errors.New("--replica-timeout must be at least 1s"))
	}
	if _, _, err := c.DBPortRange(); err != nil {
		errs = append(errs, err)
	}
	if c.DBMemoryMiB < 0 || c.DBMemoryMiB > 0 && c.DBMemoryMiB < 64 || c.DBCPUs < 0 || c.DBPids < 0 || c.DBPids > 0 && c.DBPids < 32 {
		errs = append(errs, fmt.Errorf("database instance limits: want --db-memory-mib ≥ 64, --db-cpus > 0, --db-pids ≥ 32 (0: the default)"))
	}
	if c.AppInstalledMiB < 0 || c.AppDiskMiB < 0 {
		errs = append(errs, fmt.Errorf("app disk limits: want --app-installed-mib and --app-disk-mib ≥ 0 (0: the default)"))
	}
	if c.DBHost == "" {
		c.DBHost = c.Domain
		if h, _, err := net.SplitHostPort(c.Domain); err == nil {
			c.DBHost = h
		}
	}
	if c.ImageCache == "" {
		c.ImageCache = filepath.Join(c.DataDir, "images")
	} else if abs, err := filepath.Abs(c.ImageCache); err == nil {
		c.ImageCache = abs
	}
	if c.NPMCacheDir == "" {
		c.NPMCacheDir = filepath.Join(c.DataDir, "cache", "npm")
	}
	return errors.Join(errs...)
}

const defaultDBPorts = "15432-16431"

// DBPortRange returns DBPorts as its first port and count; first is -1 for
// "0" (any free port).
func (c *Config) DBPortRange() (first, count int, err error) {
	ports := or(c.DBPorts, defaultDBPorts)
	if ports == "0" {
		return -1, 0, nil
	}
	a, b, ok := strings.Cut(ports, "-")
	lo, err1 := strconv.Atoi(a)
	hi, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("--db-ports %q: want first-last, e.g. 15432-16431, or 0", ports)
	}
	return lo, hi - lo + 1, nil
}

// Default per-org limits. An org's executors cost memory (512 MiB each by
// default, so 40 commit 20 GiB) and processes; each managed database
// instance is a PostgreSQL server of its own with its WAL archive; apps
// cost little by themselves but each holds at least one executor. 20 apps
// with 2 executors each, or fewer apps with more, on 4 instances covers a
// team's services with a standby each, while one tenant alone cannot
// exhaust a host sized for a few such teams.
const (
	DefaultOrgMaxApps        = 20
	DefaultOrgMaxDBInstances = 4
	DefaultOrgMaxExecutors   = 40
)

// OrgLimits returns the per-org limits with defaults applied: 0 means the
// default and a negative value no limit (hangar.OrgLimits' 0).
func (c Config) OrgLimits() hangar.OrgLimits {
	limit := func(v, def int) int {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	return hangar.OrgLimits{
		Apps:        limit(c.OrgMaxApps, DefaultOrgMaxApps),
		DBInstances: limit(c.OrgMaxDBInstances, DefaultOrgMaxDBInstances),
		Executors:   limit(c.OrgMaxExecutors, DefaultOrgMaxExecutors),
	}
}
