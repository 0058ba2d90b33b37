package deploy

import (
	"context"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// DBStore is the metadata the database instance operations need; Store
// embeds it. *store.DB satisfies it.
type DBStore interface {
	// SetDBInstancePassword locks the instance's record, calls apply with
	// it and records password if apply succeeds. KindNotFound.
	SetDBInstancePassword(ctx context.Context, id, password string, apply func(hangar.DBInstance) error) error
	// DeleteDBInstance removes the instance's record unless apps use it.
	// KindNotFound; KindConflict naming the apps.
	DeleteDBInstance(ctx context.Context, id string) error
}

// DBManager is what the database instance operations need of the instance
// manager; Instances embeds it. *dbinstance.Manager satisfies it.
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
