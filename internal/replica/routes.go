package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// channel is the LISTEN/NOTIFY channel of route changes; the payload is
// the host.
const channel = "hangar_routes"

// Router is the local router; *router.Router satisfies it.
type Router interface {
	// Set routes host to upstreams; an empty list removes host.
	Set(host string, upstreams []string)
	// InFlight counts the requests under way to upstream.
	InFlight(upstream string) int64
	// SetLimit limits the requests sent at once to upstream; 0 lifts it.
	SetLimit(upstream string, limit int)
}

// RoutesConfig configures Routes.
type RoutesConfig struct {
	// Replica is this replica's ID. Required.
	Replica string
	// Poll is how often the whole table is read again, in case a
	// notification was lost. Default 5s.
	Poll time.Duration
	// Lost is called when a host this replica served was taken by
	// another replica (a deploy there) or removed there (the app was
	// deleted): its executors here must stop. Default: nothing.
	Lost func(ctx context.Context, host string)
	// Logger receives the logs. Default slog.Default().
	Logger *slog.Logger
}

// Routes stands between the local fleet and the local router: the fleet's
// routes are published in the routes table as this replica's, and the
// other replicas' routes are applied to the local router. It satisfies
// the fleet's Router.
type Routes struct {
	cfg   RoutesConfig
	pool  *pgxpool.Pool
	local Router
	log   *slog.Logger
	kick  chan struct{}

	mu      sync.Mutex
	pending map[string][]string // to publish, last value per host; nil deletes
	own     map[string]bool     // hosts the local fleet routes
	remote  map[string]bool     // hosts applied from other replicas
	seq     uint64              // commits so far
	pubSeq  map[string]uint64   // seq of each host's last commit
}

// NewRoutes returns the routes of replica cfg.Replica over local. The
// tables exist once Join returned.
func NewRoutes(pool *pgxpool.Pool, local Router, cfg RoutesConfig) *Routes {
	if cfg.Poll <= 0 {
		cfg.Poll = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Routes{
		cfg: cfg, pool: pool, local: local, log: cfg.Logger.With("component", "routes"),
		kick:    make(chan struct{}, 1),
		pending: map[string][]string{}, own: map[string]bool{}, remote: map[string]bool{}, pubSeq: map[string]uint64{},
	}
}

// Set routes host to upstreams here at once and publishes it as this
// replica's (while Run runs). A nil list removes the host on every
// replica (the app is gone from it); an empty one keeps this replica its
// owner with no executor.
func (r *Routes) Set(host string, upstreams []string) {
	r.local.Set(host, upstreams)
	r.mu.Lock()
	if upstreams == nil {
		delete(r.own, host)
	} else {
		upstreams = slices.Clone(upstreams)
		r.own[host] = true
	}
	r.pending[host] = upstreams
	delete(r.remote, host)
	r.mu.Unlock()
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// InFlight counts the requests under way to upstream.
func (r *Routes) InFlight(upstream string) int64 { return r.local.InFlight(upstream) }

// SetLimit is the local router's: other replicas' routers send a
// replica's executors what they will.
func (r *Routes) SetLimit(upstream string, limit int) { r.local.SetLimit(upstream, limit) }

// Run publishes the local routes and applies the other replicas' until
// ctx is done.
func (r *Routes) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { r.publishLoop(ctx) })
	wg.Go(func() { r.listenLoop(ctx) })
	wg.Wait()
}

func (r *Routes) publishLoop(ctx context.Context) {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.kick:
		case <-retry.C:
		}
		if err := r.publish(ctx); err != nil && ctx.Err() == nil {
			r.log.WarnContext(ctx, "publish routes; retrying", "err", err)
			retry.Reset(time.Second)
		}
	}
}

// publish writes the pending routes, each with its notification.
func (r *Routes) publish(ctx context.Context) error {
	r.mu.Lock()
	batch := r.pending
	r.pending = map[string][]string{}
	r.mu.Unlock()
	var errs []error
	for host, ups := range batch {
		err := pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
			var err error
			if ups == nil {
				_, err = tx.Exec(ctx, `DELETE FROM routes WHERE host = $1`, host)
			} else {
				_, err = tx.Exec(ctx, `
INSERT INTO routes (host, upstreams, replica, updated) VALUES ($1, $2, $3, now())
ON CONFLICT (host) DO UPDATE SET upstreams = excluded.upstreams, replica = excluded.replica, updated = now()`,
					host, ups, r.cfg.Replica)
			}
			if err != nil {
				return err
			}
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, host)
			return err
		})
		r.mu.Lock()
		if err != nil {
			if _, newer := r.pending[host]; !newer {
				r.pending[host] = ups
			}
			errs = append(errs, fmt.Errorf("publish route of %s: %w", host, err))
		} else {
			r.seq++
			r.pubSeq[host] = r.seq
		}
		r.mu.Unlock()
	}
	return errors.Join(errs...)
}

func (r *Routes) listenLoop(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.WarnContext(ctx, "listen for route changes; reconnecting", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// listen applies each notified host, and the whole table on connecting
// and every Poll.
func (r *Routes) listen(ctx context.Context) error {
	c, err := r.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	conn := c.Hijack() // it stays LISTENing: never back to the pool
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+channel); err != nil {
		return err
	}
	if err := r.refresh(ctx, ""); err != nil {
		return err
	}
	for {
		wctx, cancel := context.WithTimeout(ctx, r.cfg.Poll)
		n, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case ctx.Err() != nil:
			return nil
		case err == nil:
			err = r.refresh(ctx, n.Payload)
		case errors.Is(err, context.DeadlineExceeded):
			err = r.refresh(ctx, "")
		}
		if err != nil {
			return err
		}
	}
}

type route struct {
	upstreams []string
	replica   string
}

// refresh reads host's row, or every row when host is "", and applies
// what other replicas own to the local router.
func (r *Routes) refresh(ctx context.Context, host string) error {
	r.mu.Lock()
	start := r.seq
	r.mu.Unlock()
	q, args := `SELECT host, upstreams, replica FROM routes`, []any{}
	if host != "" {
		q, args = q+` WHERE host = $1`, []any{host}
	}
	rows, err := r.pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	table := map[string]route{}
	for rows.Next() {
		var h string
		var rt route
		if err := rows.Scan(&h, &rt.upstreams, &rt.replica); err != nil {
			return err
		}
		table[h] = rt
	}
	if err := rows.Err(); err != nil {
		return err
	}
	hosts := []string{host}
	if host == "" {
		hosts = r.known(table)
	}
	for _, h := range hosts {
		r.apply(ctx, h, table[h], start)
	}
	return nil
}

// known lists every host in table or routed here.
func (r *Routes) known(table map[string]route) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var hosts []string
	for h := range table {
		hosts = append(hosts, h)
	}
	for _, m := range []map[string]bool{r.own, r.remote} {
		for h := range m {
			if _, ok := table[h]; !ok {
				hosts = append(hosts, h)
			}
		}
	}
	return hosts
}

// apply makes host route as rt says (rt.replica "": no row), read when
// start commits of this replica had been made.
func (r *Routes) apply(ctx context.Context, host string, rt route, start uint64) {
	r.mu.Lock()
	_, pending := r.pending[host]
	if pending || r.pubSeq[host] > start || rt.replica == r.cfg.Replica {
		r.mu.Unlock() // this replica's own, or newer here than what was read
		return
	}
	lost := r.own[host]
	delete(r.own, host)
	r.mu.Unlock()
	if lost {
		r.log.InfoContext(ctx, "another replica serves a host this one served", "host", host, "replica", rt.replica)
		if r.cfg.Lost != nil {
			r.cfg.Lost(ctx, host)
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.pending[host]; ok || r.own[host] {
		return // the local fleet routed it meanwhile
	}
	if rt.replica == "" {
		if r.remote[host] {
			delete(r.remote, host)
			r.local.Set(host, nil)
		}
		return
	}
	r.remote[host] = true
	r.local.Set(host, rt.upstreams)
}

// Owner returns the replica that owns host's route, "" when none does.
func (r *Routes) Owner(ctx context.Context, host string) (string, error) {
	var id string
	err := r.pool.QueryRow(ctx, `SELECT replica FROM routes WHERE host = $1`, host).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	return id, err
}

// Drop removes the routes a dead replica still owns, once its apps were
// resumed elsewhere (what could not be resumed must not point at its
// removed executors).
func (r *Routes) Drop(ctx context.Context, replicaID string) error {
	return pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `DELETE FROM routes WHERE replica = $1 RETURNING host`, replicaID)
		if err != nil {
			return err
		}
		hosts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		for _, h := range hosts {
			if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, channel, h); err != nil {
				return err
			}
		}
		return nil
	})
}
