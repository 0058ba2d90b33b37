package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

const appCols = "a.id, a.org, a.name, d.name, a.app_db_name, a.language, a.status, a.version, a.memory_mib, a.min_vms, a.max_vms, a.db_role, a.db_password, a.created_at"
const appFrom = " FROM apps a JOIN db_instances d ON d.id = a.db_instance_id "

func scanApp(row pgx.Row) (hangar.App, error) {
	var a hangar.App
	var lang, status string
	err := row.Scan(&a.ID, &a.Org, &a.Name, &a.DBInstance, &a.AppDBName, &lang, &status, &a.Version,
		&a.MemoryMiB, &a.MinVMs, &a.MaxVMs, &a.DBRole, &a.DBPassword, &a.CreatedAt)
	a.Language, a.Status = hangar.Language(lang), hangar.AppStatus(status)
	return a, err
}

// CreateApp registers a on the instance with ID instanceID. A duplicate name
// in the org is a conflict.
func (db *DB) CreateApp(ctx context.Context, a hangar.App, instanceID string) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO apps (id, org, name, db_instance_id, app_db_name, language, status, memory_mib, min_vms, max_vms, db_role, db_password)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
		a.ID, a.Org, a.Name, instanceID, a.AppDBName, string(a.Language), string(a.Status), a.MemoryMiB, a.MinVMs, a.MaxVMs, a.DBRole, a.DBPassword)
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "application %s already exists", a.Name)
	}
	return err
}

// App returns the org's app named name.
func (db *DB) App(ctx context.Context, org, name string) (hangar.App, error) {
	a, err := scanApp(db.pool.QueryRow(ctx, "SELECT "+appCols+appFrom+"WHERE a.org=$1 AND a.name=$2", org, name))
	return a, notFoundIf(err, hangar.AppNotFound(name))
}

// AppByID returns the app with id.
func (db *DB) AppByID(ctx context.Context, id string) (hangar.App, error) {
	a, err := scanApp(db.pool.QueryRow(ctx, "SELECT "+appCols+appFrom+"WHERE a.id=$1", id))
	return a, notFoundIf(err, hangar.AppNotFound(id))
}

// Apps lists the org's apps by name; org "" lists every org's.
func (db *DB) Apps(ctx context.Context, org string) ([]hangar.App, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+appCols+appFrom+"WHERE $1 = '' OR a.org=$1 ORDER BY a.org, a.name", org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.App, error) { return scanApp(r) })
}

// SetAppStatus records an app's status.
func (db *DB) SetAppStatus(ctx context.Context, appID string, status hangar.AppStatus) error {
	_, err := db.pool.Exec(ctx, "UPDATE apps SET status=$2 WHERE id=$1", appID, string(status))
	return err
}

// SetAppServing records that version serves the app, which is AVAILABLE.
func (db *DB) SetAppServing(ctx context.Context, appID, version string) error {
	_, err := db.pool.Exec(ctx, "UPDATE apps SET status=$2, version=$3 WHERE id=$1", appID, string(hangar.StatusAvailable), version)
	return err
}
