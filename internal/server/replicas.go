package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/hangar-oss/hangar/internal/config"
	"github.com/hangar-oss/hangar/internal/databases"
	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/replica"
)

// executorID is this process's DBOS executor ID: its replica ID, or
// "hangar" when it runs alone.
func executorID(cfg Config) string { return cmp.Or(cfg.ReplicaID, "hangar") }

// settle is how long an operation may go without a workflow before it is
// released: at once for one process, a heartbeat timeout with replicas.
func settle(cfg config.Config) time.Duration {
	if cfg.ReplicaID == "" {
		return 0
	}
	return cfg.ReplicaTimeout
}

// joinReplicas, when this process is one of several replicas
// (docs/replicas.md), records it alive before it starts anything under
// its network prefix: while another replica still removes what this
// one's last run left, it waits.
func (s *Server) joinReplicas(ctx context.Context, p *parts) error {
	if s.cfg.ReplicaID == "" {
		return nil
	}
	reg, err := replica.Join(ctx, p.st.Pool(), replica.Config{
		ID: s.cfg.ReplicaID, Prefix: s.cfg.NetworkPrefix, Timeout: s.cfg.ReplicaTimeout, Addr: s.replicaAddr(),
		TakeOver: func(ctx context.Context, dead replica.Replica) error { return s.takeOver(ctx, p, dead) },
		Logger:   s.log,
	})
	if err != nil {
		return err
	}
	p.reg = reg
	// Closed after the executors stopped and the last beat: the next
	// replica to look takes this one's apps over at once.
	s.onClose(func(ctx context.Context) error {
		if err := reg.Leave(ctx); err != nil {
			return fmt.Errorf("leave the replicas: %w", err)
		}
		return nil
	})
	// From now on: starting the apps may take longer than the timeout.
	s.goRun(ctx, func(ctx context.Context) {
		if err := reg.Beat(ctx); err != nil {
			s.fatal <- err
		}
	})
	return nil
}

// fleetRouter is the router the fleet sets routes on: the local one, or
// with replicas the routes every replica shares.
func (s *Server) fleetRouter(p *parts, local fleet.Router) fleet.Router {
	if p.reg == nil {
		return local
	}
	p.routes = replica.NewRoutes(p.st.Pool(), local, replica.RoutesConfig{
		Replica: s.cfg.ReplicaID, Logger: s.log,
		// p.fl exists by the time Routes runs.
		Lost: func(ctx context.Context, host string) { p.fl.Handover(ctx, host) },
	})
	return p.routes
}

// elsewhere reports whether another replica owns a's route, and so runs
// its executors (a dead one's are resumed when it is taken over).
func (s *Server) elsewhere(p *parts) func(context.Context, hangar.App) bool {
	if p.reg == nil {
		return nil
	}
	return func(ctx context.Context, a hangar.App) bool {
		owner, err := p.routes.Owner(ctx, a.Hostname(s.cfg.Domain))
		if err != nil {
			s.log.ErrorContext(ctx, "look up the replica serving an app; serving it here", "app", a.Name, "err", err)
			return false
		}
		return owner != "" && owner != s.cfg.ReplicaID
	}
}

// instanceOwners says which replica runs each managed database instance:
// nil (this process runs them all) without --replica-id.
func instanceOwners(p *parts) databases.Owners {
	if p.reg == nil {
		return nil
	}
	return p.reg
}

// runReplicas shares routes and takes dead replicas over until the
// server closes; it starts once this replica's services run.
func (s *Server) runReplicas(ctx context.Context, p *parts) {
	if p.reg == nil {
		return
	}
	s.goRun(ctx, p.routes.Run)
	s.goRun(ctx, p.reg.Watch)
}

// takeOver removes the executors of a dead replica, resumes here the apps
// it served and recovers its DBOS workflows (docs/replicas.md).
func (s *Server) takeOver(ctx context.Context, p *parts, dead replica.Replica) error {
	if err := s.removeExecutors(ctx, p, dead.Prefix); err != nil {
		return fmt.Errorf("remove the executors of replica %s: %w", dead.ID, err)
	}
	// Before the apps, which use them.
	if err := s.takeInstances(ctx, p, dead); err != nil {
		return err
	}
	err := p.svc.ResumeApps(ctx, func(a hangar.App) bool {
		owner, err := p.routes.Owner(ctx, a.Hostname(s.cfg.Domain))
		return err == nil && owner == dead.ID
	})
	if err != nil {
		return err
	}
	if err := p.routes.Drop(ctx, dead.ID); err != nil {
		return fmt.Errorf("drop the routes of replica %s: %w", dead.ID, err)
	}
	n, err := p.svc.RecoverWorkflows(ctx, dead.ID)
	if err != nil {
		return err
	}
	// One it died before starting would hold its app forever.
	if err := p.svc.ReleaseInterrupted(ctx); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "resumed a dead replica's apps and workflows", "replica", dead.ID, "workflows", n)
	return nil
}

// removeExecutors removes every executor, build step and network a dead
// replica left under its network prefix: on this host, and with the
// kubernetes driver its Pods.
func (s *Server) removeExecutors(ctx context.Context, p *parts, prefix string) error {
	switch {
	case s.cfg.Driver != nil:
		return nil // an injected driver (tests) runs in the process that died
	case prefix == s.cfg.NetworkPrefix:
		return fmt.Errorf("a dead replica has this replica's network prefix %q: give each its own", prefix)
	}
	cfg := s.cfg.Config
	if k, ok := p.drv.(kubeDriver); ok {
		// Its Pods by their prefix label; its build steps ran in a
		// sandbox on its own host, removed below when that is this one.
		if err := k.RemovePrefix(ctx, prefix); err != nil {
			return err
		}
		cfg.Driver = "sandbox"
	}
	cfg.NetworkPrefix = prefix
	drv, err := newDriver(ctx, cfg, nil, nil, s.log.With("component", "takeover"))
	if err != nil {
		return err
	}
	return drv.Cleanup(ctx)
}

// takeInstances makes this replica run the managed database instances
// the dead one ran: it stops the servers that one left running (each
// sandboxed one is a container named after its prefix), then starts here
// those that were available. One being provisioned or restored is
// started by its workflow, which RecoverWorkflows resumes here.
func (s *Server) takeInstances(ctx context.Context, p *parts, dead replica.Replica) error {
	ids, err := p.reg.Inherit(ctx, dead.ID)
	if err != nil || len(ids) == 0 {
		return err
	}
	if sb := s.dbSandbox(); sb != nil && dead.Prefix != s.cfg.NetworkPrefix {
		sb.Prefix = dead.Prefix + "-db"
		left := dbinstance.New(dbinstance.Config{
			Dir: filepath.Join(s.cfg.DataDir, "instances"), Sandbox: sb, Logger: s.log.With("component", "takeover"),
		})
		for _, id := range ids {
			inst, err := p.st.DBInstanceByID(ctx, id)
			if hangar.KindOf(err) == hangar.KindNotFound {
				inst = hangar.DBInstance{ID: id} // destroyed meanwhile: its files may be left
			} else if err != nil {
				return err
			}
			if err := left.Stop(ctx, inst); err != nil {
				return fmt.Errorf("stop database instance %s of replica %s: %w", id, dead.ID, err)
			}
		}
		if err := left.StopAll(ctx); err != nil { // and its cgroup parent
			return err
		}
	}
	// Without a sandbox, a server left running is adopted as it is.
	return p.dbs.StartInstances(ctx, ids)
}

// replicaAddr is the address the other replicas forward requests to: the
// HTTPS port's, with this host's name when it listens on every address.
func (s *Server) replicaAddr() string {
	addr := s.cfg.Listen
	if s.cfg.Listener != nil {
		addr = s.cfg.Listener.Addr().String()
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		if host, err = os.Hostname(); err != nil {
			return ""
		}
	}
	return net.JoinHostPort(host, port)
}

// forwardedBy marks a request one replica forwarded to another, which
// answers it itself.
const forwardedBy = "Hangar-Forwarded-By"

// forwardExecutors sends the API requests about an app's executors (the
// list with their stats, their events, `app cmd`), which only the replica
// running them can answer, to that replica's HTTPS port, with the
// caller's own credentials, which every replica checks alike: any replica
// answers them (docs/replicas.md).
func (s *Server) forwardExecutors(p *parts, api http.Handler) http.Handler {
	if p.reg == nil {
		return api
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	roots.AddCert(s.ca.Certificate())
	domainHost := s.cfg.Domain
	if h, _, err := net.SplitHostPort(domainHost); err == nil {
		domainHost = h
	}
	type addrKey struct{}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: "https", Host: r.In.Context().Value(addrKey{}).(string)})
			r.Out.Host = r.In.Host
			r.Out.Header.Set(forwardedBy, s.cfg.ReplicaID)
		},
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{ServerName: domainHost, RootCAs: roots, MinVersion: tls.VersionTLS12},
			IdleConnTimeout: time.Minute,
		},
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	forward := func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(forwardedBy) == "" {
			ctx := r.Context()
			owner, err := p.routes.Owner(ctx, r.PathValue("org")+"-"+r.PathValue("app")+"."+s.cfg.Domain)
			if err == nil && owner != "" && owner != s.cfg.ReplicaID {
				addr, err := p.reg.Addr(ctx, owner)
				if err == nil && addr != "" {
					proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, addrKey{}, addr)))
					return
				}
			}
			if err != nil {
				s.log.WarnContext(ctx, "find the replica running an app's executors; answering here", "err", err)
			}
		}
		api.ServeHTTP(w, r)
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	for _, pattern := range []string{
		"GET /hangar/v1/{org}/applications/{app}/executors",
		"GET /hangar/v1/{org}/applications/{app}/events",
		"POST /vmsadmin/{org}/applications/{app}/vms/{executor}/vmcmd",
	} {
		mux.HandleFunc(pattern, forward)
	}
	return mux
}
