package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

const appCols = "a.id, o.id, a.org, a.name, d.id, d.name, a.app_db_name, a.language, a.status, a.version, a.memory_mib, a.min_vms, a.max_vms, a.db_role, a.db_password, a.created_at"
const appFrom = " FROM apps a JOIN db_instances d ON d.id = a.db_instance_id JOIN orgs o ON o.name = a.org "

// scanApp reads an app, opening its role's password.
func (db *DB) scanApp(row pgx.Row) (hangar.App, error) {
	var a hangar.App
	var lang, status, password string
	err := row.Scan(&a.ID, &a.OrgID, &a.Org, &a.Name, &a.InstanceID, &a.DBInstance, &a.AppDBName, &lang, &status, &a.Version,
		&a.MemoryMiB, &a.MinVMs, &a.MaxVMs, &a.DBRole, &password, &a.CreatedAt)
	if err != nil {
		return a, err
	}
	a.Language, a.Status = hangar.Language(lang), hangar.AppStatus(status)
	a.DBPassword, err = db.openPassword(colAppDBPassword, a.ID, password)
	return a, err
}

// CreateApp registers a on the instance with ID instanceID. A duplicate name
// in the org is a conflict; an org at lim.Apps apps, or whose apps' minimum
// executors would exceed lim.Executors, a KindForbidden error naming the
// limit.
func (db *DB) CreateApp(ctx context.Context, a hangar.App, instanceID string, lim hangar.OrgLimits) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		u, err := lockOrgUsage(ctx, tx, a.Org)
		if err != nil {
			return err
		}
		if lim.Apps > 0 && u.apps >= lim.Apps {
			return hangar.LimitError(a.Org, lim.Apps, "applications", "delete one")
		}
		if lim.Executors > 0 && u.executors+a.MinVMs > lim.Executors {
			return executorsError(a.Org, lim)
		}
		_, err = tx.Exec(ctx, `INSERT INTO apps (id, org, name, db_instance_id, app_db_name, language, status, memory_mib, min_vms, max_vms, db_role, db_password)
			VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
			a.ID, a.Org, a.Name, instanceID, a.AppDBName, string(a.Language), string(a.Status), a.MemoryMiB, a.MinVMs, a.MaxVMs, a.DBRole, db.sealPassword(colAppDBPassword, a.ID, a.DBPassword))
		return err
	})
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "application %s already exists", a.Name)
	}
	return err
}

// App returns the org's app named name.
func (db *DB) App(ctx context.Context, org, name string) (hangar.App, error) {
	a, err := db.scanApp(db.pool.QueryRow(ctx, "SELECT "+appCols+appFrom+"WHERE a.org=$1 AND a.name=$2", org, name))
	return a, notFoundIf(err, hangar.AppNotFound(name))
}

// AppByID returns the app with id.
func (db *DB) AppByID(ctx context.Context, id string) (hangar.App, error) {
	a, err := db.scanApp(db.pool.QueryRow(ctx, "SELECT "+appCols+appFrom+"WHERE a.id=$1", id))
	return a, notFoundIf(err, hangar.AppNotFound(id))
}

// Apps lists the org's apps by name; org "" lists every org's.
func (db *DB) Apps(ctx context.Context, org string) ([]hangar.App, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+appCols+appFrom+"WHERE $1 = '' OR a.org=$1 ORDER BY a.org, a.name", org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.App, error) { return db.scanApp(r) })
}

// SetAppStatus records an app's status.
func (db *DB) SetAppStatus(ctx context.Context, appID string, status hangar.AppStatus) error {
	_, err := db.pool.Exec(ctx, "UPDATE apps SET status=$2 WHERE id=$1", appID, string(status))
	return err
}

// SetAppServing records that version serves the app, which is AVAILABLE,
// and retires the version that served before.
func (db *DB) SetAppServing(ctx context.Context, appID, version string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE apps SET status=$2, version=$3 WHERE id=$1", appID, string(hangar.StatusAvailable), version); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE versions SET status=$3 WHERE app_id=$1 AND id<>$2 AND status=$4",
			appID, version, string(hangar.VersionRetired), string(hangar.VersionActive))
		return err
	})
}

// BeginOperation marks the app busy with the modifying operation op (a
// workflow ID). It returns a KindConflict error naming the running operation
// when another one holds the app.
func (db *DB) BeginOperation(ctx context.Context, appID, op string) error {
	tag, err := db.pool.Exec(ctx, "UPDATE apps SET operation=$2, operation_started=now() WHERE id=$1 AND (operation='' OR operation=$2)", appID, op)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 1 {
		return nil
	}
	var name, cur string
	var since *time.Time
	if err := db.pool.QueryRow(ctx, "SELECT name, operation, operation_started FROM apps WHERE id=$1", appID).Scan(&name, &cur, &since); err != nil {
		return notFoundIf(err, hangar.AppNotFound(appID))
	}
	what, _, _ := strings.Cut(cur, "-")
	started := ""
	if since != nil {
		started = " (started " + since.UTC().Format(time.RFC3339) + ")"
	}
	return hangar.Errorf(hangar.KindConflict, "application %s is busy: a %s is in progress%s; try again when it finishes", name, what, started)
}

// EndOperation releases the app if op holds it.
func (db *DB) EndOperation(ctx context.Context, appID, op string) error {
	_, err := db.pool.Exec(ctx, "UPDATE apps SET operation='', operation_started=NULL WHERE id=$1 AND operation=$2", appID, op)
	return err
}

// Operations returns the running operation of every busy app, by app ID.
func (db *DB) Operations(ctx context.Context) (map[string]string, error) {
	rows, err := db.pool.Query(ctx, "SELECT id, operation FROM apps WHERE operation <> ''")
	if err != nil {
		return nil, err
	}
	ops := map[string]string{}
	for rows.Next() {
		var id, op string
		if err := rows.Scan(&id, &op); err != nil {
			return nil, err
		}
		ops[id] = op
	}
	return ops, rows.Err()
}

// UpdateApp sets the app's executor memory and bounds. Raising its minimum
// executors so that its org's apps' minimums would exceed lim.Executors is
// a KindForbidden error naming the limit; lowering is always allowed.
func (db *DB) UpdateApp(ctx context.Context, appID string, memoryMiB, minVMs, maxVMs int, lim hangar.OrgLimits) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var org string
		var was int
		if err := tx.QueryRow(ctx, "SELECT org, min_vms FROM apps WHERE id=$1", appID).Scan(&org, &was); err != nil {
			return notFoundIf(err, hangar.AppNotFound(appID))
		}
		if lim.Executors > 0 && minVMs > was {
			u, err := lockOrgUsage(ctx, tx, org)
			if err != nil {
				return err
			}
			if u.executors-was+minVMs > lim.Executors {
				return executorsError(org, lim)
			}
		}
		_, err := tx.Exec(ctx, "UPDATE apps SET memory_mib=$2, min_vms=$3, max_vms=$4 WHERE id=$1", appID, memoryMiB, minVMs, maxVMs)
		return err
	})
}

// SetAppDBInstance moves the app to another database instance.
func (db *DB) SetAppDBInstance(ctx context.Context, appID, instanceID string) error {
	_, err := db.pool.Exec(ctx, "UPDATE apps SET db_instance_id=$2 WHERE id=$1", appID, instanceID)
	return err
}

// DeleteApp removes the app and its versions.
func (db *DB) DeleteApp(ctx context.Context, appID string) error {
	_, err := db.pool.Exec(ctx, "DELETE FROM apps WHERE id=$1", appID)
	return err
}

// AppHostExists reports whether an app is registered whose host label,
// <org>-<app> as in hangar.App.Hostname, is label (compared in lower case,
// as TLS clients send host names). A registered app gets a certificate
// before its first deploy, since its URL is printed already.
func (db *DB) AppHostExists(ctx context.Context, label string) (bool, error) {
	var ok bool
	err := db.pool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM apps WHERE lower(org || '-' || name) = lower($1))", label).Scan(&ok)
	return ok, err
}
