package dbinstance

import (
	"context"
	"fmt"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Restore creates the managed instance dst from src as src was at target
// (a point-in-time recovery: every transaction src committed at or before
// target, none after) and returns dst's port (dst.Port when non-zero, else
// a free one). dst's admin is dst.AdminUser with dst.AdminPassword, which
// must be src's admin role; dst archives its own WAL but has no base backup
// yet. It returns hangar.KindInvalid when target is before src's oldest
// backup. Restore is idempotent for the same dst.ID: an interrupted restore
// starts over.
func (m *Manager) Restore(ctx context.Context, src, dst hangar.DBInstance, target time.Time) (int, error) {
	if err := validateID(src.ID); err != nil {
		return 0, err
	}
	bs, err := m.Backups(src)
	if err != nil {
		return 0, err
	}
	var base *Backup
	for i := range bs {
		if !bs[i].End.After(target) {
			base = &bs[i]
		}
	}
	if base == nil {
		return 0, hangar.Errorf(hangar.KindInvalid, "database %s has no backup before %s to restore from", src.Name, target.UTC().Format(time.RFC3339))
	}
	// The WAL up to now, target included, must be in the archive.
	if c := m.running(src); c != nil {
		if err := c.SwitchWAL(ctx); err != nil {
			return 0, fmt.Errorf("restore %s: %w", src.ID, err)
		}
	}
	e, unlock, err := m.lock(dst)
	if err != nil {
		return 0, err
	}
	defer unlock()
	c, err := m.clusterOf(ctx, e, dst, dst.Port)
	if err != nil {
		return 0, err
	}
	if err := c.Recover(ctx, base.Dir, m.archiveDir(src), target); err != nil {
		return 0, fmt.Errorf("restore %s into %s: %w", src.ID, dst.ID, err)
	}
	m.log.InfoContext(ctx, "restored database instance", "dbinstance", dst.ID, "from", src.ID, "target", target, "base_backup", base.Dir)
	return e.port(), nil
}
