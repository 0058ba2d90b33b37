// Package dbinstance manages the database instances apps' databases live on
// (SPEC §8). A managed instance is a PostgreSQL cluster of its own, run by
// pgcluster under a root directory and listening on 127.0.0.1, which
// archives its WAL continuously and keeps base backups, so that it can be
// restored to any point in time of its retention window as a new instance.
// A linked instance is a server of the user's own that Hangar checks and
// uses. On either, each app gets a database, a DBOS system database and a
// login role that can connect to those two and nothing else.
//
// It is a leaf: it imports only internal/hangar (and pgcluster, its own
// adapter for running clusters). It lends connections to the instances'
// databases (WithConn) but owns no DBOS SQL: that is internal/sysdb's.
// Only the composition roots import it; the orchestration uses it through
// interfaces of its own.
package dbinstance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/frontdoor"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/hangar-oss/hangar/internal/relay"
	"github.com/jackc/pgx/v5"
)

// Config configures a Manager.
type Config struct {
	// Dir is the root directory; required. Instance i lives in Dir/<i.ID>:
	// its cluster (see pgcluster.Config.DataDir), its WAL archive in
	// wal-archive and its base backups in base.
	Dir string
	// RunAsUser is the OS user the clusters run as. Default: see
	// pgcluster.Config.RunAsUser.
	RunAsUser string
	// Settings are extra server settings for every cluster (tests:
	// fsync=off). Default none.
	Settings map[string]string
	// ArchiveTimeout bounds how long a write may wait before its WAL
	// segment is archived (a restore archives the current one first
	// anyway). Default 1 minute.
	ArchiveTimeout time.Duration
	// BackupInterval is how often BackupIfDue takes a base backup of an
	// instance. Default 6 hours.
	BackupInterval time.Duration
	// Retention is how far back instances can be restored: base backups and
	// archived WAL older than needed for it are removed. Default 24 hours
	// (the PITR window of DBOS Cloud's free tier).
	Retention time.Duration
	// Sandbox, when set, runs each managed instance in a sandbox of its
	// own, with a port that users reach over TLS (see Sandbox); RunAsUser
	// is then unused. Default nil: instances run as RunAsUser and listen on
	// 127.0.0.1 only (development, and tests that run without root).
	Sandbox *Sandbox
	// Now returns the current time. Default time.Now.
	Now func() time.Time
	// Logger receives lifecycle events. Default: discard.
	Logger *slog.Logger
}

// Manager runs managed database instances. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	closed bool                 // StopAll ran: start nothing any more
	insts  map[string]*instance // by instance ID

	uidMu sync.Mutex // serializes allocating sandboxes' uids

	perIP *frontdoor.PerIP // caps each client's connections to the public ports

	pools sysPools // connections to the instances' system databases
}

// instance is the Manager's bookkeeping of one managed instance.
type instance struct {
	// mu serializes starting, stopping, destroying and restoring it.
	mu   sync.Mutex
	c    *pgcluster.Cluster // nil until first used
	ep   *relay.Server      // a sandboxed instance's port; nil until first used
	gone bool               // destroyed: do nothing more
	// backupMu allows one base backup at a time.
	backupMu sync.Mutex
}

// errStopped is returned once StopAll has run.
var errStopped = errors.New("database instances are stopping")

// New returns a Manager for the instances under cfg.Dir.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.BackupInterval == 0 {
		cfg.BackupInterval = 6 * time.Hour
	}
	if cfg.Retention == 0 {
		cfg.Retention = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Sandbox != nil {
		sb := *cfg.Sandbox
		sb.defaults()
		cfg.Sandbox = &sb
	}
	m := &Manager{cfg: cfg, log: log.With("component", "dbinstance"), insts: map[string]*instance{}}
	if cfg.Sandbox != nil {
		m.perIP = frontdoor.NewPerIP(cfg.Sandbox.MaxConnsPerIP)
	}
	return m
}

// Provision creates (on first call) and starts a managed cluster for inst,
// whose superuser is inst.AdminUser with inst.AdminPassword, and returns its
// port: inst.Port when non-zero, else a free one. The cluster archives its
// WAL continuously. Provision also revokes the default right of every role
// to connect to the maintenance databases. It is idempotent for the same
// inst.ID. An invalid AdminUser or an empty AdminPassword gives
// hangar.KindInvalid.
func (m *Manager) Provision(ctx context.Context, inst hangar.DBInstance) (port int, err error) {
	e, unlock, err := m.lock(inst)
	if err != nil {
		return 0, err
	}
	defer unlock()
	c, err := m.clusterOf(ctx, e, inst, inst.Port)
	if err != nil {
		return 0, err
	}
	if err := c.Start(ctx); err != nil {
		return 0, fmt.Errorf("provision database instance %s: %w", inst.ID, err)
	}
	// template0 does not accept connections; new databases get their own ACL.
	err = withConn(ctx, c.URL("postgres"), func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "REVOKE ALL ON DATABASE postgres FROM PUBLIC; REVOKE ALL ON DATABASE template1 FROM PUBLIC")
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("provision database instance %s: %w", inst.ID, err)
	}
	return e.port(), nil
}

// Start starts an instance provisioned earlier (after a server restart) on
// inst.Port, or adopts it if it is still running there.
func (m *Manager) Start(ctx context.Context, inst hangar.DBInstance) error {
	_, err := m.ensure(ctx, inst)
	return err
}

// Check makes sure a provisioned instance runs: when its server is not
// running (it died, or was never started by this process), Check starts it
// on inst.Port and reports restarted. It never creates a cluster.
func (m *Manager) Check(ctx context.Context, inst hangar.DBInstance) (restarted bool, err error) {
	return m.ensure(ctx, inst)
}

func (m *Manager) ensure(ctx context.Context, inst hangar.DBInstance) (started bool, err error) {
	if inst.Port == 0 {
		return false, fmt.Errorf("start database instance %s: no port recorded", inst.ID)
	}
	e, unlock, err := m.lock(inst)
	if err != nil {
		return false, err
	}
	defer unlock()
	// Refuse to initdb a fresh, empty cluster in place of a lost one.
	if _, err := os.Stat(filepath.Join(m.dir(inst), "data", "PG_VERSION")); err != nil {
		return false, fmt.Errorf("start database instance %s: not provisioned: %w", inst.ID, err)
	}
	c, err := m.clusterOf(ctx, e, inst, inst.Port)
	if err != nil {
		return false, err
	}
	running, err := c.Running(ctx)
	if err != nil {
		return false, err
	}
	if running {
		// A failed renewal is not the server being down.
		if err := m.renewTLS(ctx, c, inst); err != nil {
			m.log.WarnContext(ctx, "renew certificate", "dbinstance", inst.ID, "err", err)
		}
		return false, nil
	}
	m.pools.closeInstance(inst.ID) // connections to the server that stopped
	if err := c.Start(ctx); err != nil {
		return false, fmt.Errorf("start database instance %s: %w", inst.ID, err)
	}
	return true, nil
}

// SetAdminPassword changes the password of inst's admin role to password
// (inst holds the current one) and, for a managed instance, the one the
// Manager connects with. The password is sent as a SCRAM verifier when it
// is printable ASCII, so the server never sees (nor logs) it in clear.
func (m *Manager) SetAdminPassword(ctx context.Context, inst hangar.DBInstance, password string) error {
	if password == "" || strings.ContainsRune(password, 0) {
		return hangar.Errorf(hangar.KindInvalid, "the new password must be non-empty and contain no NUL characters")
	}
	if err := hangar.ValidatePGIdent("admin user name", inst.AdminUser); err != nil {
		return err
	}
	err := withConn(ctx, AdminURL(inst, "postgres"), func(conn *pgx.Conn) error {
		_, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{inst.AdminUser}.Sanitize()+" PASSWORD "+pgcluster.PasswordLiteral(password))
		return err
	})
	if err != nil {
		return fmt.Errorf("set admin password of %s: %w", inst.ID, err)
	}
	m.pools.closeInstance(inst.ID) // their sessions outlive the old password
	if inst.IsLinked {
		return nil
	}
	m.mu.Lock()
	e := m.insts[inst.ID]
	m.mu.Unlock()
	if e != nil {
		e.mu.Lock()
		defer e.mu.Unlock()
		if e.c != nil {
			return e.c.SetPassword(password)
		}
	}
	return nil
}

// lock returns inst's bookkeeping, locked; unlock releases it. It fails
// once the Manager is stopped or inst destroyed.
func (m *Manager) lock(inst hangar.DBInstance) (e *instance, unlock func(), err error) {
	if err := validateID(inst.ID); err != nil {
		return nil, nil, err
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, nil, errStopped
	}
	e = m.insts[inst.ID]
	if e == nil {
		e = &instance{}
		m.insts[inst.ID] = e
	}
	m.mu.Unlock()
	e.mu.Lock()
	m.mu.Lock()
	closed := m.closed
	m.mu.Unlock()
	switch {
	case closed:
		e.mu.Unlock()
		return nil, nil, errStopped
	case e.gone:
		e.mu.Unlock()
		return nil, nil, fmt.Errorf("database instance %s was destroyed", inst.ID)
	}
	return e, e.mu.Unlock, nil
}

// running returns inst's cluster if this Manager started or adopted it.
func (m *Manager) running(inst hangar.DBInstance) *pgcluster.Cluster {
	m.mu.Lock()
	e := m.insts[inst.ID]
	m.mu.Unlock()
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.c
}

// clusterOf returns e's cluster, creating it with port (a free one when 0)
// on first use, with its endpoint when sandboxed; e.mu is held.
func (m *Manager) clusterOf(ctx context.Context, e *instance, inst hangar.DBInstance, port int) (*pgcluster.Cluster, error) {
	if e.c != nil {
		return e.c, nil
	}
	if m.cfg.Sandbox == nil {
		if port == 0 {
			var err error
			if port, err = pgcluster.FreePort(); err != nil {
				return nil, err
			}
		}
		c, err := m.newCluster(inst, port, 0)
		if err != nil {
			return nil, err
		}
		e.c = c
		return c, nil
	}
	uid, err := m.uidFor(ctx, inst)
	if err != nil {
		return nil, fmt.Errorf("database instance %s: %w", inst.ID, err)
	}
	c, err := m.newCluster(inst, port, uid)
	if err != nil {
		return nil, err
	}
	lns, err := m.listenPort(port)
	if err != nil {
		return nil, fmt.Errorf("database instance %s: listen: %w", inst.ID, err)
	}
	e.c = c
	e.ep = startEndpoint(lns, filepath.Join(m.dir(inst), ".s.PGSQL.5432"), c.Dial, m.log.With("dbinstance", inst.ID))
	return c, nil
}

// port returns the port users and relays reach the instance at; e.mu is
// held and e.c set.
func (e *instance) port() int {
	if e.ep != nil {
		return e.ep.Addr().(*net.TCPAddr).Port
	}
	return e.c.Port()
}

// newCluster returns inst's cluster, sandboxed as uid unless uid is 0.
func (m *Manager) newCluster(inst hangar.DBInstance, port int, uid uint32) (*pgcluster.Cluster, error) {
	if m.cfg.Dir == "" {
		return nil, errors.New("dbinstance: Config.Dir is required")
	}
	if err := hangar.ValidatePGIdent("admin user name", inst.AdminUser); err != nil {
		return nil, err
	}
	if inst.AdminPassword == "" {
		return nil, hangar.Errorf(hangar.KindInvalid, "database instance %s has no admin password", inst.Name)
	}
	cfg := pgcluster.Config{
		DataDir:        m.dir(inst),
		Port:           port,
		Superuser:      inst.AdminUser,
		Password:       inst.AdminPassword,
		RunAsUser:      m.cfg.RunAsUser,
		Settings:       m.cfg.Settings,
		ArchiveDir:     m.archiveDir(inst),
		ArchiveTimeout: m.cfg.ArchiveTimeout,
		Logger:         m.log.With("dbinstance", inst.ID),
	}
	if uid != 0 {
		cfg.RunAsUser, cfg.Sandbox = "", m.sandboxed(inst, uid)
		if cert := m.cfg.Sandbox.Certificate; cert != nil {
			var err error
			if cfg.TLSCert, cfg.TLSKey, err = cert(); err != nil {
				return nil, fmt.Errorf("database instance %s: certificate: %w", inst.ID, err)
			}
		}
	}
	c, err := pgcluster.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("database instance %s: %w", inst.ID, err)
	}
	return c, nil
}

func (m *Manager) dir(inst hangar.DBInstance) string { return filepath.Join(m.cfg.Dir, inst.ID) }

// archiveDir is where inst's WAL is archived.
func (m *Manager) archiveDir(inst hangar.DBInstance) string {
	return filepath.Join(m.dir(inst), "wal-archive")
}

// validateID checks that an instance ID names one directory under Dir.
func validateID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`+"\x00") {
		return fmt.Errorf("invalid database instance ID %q", id)
	}
	return nil
}
