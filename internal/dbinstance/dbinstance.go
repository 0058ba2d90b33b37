// Package dbinstance manages the database instances apps' databases live on
// (SPEC §8). A managed instance is a PostgreSQL cluster of its own, run by
// pgcluster under a root directory and listening on 127.0.0.1; on it, each
// app gets a database, a DBOS system database and a login role that can
// connect to those two and nothing else.
//
// It is a leaf: it imports only internal/hangar (and pgcluster, its own
// adapter for running clusters).
package dbinstance

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/jackc/pgx/v5"
)

// Config configures a Manager.
type Config struct {
	// Dir is the root directory; required. Instance i lives in Dir/<i.ID>.
	Dir string
	// RunAsUser is the OS user the clusters run as. Default: see
	// pgcluster.Config.RunAsUser.
	RunAsUser string
	// Settings are extra server settings for every cluster (tests:
	// fsync=off). Default none.
	Settings map[string]string
	// Logger receives lifecycle events. Default: discard.
	Logger *slog.Logger
}

// Manager runs managed database instances. Its methods are safe for
// concurrent use.
type Manager struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	clusters map[string]*pgcluster.Cluster // by instance ID: started or adopted
}

// New returns a Manager for the instances under cfg.Dir.
func New(cfg Config) *Manager {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Manager{cfg: cfg, log: log.With("component", "dbinstance"), clusters: map[string]*pgcluster.Cluster{}}
}

// Provision creates (on first call) and starts a managed cluster for inst,
// whose superuser is inst.AdminUser with inst.AdminPassword, and returns its
// port: inst.Port when non-zero, else a free one. It also revokes the
// default right of every role to connect to the maintenance databases.
// Provision is idempotent for the same inst.ID. An invalid AdminUser or an
// empty AdminPassword gives hangar.KindInvalid.
func (m *Manager) Provision(ctx context.Context, inst hangar.DBInstance) (port int, err error) {
	c, err := m.cluster(inst, inst.Port)
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
	return c.Port(), nil
}

// Start starts an instance provisioned earlier (after a server restart) on
// inst.Port, or adopts it if it is still running there.
func (m *Manager) Start(ctx context.Context, inst hangar.DBInstance) error {
	if inst.Port == 0 {
		return fmt.Errorf("start database instance %s: no port recorded", inst.ID)
	}
	// Refuse to initdb a fresh, empty cluster in place of a lost one.
	if _, err := os.Stat(m.dir(inst)); err != nil {
		return fmt.Errorf("start database instance %s: not provisioned: %w", inst.ID, err)
	}
	c, err := m.cluster(inst, inst.Port)
	if err != nil {
		return err
	}
	if err := c.Start(ctx); err != nil {
		return fmt.Errorf("start database instance %s: %w", inst.ID, err)
	}
	return nil
}

// StopAll stops every cluster this Manager started or adopted.
func (m *Manager) StopAll(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	var errs []error
	for id, c := range m.clusters {
		if err := c.Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("stop database instance %s: %w", id, err))
			continue
		}
		delete(m.clusters, id)
	}
	return errors.Join(errs...)
}

// Destroy stops inst's cluster and removes its files. Destroying an
// instance that does not exist is not an error.
func (m *Manager) Destroy(ctx context.Context, inst hangar.DBInstance) error {
	if err := validateID(inst.ID); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	dir := m.dir(inst)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		delete(m.clusters, inst.ID)
		return nil
	}
	c := m.clusters[inst.ID]
	if c == nil {
		// Stop ignores the port; any valid one does when none was recorded.
		port := cmp.Or(inst.Port, 5432)
		var err error
		if c, err = m.newCluster(inst, port); err != nil {
			return err
		}
	}
	if err := c.Stop(ctx); err != nil {
		return fmt.Errorf("destroy database instance %s: %w", inst.ID, err)
	}
	delete(m.clusters, inst.ID)
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("destroy database instance %s: %w", inst.ID, err)
	}
	return nil
}

// cluster returns the Manager's cluster for inst, creating it with port (a
// free one when 0) on first use.
func (m *Manager) cluster(inst hangar.DBInstance, port int) (*pgcluster.Cluster, error) {
	if err := validateID(inst.ID); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if c := m.clusters[inst.ID]; c != nil {
		return c, nil
	}
	if port == 0 {
		var err error
		if port, err = pgcluster.FreePort(); err != nil {
			return nil, err
		}
	}
	c, err := m.newCluster(inst, port)
	if err != nil {
		return nil, err
	}
	m.clusters[inst.ID] = c
	return c, nil
}

func (m *Manager) newCluster(inst hangar.DBInstance, port int) (*pgcluster.Cluster, error) {
	if m.cfg.Dir == "" {
		return nil, errors.New("dbinstance: Config.Dir is required")
	}
	if err := hangar.ValidatePGIdent("admin user name", inst.AdminUser); err != nil {
		return nil, err
	}
	if inst.AdminPassword == "" {
		return nil, hangar.Errorf(hangar.KindInvalid, "database instance %s has no admin password", inst.Name)
	}
	c, err := pgcluster.New(pgcluster.Config{
		DataDir:   m.dir(inst),
		Port:      port,
		Superuser: inst.AdminUser,
		Password:  inst.AdminPassword,
		RunAsUser: m.cfg.RunAsUser,
		Settings:  m.cfg.Settings,
		Logger:    m.log.With("dbinstance", inst.ID),
	})
	if err != nil {
		return nil, fmt.Errorf("database instance %s: %w", inst.ID, err)
	}
	return c, nil
}

func (m *Manager) dir(inst hangar.DBInstance) string { return filepath.Join(m.cfg.Dir, inst.ID) }

// validateID checks that an instance ID names one directory under Dir.
func validateID(id string) error {
	if id == "" || id == "." || id == ".." || strings.ContainsAny(id, `/\`+"\x00") {
		return fmt.Errorf("invalid database instance ID %q", id)
	}
	return nil
}

// AdminURL returns the instance's superuser URL for database db: at
// inst.Host for a linked instance, on loopback for a managed one.
func AdminURL(inst hangar.DBInstance, db string) string {
	// Managed instances listen on loopback; Host is what users are told.
	host := inst.Host
	if host == "" || !inst.IsLinked {
		host = "127.0.0.1"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(inst.AdminUser, inst.AdminPassword),
		Host:     net.JoinHostPort(host, strconv.Itoa(inst.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// withConn runs f on a connection to connURL.
func withConn(ctx context.Context, connURL string, f func(*pgx.Conn) error) error {
	conn, err := pgx.Connect(ctx, connURL)
	if err != nil {
		return err
	}
	return errors.Join(f(conn), conn.Close(ctx))
}
