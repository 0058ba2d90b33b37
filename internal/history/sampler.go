package history

import (
	"context"
	"log/slog"
	"time"

	"github.com/hangar-oss/hangar/internal/fleet"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Source is what the Sampler reads each interval: the fleet's executors,
// the store's apps and the deploy service's workflows, which the
// composition root combines.
type Source interface {
	// Apps lists every org's apps when org is "".
	Apps(ctx context.Context, org string) ([]hangar.App, error)
	// Executors returns the app's live executors with their resource use.
	Executors(ctx context.Context, appID string) []fleet.ExecutorStatus
	// Health says how many executors serve the app.
	Health(appID string) fleet.Health
	// Workflows lists the app's workflows from its system database.
	Workflows(ctx context.Context, org, name string, f hangar.WorkflowFilter) ([]hangar.Workflow, error)
}

// Config configures the Sampler.
type Config struct {
	// Domain is the domain apps are served under, which names their hosts.
	Domain string
	// Interval is how often a row is written per app and executor.
	// Default one minute (the history's resolution); tests set it shorter.
	Interval time.Duration
	// Retention is how long rows are kept. Default 14 days.
	Retention time.Duration
	// Logger logs sampling errors. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Sampler writes the history: each interval, one row per app and one per
// live executor, from the Recorder's counts, the deploy service's
// executors and events, and the apps' system databases.
type Sampler struct {
	cfg   Config
	store *Store
	src   Source
	rec   *Recorder
	ev    *Events
	log   *slog.Logger
}

// NewSampler returns a Sampler; Run starts it.
func NewSampler(cfg Config, st *Store, src Source, rec *Recorder, ev *Events) *Sampler {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.Retention <= 0 {
		cfg.Retention = 14 * 24 * time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sampler{cfg: cfg, store: st, src: src, rec: rec, ev: ev, log: cfg.Logger.With("component", "history")}
}

// Run samples every interval until ctx ends, and prunes rows past the
// retention once an hour.
func (s *Sampler) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	last, pruned := s.cfg.Now(), time.Time{}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		now := s.cfg.Now()
		if err := s.Sample(ctx, last, now); err != nil && ctx.Err() == nil {
			s.log.WarnContext(ctx, "sample metrics history", "err", err)
		}
		last = now
		if now.Sub(pruned) >= time.Hour {
			if _, err := s.store.Prune(ctx, now.Add(-s.cfg.Retention)); err != nil && ctx.Err() == nil {
				s.log.WarnContext(ctx, "prune metrics history", "err", err)
			}
			pruned = now
		}
	}
}

// Sample writes the rows of the interval [since, now), stamped with its
// start truncated to the interval.
func (s *Sampler) Sample(ctx context.Context, since, now time.Time) error {
	apps, err := s.src.Apps(ctx, "")
	if err != nil {
		return err
	}
	stamp := since.Truncate(s.cfg.Interval)
	reqs := s.rec.take()
	events := s.ev.take()

	var rows []AppSample
	var execs []ExecutorSample
	for _, a := range apps {
		row := AppSample{AppID: a.ID, Minute: stamp, Executors: s.src.Health(a.ID).Executors, NoWorkflows: true}
		if c := reqs[hostKey(a.Hostname(s.cfg.Domain))]; c != nil {
			row.Requests, row.P50, row.P99 = c.classes, c.quantile(0.5), c.quantile(0.99)
		}
		if e := events[a.ID]; e != nil {
			row.Restarts, row.OOMs = e[0], e[1]
		}
		if a.Status == hangar.StatusAvailable {
			if err := s.workflows(ctx, a, since, now, &row); err != nil {
				s.log.DebugContext(ctx, "read workflows for the metrics history", "app", a.ID, "err", err)
			}
		}
		rows = append(rows, row)
		for _, ex := range s.src.Executors(ctx, a.ID) {
			if ex.Stats == nil {
				continue
			}
			execs = append(execs, ExecutorSample{AppID: a.ID, Executor: ex.ID, Minute: stamp,
				MemoryBytes: ex.Stats.MemoryBytes, LimitBytes: ex.Stats.MemoryLimitBytes, CPUPercent: ex.CPUUse * 100})
		}
	}
	return s.store.Write(ctx, rows, execs)
}

// workflows counts the app's workflows started in [since, now), those
// that completed or failed then (among those started in the last hour),
// and those waiting in queues now.
func (s *Sampler) workflows(ctx context.Context, a hangar.App, since, now time.Time, row *AppSample) error {
	started, err := s.src.Workflows(ctx, a.Org, a.Name, hangar.WorkflowFilter{StartTime: since, EndTime: now})
	if err != nil {
		return err
	}
	ended, err := s.src.Workflows(ctx, a.Org, a.Name, hangar.WorkflowFilter{
		StartTime: now.Add(-time.Hour), Statuses: []hangar.WorkflowStatus{hangar.WorkflowSuccess, hangar.WorkflowError}})
	if err != nil {
		return err
	}
	queued, err := s.src.Workflows(ctx, a.Org, a.Name, hangar.WorkflowFilter{QueuesOnly: true})
	if err != nil {
		return err
	}
	row.Started, row.QueueDepth, row.NoWorkflows = len(started), len(queued), false
	for _, w := range ended {
		if w.UpdatedAt.Before(since) || !w.UpdatedAt.Before(now) {
			continue
		}
		if w.Status == hangar.WorkflowSuccess {
			row.Completed++
		} else {
			row.Failed++
		}
	}
	return nil
}
