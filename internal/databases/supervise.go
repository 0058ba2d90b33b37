package databases

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/backoff"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Supervision of managed instances.
const (
	// dbCheckInterval is how often every managed instance is checked.
	dbCheckInterval = 5 * time.Second
	// dbMaxBackoff bounds the wait between attempts to start an instance
	// that keeps failing.
	dbMaxBackoff = 5 * time.Minute
)

// supervise keeps the managed instances running until ctx is done:
// every dbCheckInterval it starts those whose server is down (waiting
// longer between attempts, up to dbMaxBackoff, while starting fails),
// records them unavailable while they are down and available again once
// they run, and takes the base backups that are due, in the background.
func (s *Service) supervise(ctx context.Context) {
	sv := &dbSupervisor{s: s, dbm: s.instances, health: map[string]*backoff.State{}, backingUp: map[string]bool{}}
	defer sv.wg.Wait()
	tick := time.NewTicker(dbCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			sv.check(ctx, time.Now())
		}
	}
}

// dbSupervisor is the state of supervise.
type dbSupervisor struct {
	s      *Service
	dbm    Instances
	health map[string]*backoff.State // by instance ID; only the loop uses it

	wg        sync.WaitGroup
	mu        sync.Mutex
	backingUp map[string]bool // instance IDs with a base backup running
}

// dbBackoff is the wait between attempts to start an instance that keeps
// failing.
var dbBackoff = backoff.Policy{Base: dbCheckInterval, Max: dbMaxBackoff}

func (sv *dbSupervisor) check(ctx context.Context, now time.Time) {
	s := sv.s
	insts, err := s.store.DBInstances(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			s.log.ErrorContext(ctx, "supervise database instances: list them", "err", err)
		}
		return
	}
	seen := map[string]bool{}
	for _, in := range insts {
		if in.IsLinked || in.Status != hangar.DBAvailable && in.Status != hangar.DBUnavailable || !s.runsHere(ctx, in) {
			continue
		}
		seen[in.ID] = true
		h := sv.health[in.ID]
		if h == nil {
			h = &backoff.State{}
			sv.health[in.ID] = h
		}
		if now.Before(h.Retry) {
			continue
		}
		restarted, err := sv.dbm.Check(ctx, in)
		if ctx.Err() != nil {
			return // shutting down: record nothing
		}
		if err != nil {
			h.Next(dbBackoff, now, time.Time{})
			s.log.ErrorContext(ctx, "database instance is down and does not start", "instance", in.Name, "attempt", h.Failures, "next_attempt", h.Retry, "err", err)
			if in.Status == hangar.DBAvailable {
				sv.setStatus(ctx, in, hangar.DBUnavailable)
			}
			continue
		}
		if restarted {
			s.log.WarnContext(ctx, "database instance was down: restarted it", "instance", in.Name, "port", in.Port)
		}
		*h = backoff.State{}
		if in.Status == hangar.DBUnavailable {
			sv.setStatus(ctx, in, hangar.DBAvailable)
		}
		sv.backupIfDue(ctx, in)
	}
	for id := range sv.health {
		if !seen[id] {
			delete(sv.health, id)
		}
	}
	sv.stopDestroyed(ctx, insts)
}

// stopDestroyed stops the instances this replica runs whose record is
// gone (another replica destroys them) and releases them, so that the
// destroying replica removes their files.
func (sv *dbSupervisor) stopDestroyed(ctx context.Context, insts []hangar.DBInstance) {
	s := sv.s
	if s.cfg.Owners == nil {
		return
	}
	owned, err := s.cfg.Owners.Owned(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "list the database instances this replica runs", "err", err)
		return
	}
	for _, id := range owned {
		if slices.ContainsFunc(insts, func(in hangar.DBInstance) bool { return in.ID == id }) {
			continue
		}
		// Or created since insts was read.
		if _, err := s.store.DBInstanceByID(ctx, id); hangar.KindOf(err) != hangar.KindNotFound {
			continue
		}
		if err := sv.dbm.Stop(ctx, hangar.DBInstance{ID: id}); err != nil {
			s.log.ErrorContext(ctx, "stop a destroyed database instance", "instance", id, "err", err)
			continue
		}
		if err := s.cfg.Owners.Release(ctx, id); err != nil {
			s.log.ErrorContext(ctx, "release a destroyed database instance", "instance", id, "err", err)
		}
	}
}

func (sv *dbSupervisor) setStatus(ctx context.Context, in hangar.DBInstance, status hangar.DBStatus) {
	if err := sv.s.store.SetDBInstanceState(ctx, in.ID, status, in.Host, in.Port); err != nil {
		sv.s.log.ErrorContext(ctx, "record database instance status", "instance", in.Name, "status", status, "err", err)
	}
}

// backupIfDue takes a due base backup of in in the background, one at a
// time per instance.
func (sv *dbSupervisor) backupIfDue(ctx context.Context, in hangar.DBInstance) {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	if sv.backingUp[in.ID] {
		return
	}
	sv.backingUp[in.ID] = true
	sv.wg.Go(func() {
		defer func() {
			sv.mu.Lock()
			delete(sv.backingUp, in.ID)
			sv.mu.Unlock()
		}()
		// The manager logs the backups it takes.
		if _, err := sv.dbm.BackupIfDue(ctx, in); err != nil && ctx.Err() == nil {
			sv.s.log.ErrorContext(ctx, "base backup of database instance", "instance", in.Name, "err", err)
		}
	})
}
