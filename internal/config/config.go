// Package config holds the server's configuration: defaults, environment
// (HANGAR_*) and flags, validated once by the composition root. It is a leaf:
// it imports only internal/hangar.
package config

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
	// Driver runs executors: "sandbox" (runc: own uid, read-only root,
	// namespaces, cgroup limits) or "netns" (an unsandboxed development
	// driver: a plain process in its own network namespace). Default
	// "sandbox".
	Driver string
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
	// NPMCacheDir is npm's cache shared by builds. Default DataDir/cache/npm.
	NPMCacheDir string
	// PipIndexURL and PipFindLinks configure Python installs. Default: pip's.
	PipIndexURL, PipFindLinks string
	// LogMaxAge and LogMaxLines bound how long and how many log lines are
	// kept per app. Default 7 days and 1,000,000 lines.
	LogMaxAge   time.Duration
	LogMaxLines int
	// StepDelay pauses deploy steps after they start, for crash tests only:
	// HANGAR_FAULT_STEP_DELAY="migration=30s,upload=10s". Default none.
	StepDelay map[string]time.Duration
	// PGSettings are extra settings for every PostgreSQL cluster Hangar runs
	// (for example fsync=off in tests), as name=value pairs.
	PGSettings map[string]string
}

// Getenv reads one environment variable.
type Getenv func(string) string

// Defaults returns the configuration with environment overrides applied:
// flags, applied by the caller afterwards, override both.
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
		Driver:          or(getenv("HANGAR_DRIVER"), "sandbox"),
		NetworkPrefix:   or(getenv("HANGAR_NETWORK_PREFIX"), "hg"),
		Subnet:          or(getenv("HANGAR_SUBNET"), "10.213.0.0/16"),
		HealthTimeout:   2 * time.Minute,
		EgressAllow:     list(getenv("HANGAR_EGRESS_ALLOW")),
		EgressDeny:      list(getenv("HANGAR_EGRESS_DENY")),
		EgressResolvers: list(getenv("HANGAR_EGRESS_RESOLVERS")),
		PipIndexURL:     getenv("HANGAR_PIP_INDEX_URL"),
		PipFindLinks:    getenv("HANGAR_PIP_FIND_LINKS"),
		ImageCache:      getenv("HANGAR_IMAGE_CACHE"),
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
	if d, err := time.ParseDuration(getenv("HANGAR_LOG_MAX_AGE")); err == nil {
		c.LogMaxAge = d
	}
	if n, err := strconv.Atoi(getenv("HANGAR_PASSWORD_HASHES")); err == nil {
		c.PasswordHashes = n
	}
	if n, err := strconv.Atoi(getenv("HANGAR_LOG_MAX_LINES")); err == nil {
		c.LogMaxLines = n
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

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// ACME reports whether certificates come from an ACME CA.
func (c *Config) ACME() bool { return c.ACMEEmail != "" || c.ACMECA != "" }

// Validate checks the configuration and makes DataDir absolute.
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
	if c.ACMEHTTPListen != "" {
		if _, _, err := net.SplitHostPort(c.ACMEHTTPListen); err != nil {
			errs = append(errs, fmt.Errorf("--acme-http-listen %q: want host:port", c.ACMEHTTPListen))
		}
		if !c.ACME() {
			errs = append(errs, errors.New("--acme-http-listen needs ACME (--acme-email or --acme-ca)"))
		}
	}
	if c.Driver != "sandbox" && c.Driver != "netns" {
		errs = append(errs, fmt.Errorf("--driver %q: want sandbox or netns", c.Driver))
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
	if c.LogMaxAge < 0 || c.LogMaxLines < 0 {
		errs = append(errs, fmt.Errorf("log retention must not be negative"))
	}
	if c.HealthTimeout <= 0 {
		errs = append(errs, fmt.Errorf("health timeout must be positive"))
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
