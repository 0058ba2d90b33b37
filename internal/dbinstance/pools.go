package dbinstance

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Reads of an app's system database (the console's workflow pages, the
// supervisor's drain checks) came in bursts, each opening a connection,
// with SCRAM authentication, that it closed at once: most of a workflow
// page's time. sysPools keeps a small pool per instance and database
// instead.
const (
	// sysPoolMaxConns bounds the connections one pool opens: a tenant's
	// page views wait for one rather than crowd its server.
	sysPoolMaxConns = 2
	// sysPoolIdle is how long an unused connection, and a pool nothing
	// asked for, are kept.
	sysPoolIdle = 30 * time.Second
)

type poolKey struct{ inst, db string }

type sysPool struct {
	pool *pgxpool.Pool
	url  string // the URL it connects with: its credentials, host and port
	used time.Time
}

// sysPools is the Manager's pools of connections to system databases; it
// owns them. A pool ends when closed (its instance stopped, was destroyed
// or got a new password; its database was dropped; the Manager stops),
// when its instance's URL changes (password, host or port), or when
// nothing asked for it for sysPoolIdle.
type sysPools struct {
	now func() time.Time // nil: time.Now

	mu    sync.Mutex
	pools map[poolKey]*sysPool
}

// acquire returns a connection of the pool of database db of instance
// instID, creating it (or replacing one whose URL differs: a new password
// or port) on first use. Release the connection when done.
func (p *sysPools) acquire(ctx context.Context, instID, db, connURL string) (*pgxpool.Conn, error) {
	pool, err := p.pool(instID, db, connURL)
	if err != nil {
		return nil, err
	}
	return pool.Acquire(ctx)
}

func (p *sysPools) pool(instID, db, connURL string) (*pgxpool.Pool, error) {
	// Close waits for connections in use: not under mu (deferred first,
	// it runs after the unlock).
	var closing []*pgxpool.Pool
	defer func() {
		for _, c := range closing {
			c.Close()
		}
	}()
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if p.now != nil {
		now = p.now()
	}
	if p.pools == nil {
		p.pools = map[poolKey]*sysPool{}
	}
	// Drop the pools nothing asked for lately: instances unlinked or gone
	// without a word to the Manager leave none open for long.
	for k, sp := range p.pools {
		if now.Sub(sp.used) > sysPoolIdle {
			closing = append(closing, sp.pool)
			delete(p.pools, k)
		}
	}
	k := poolKey{instID, db}
	if sp := p.pools[k]; sp != nil {
		if sp.url == connURL {
			sp.used = now
			return sp.pool, nil
		}
		closing = append(closing, sp.pool)
		delete(p.pools, k)
	}
	cfg, err := pgxpool.ParseConfig(connURL)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns, cfg.MinConns = sysPoolMaxConns, 0
	cfg.MaxConnIdleTime = sysPoolIdle
	cfg.HealthCheckPeriod = sysPoolIdle / 3 // how often idle ones are closed
	// Statements are described on each run, as on the fresh connections
	// before: a cached one would fail once after DBOS migrates its tables.
	cfg.ConnConfig.DefaultQueryExecMode = pgx.QueryExecModeDescribeExec
	// No connection is opened until the first Acquire.
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connection pool of %s: %w", db, err)
	}
	p.pools[k] = &sysPool{pool: pool, url: connURL, used: now}
	return pool, nil
}

// closeInstance closes the pools of instance instID: it stopped, was
// destroyed, or its password changed.
func (p *sysPools) closeInstance(instID string) {
	p.closeWhere(func(k poolKey) bool { return k.inst == instID })
}

// closeDB closes the pool of database db of instance instID: it is
// dropped.
func (p *sysPools) closeDB(instID, db string) {
	p.closeWhere(func(k poolKey) bool { return k == poolKey{instID, db} })
}

// closeAll closes every pool.
func (p *sysPools) closeAll() { p.closeWhere(func(poolKey) bool { return true }) }

func (p *sysPools) closeWhere(match func(poolKey) bool) {
	p.mu.Lock()
	closing := maps.Clone(p.pools)
	maps.DeleteFunc(closing, func(k poolKey, _ *sysPool) bool { return !match(k) })
	maps.DeleteFunc(p.pools, func(k poolKey, _ *sysPool) bool { return match(k) })
	p.mu.Unlock()
	// Close waits for connections in use: not under mu.
	for _, sp := range closing {
		sp.pool.Close()
	}
}

// count returns how many pools are open.
func (p *sysPools) count() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pools)
}

// WithConn runs f on a superuser connection, from the pool of database db
// of inst, and returns f's error or the connection's. The pools are the
// Manager's: sysdb reads and writes system databases through them, and
// they close when their instance stops, is destroyed, gets a new password
// or drops the database.
func (m *Manager) WithConn(ctx context.Context, inst hangar.DBInstance, db string, f func(*pgx.Conn) error) error {
	c, err := m.pools.acquire(ctx, inst.ID, db, AdminURL(inst, db))
	if err != nil {
		return err
	}
	defer c.Release()
	return f(c.Conn())
}

// AdminURL returns the instance's superuser URL for database db: at
// inst.Host for a linked instance (TLS when the server offers it), on
// loopback for a managed one.
func AdminURL(inst hangar.DBInstance, db string) string {
	// Managed instances listen on loopback; Host is what users are told.
	host, sslmode := inst.Host, "prefer"
	if host == "" || !inst.IsLinked {
		host, sslmode = "127.0.0.1", "disable"
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(inst.AdminUser, inst.AdminPassword),
		Host:     net.JoinHostPort(host, strconv.Itoa(inst.Port)),
		Path:     "/" + db,
		RawQuery: "sslmode=" + sslmode,
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
