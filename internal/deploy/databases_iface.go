package deploy

import (
	"context"
	"errors"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// DBStore is the metadata the database instance operations need beyond
// Store. *store.DB satisfies it. (To merge into Store.)
type DBStore interface {
	// SetDBInstancePassword locks the instance's record, calls apply with
	// it and records password if apply succeeds. KindNotFound.
	SetDBInstancePassword(ctx context.Context, id, password string, apply func(hangar.DBInstance) error) error
	// DeleteDBInstance removes the instance's record unless apps use it.
	// KindNotFound; KindConflict naming the apps.
	DeleteDBInstance(ctx context.Context, id string) error
}

// DBManager is what the database instance operations need of the instance
// manager beyond Instances. *dbinstance.Manager satisfies it. (To merge
// into Instances.)
type DBManager interface {
	// Check starts a provisioned managed instance that is not running and
	// reports whether it had to.
	Check(ctx context.Context, inst hangar.DBInstance) (restarted bool, err error)
	// Destroy stops a managed instance and removes its files.
	Destroy(ctx context.Context, inst hangar.DBInstance) error
	// SetAdminPassword changes the password of the instance's admin role.
	// KindInvalid.
	SetAdminPassword(ctx context.Context, inst hangar.DBInstance, password string) error
	// CheckLink checks that a linked server's admin logs in and may create
	// databases and roles. KindInvalid saying what failed.
	CheckLink(ctx context.Context, inst hangar.DBInstance) error
	// BackupIfDue takes a base backup of a running managed instance when
	// its newest is older than the backup interval (or it has none).
	BackupIfDue(ctx context.Context, inst hangar.DBInstance) (bool, error)
	// RestoreWindow returns the earliest time the instance can be restored
	// to; the latest is now. KindUnavailable when it has no backup yet.
	RestoreWindow(inst hangar.DBInstance) (time.Time, error)
	// Restore creates managed instance dst from src as src was at target
	// and returns dst's port. KindInvalid when target is out of range.
	Restore(ctx context.Context, src, dst hangar.DBInstance, target time.Time) (int, error)
}

// dbStore returns the store as a DBStore.
func (s *Service) dbStore() (DBStore, error) {
	if st, ok := s.store.(DBStore); ok {
		return st, nil
	}
	return nil, errors.New("deploy: the store does not implement DBStore")
}

// dbManager returns the instance manager as a DBManager.
func (s *Service) dbManager() (DBManager, error) {
	if m, ok := s.instances.(DBManager); ok {
		return m, nil
	}
	return nil, errors.New("deploy: the instance manager does not implement DBManager")
}
