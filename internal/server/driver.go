package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/build"
	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/kube"
	"github.com/hangar-oss/hangar/internal/runtime/netns"
	"github.com/hangar-oss/hangar/internal/runtime/sandbox"
	"github.com/hangar-oss/hangar/internal/tlsca"
)

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

// Driver is an executor driver that can clean up after an earlier run.
type Driver interface {
	runtime.Driver
	Cleanup(ctx context.Context) error
}

// closeDriver removes what the sandbox driver made for itself (its parent
// cgroup group) once the fleet has stopped its executors.
func closeDriver(drv Driver) error {
	switch d := drv.(type) {
	case *sandbox.Driver:
		return d.Close()
	case kubeDriver:
		return d.steps.Close()
	}
	return nil
}

// newDriver returns the configured executor driver, whose setup layers go
// on disks (nil: plain folders); dbCA is the PEM certificate of the CA of
// the database instances' certificates, for the kubernetes driver's Pods.
func newDriver(ctx context.Context, cfg config.Config, disks *image.Disks, dbCA []byte, log *slog.Logger) (Driver, error) {
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
		Subnet: cfg.Subnet, Prefix: cfg.NetworkPrefix, Egress: egress, Runtime: cfg.OCIRuntime,
		// Executors must not see Hangar's state: the metadata cluster, the
		// database instances, the archives and the other apps.
		HiddenPaths:   []string{cfg.DataDir},
		Images:        images,
		Disks:         disks,
		GoRoot:        goRoot(),
		StepMemoryMiB: cfg.BuildMemoryMiB,
	}, log.With("component", "sandbox"))
	if err != nil || cfg.Driver != "kubernetes" {
		return sb, err
	}
	return newKubeDriver(ctx, cfg, sb, images, dbCA, log)
}

// dbTLS returns how executors reach managed instances over TLS, or nil
// (see dbTLSHost).
func (s *Server) dbTLS() *deploy.DBTLS {
	if h := dbTLSHost(s.cfg.Config, s.dbCA() != nil); h != "" {
		return &deploy.DBTLS{Host: h, RootCert: kube.CAFile}
	}
	return nil
}

// dbTLSHost returns the host name executors' Pods reach managed instances
// at over TLS, verified (deploy.DBTLS), or "" when they cannot: only the
// kubernetes driver's forwards cross the network; only sandboxed instances
// have a TLS listener and a certificate (sandboxed); and a Pod resolves
// only a DNS name through its hostAliases (not an IP address, nor
// localhost, which its /etc/hosts already maps to itself).
func dbTLSHost(cfg config.Config, sandboxed bool) string {
	h := cfg.DBHost
	if cfg.Driver != "kubernetes" || !sandboxed ||
		h == "" || net.ParseIP(h) != nil || h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return ""
	}
	return h
}

// dbCA returns the PEM certificate of the CA that signs the managed
// instances' certificates, or nil when they have none (not sandboxed).
func (s *Server) dbCA() []byte {
	if s.cfg.UnsandboxedDatabases || os.Geteuid() != 0 {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ca.Certificate().Raw})
}

// dbSandbox returns the sandbox of managed database instances, or nil
// (instances run as postgres on loopback) when Hangar is not root or
// Config.UnsandboxedDatabases says so.
func (s *Server) dbSandbox() *dbinstance.Sandbox {
	cfg, ca := s.cfg, s.ca
	if s.cfg.UnsandboxedDatabases {
		return nil
	}
	if os.Geteuid() != 0 {
		s.log.Warn("not running as root: database instances are NOT sandboxed and not reachable from other hosts")
		return nil
	}
	first, count, _ := cfg.DBPortRange() // checked by Validate
	return &dbinstance.Sandbox{
		Prefix:      cfg.NetworkPrefix + "-db",
		MemoryBytes: int64(cfg.DBMemoryMiB) << 20, CPUs: cfg.DBCPUs, Pids: int64(cfg.DBPids),
		Listen:    cfg.DBListen,
		FirstPort: first, PortCount: count, MaxConnsPerIP: cfg.DBMaxConnsPerIP,
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
func buildRunner(drv Driver) build.Runner {
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

// appDisks returns the disks of the apps' version folders, setup layers
// and build caches (docs/disk.md), mounting again the version folders' of
// an earlier run (layers and caches are mounted on first use); nil (plain
// folders) with the development driver.
func appDisks(ctx context.Context, cfg config.Config, log *slog.Logger) *image.Disks {
	if cfg.Driver == "netns" {
		return nil
	}
	disks := image.NewDisks(image.DiskConfig{
		InstalledBytes: int64(cfg.AppInstalledMiB) << 20, WritableBytes: int64(cfg.AppDiskMiB) << 20,
		Logger: log.With("component", "disks"),
	})
	begin := time.Now()
	// A disk that cannot be mounted only fails its version's executors.
	if err := disks.Restore(ctx, filepath.Join(cfg.DataDir, "apps", "*", "versions", "*")); err != nil {
		log.Error("mount the apps' disks", "err", err)
	}
	log.Info("apps' disks mounted", "took", time.Since(begin))
	return disks
}

// versionDisks is disks as deploy takes them, for a sandboxed build
// only: never an interface holding a nil pointer.
func versionDisks(disks *image.Disks, sandboxed bool) deploy.Disks {
	if disks == nil || !sandboxed {
		return nil
	}
	return disks
}

// cacheDisks is disks as the builder takes them.
func cacheDisks(disks *image.Disks, sandboxed bool) build.CacheDisks {
	if disks == nil || !sandboxed {
		return nil
	}
	return disks
}
