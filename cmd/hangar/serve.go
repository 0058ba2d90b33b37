package main

import (
	"io"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/server"
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
			log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
			srv, err := server.New(cmd.Context(), server.Config{Config: *cfg, Logger: log, Stdout: stdout})
			if err != nil {
				return err
			}
			return srv.Run(cmd.Context())
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
	f.IntVar(&cfg.HTTP1Loops, "http1-loops", cfg.HTTP1Loops, "event loops serving HTTP/1.1 connections and HTTP/2 ones to apps' hosts; 0 = half the CPUs (at least 1), negative = a goroutine per connection and net/http for all HTTP/2 (env HANGAR_HTTP1_LOOPS)")
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
	f.StringVar(&cfg.Driver, "driver", cfg.Driver, "executor driver: sandbox (crun or runc), kubernetes (Pods) or netns (unsandboxed, for development only) (env HANGAR_DRIVER)")
	f.StringVar(&cfg.OCIRuntime, "oci-runtime", cfg.OCIRuntime, "the sandbox's OCI runtime for executors and builds: crun or runc (or a path); default crun when installed and the host's cgroups suit it, else runc (env HANGAR_OCI_RUNTIME)")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", cfg.Kubeconfig, "kubeconfig of the cluster of --driver=kubernetes; default: the in-cluster config (env HANGAR_KUBECONFIG)")
	f.StringVar(&cfg.K8sNamespace, "k8s-namespace", cfg.K8sNamespace, "namespace of the executors' Pods (env HANGAR_K8S_NAMESPACE)")
	f.StringVar(&cfg.RuntimeClass, "runtime-class", cfg.RuntimeClass, "RuntimeClass of the executors' Pods (gVisor, Kata); default the cluster's (env HANGAR_RUNTIME_CLASS)")
	f.StringVar(&cfg.K8sForwardAddr, "k8s-forward-addr", cfg.K8sForwardAddr, "IP address of Hangar the executors' Pods reach their database forwards at; default Hangar's address towards the API server (env HANGAR_K8S_FORWARD_ADDR)")
	f.StringVar(&cfg.Registry, "registry", cfg.Registry, "registry app images are pushed to and pulled from with --driver=kubernetes: host[:port][/path], http:// for plain HTTP (env HANGAR_REGISTRY)")
	f.StringVar(&cfg.TLSCert, "tls-cert", cfg.TLSCert, "PEM certificate (e.g. *.<domain> and <domain>, then its chain) served instead of the local CA's; reloaded when it changes (env HANGAR_TLS_CERT)")
	f.StringVar(&cfg.TLSKey, "tls-key", cfg.TLSKey, "PEM key of --tls-cert (env HANGAR_TLS_KEY)")
	f.StringVar(&cfg.ACMEEmail, "acme-email", cfg.ACMEEmail, "get certificates from an ACME CA (Let's Encrypt unless --acme-ca), with this account contact (env HANGAR_ACME_EMAIL)")
	f.StringVar(&cfg.ACMECA, "acme-ca", cfg.ACMECA, "ACME directory URL; setting it turns ACME on (env HANGAR_ACME_CA)")
	f.StringVar(&cfg.ACMECARoots, "acme-ca-roots", cfg.ACMECARoots, "PEM roots to verify a private ACME CA's HTTPS with (env HANGAR_ACME_CA_ROOTS)")
	f.StringVar(&cfg.ACMEHTTPListen, "acme-http-listen", cfg.ACMEHTTPListen, "plain-HTTP address (e.g. :80) for ACME HTTP-01 challenges, redirecting the rest to HTTPS; empty = TLS-ALPN-01 only (env HANGAR_ACME_HTTP_LISTEN)")
	f.IntVar(&cfg.PasswordHashes, "password-hashes", cfg.PasswordHashes, "password hashes (19 MiB each) computed at once; more sign-ins wait up to 2 s, then get 429; 0 = 2 × CPUs (env HANGAR_PASSWORD_HASHES)")
	f.StringVar(&cfg.ReplicaID, "replica-id", cfg.ReplicaID, "run as one of several replicas over --database-url and a shared --data-dir, each with its own --network-prefix: this replica's ID, kept across restarts; empty = a single process (env HANGAR_REPLICA_ID)")
	f.DurationVar(&cfg.ReplicaTimeout, "replica-timeout", cfg.ReplicaTimeout, "how long a replica's heartbeat may be silent before another replica takes over its apps and workflows (env HANGAR_REPLICA_TIMEOUT)")
	f.StringVar(&cfg.NetworkPrefix, "network-prefix", cfg.NetworkPrefix, "name prefix of executor network namespaces (env HANGAR_NETWORK_PREFIX)")
	f.StringVar(&cfg.Subnet, "subnet", cfg.Subnet, "IPv4 pool for executor networks (env HANGAR_SUBNET)")
	f.StringVar(&cfg.DBListen, "db-listen", cfg.DBListen, "host address managed database instances' TLS ports listen on; empty = every address (env HANGAR_DB_LISTEN)")
	f.StringVar(&cfg.DBPorts, "db-ports", cfg.DBPorts, "port range of managed database instances, first-last (one port each), or 0 for any free port; empty = 15432-16431 (env HANGAR_DB_PORTS)")
	f.IntVar(&cfg.DBMaxConnsPerIP, "db-max-conns-per-ip", cfg.DBMaxConnsPerIP, "cap on connections from one client IP to the database ports, all together; 0 = 64, negative = no cap (env HANGAR_DB_MAX_CONNS_PER_IP)")
	f.StringVar(&cfg.DBHost, "db-host", cfg.DBHost, "host name or IP address users connect to database instances at, shown by db url and named by their certificate; empty = the host of --domain (env HANGAR_DB_HOST)")
	f.IntVar(&cfg.DBMemoryMiB, "db-memory-mib", cfg.DBMemoryMiB, "memory limit of each managed database instance, MiB; 0 = 1024 (env HANGAR_DB_MEMORY_MIB)")
	f.Float64Var(&cfg.DBCPUs, "db-cpus", cfg.DBCPUs, "CPU limit of each managed database instance; 0 = 1 (env HANGAR_DB_CPUS)")
	f.IntVar(&cfg.DBPids, "db-pids", cfg.DBPids, "process limit of each managed database instance; 0 = 512 (env HANGAR_DB_PIDS)")
	f.StringSliceVar(&cfg.EgressAllow, "egress-allow", cfg.EgressAllow, "IPv4 prefixes executors may reach although private (RFC 1918, 100.64.0.0/10), comma-separated or repeated (env HANGAR_EGRESS_ALLOW)")
	f.StringSliceVar(&cfg.EgressDeny, "egress-deny", cfg.EgressDeny, "IPv4 prefixes executors never reach, besides the private ones; wins over --egress-allow; 0.0.0.0/0 = no egress (env HANGAR_EGRESS_DENY)")
	f.StringSliceVar(&cfg.EgressResolvers, "egress-resolver", cfg.EgressResolvers, "DNS servers (ip or ip:port) that executors' resolvers forward to; default the nameservers of /etc/resolv.conf (env HANGAR_EGRESS_RESOLVERS)")
	f.StringVar(&cfg.ImageCache, "image-cache", cfg.ImageCache, "directory of the images builds and executors run on: Debian base, Node.js, setup layers; default <data-dir>/images (env HANGAR_IMAGE_CACHE)")
	f.DurationVar(&cfg.BuildStepTimeout, "build-step-timeout", cfg.BuildStepTimeout, "wall-clock limit of each setup, install and build command; 0 = 30m (env HANGAR_BUILD_STEP_TIMEOUT)")
	f.IntVar(&cfg.AppInstalledMiB, "app-installed-mib", cfg.AppInstalledMiB, "what a build may write to a version's folder while it runs; 0 = 2048 (env HANGAR_APP_INSTALLED_MIB)")
	f.IntVar(&cfg.AppDiskMiB, "app-disk-mib", cfg.AppDiskMiB, "what a version's executors may write beyond its installed app; 0 = 2048 (env HANGAR_APP_DISK_MIB)")
	f.IntVar(&cfg.BuildMemoryMiB, "build-memory-mib", cfg.BuildMemoryMiB, "memory limit of each sandboxed build command; 0 = 2048 (env HANGAR_BUILD_MEMORY_MIB)")
	return cmd
}
