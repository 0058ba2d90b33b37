package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

const dbCols = "id, org, name, status, host, port, admin_user, admin_password, is_linked, created_at"

func scanDB(row pgx.Row) (hangar.DBInstance, error) {
	var d hangar.DBInstance
	var status string
	err := row.Scan(&d.ID, &d.Org, &d.Name, &status, &d.Host, &d.Port, &d.AdminUser, &d.AdminPassword, &d.IsLinked, &d.CreatedAt)
	d.Status = hangar.DBStatus(status)
	return d, err
}

// CreateDBInstance records a new database instance; a duplicate name in the
// org is a conflict.
func (db *DB) CreateDBInstance(ctx context.Context, d hangar.DBInstance) error {
	_, err := db.pool.Exec(ctx, "INSERT INTO db_instances ("+dbCols+") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,now())",
		d.ID, d.Org, d.Name, string(d.Status), d.Host, d.Port, d.AdminUser, d.AdminPassword, d.IsLinked)
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "database instance %s already exists", d.Name)
	}
	return err
}

// DBInstance returns the org's instance named name.
func (db *DB) DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error) {
	d, err := scanDB(db.pool.QueryRow(ctx, "SELECT "+dbCols+" FROM db_instances WHERE org=$1 AND name=$2", org, name))
	return d, notFoundIf(err, hangar.DBNotFound(name))
}

// DBInstanceByID returns the instance with id.
func (db *DB) DBInstanceByID(ctx context.Context, id string) (hangar.DBInstance, error) {
	d, err := scanDB(db.pool.QueryRow(ctx, "SELECT "+dbCols+" FROM db_instances WHERE id=$1", id))
	return d, notFoundIf(err, hangar.DBNotFound(id))
}

// DBInstances lists the org's instances by name; org "" lists every org's.
func (db *DB) DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+dbCols+" FROM db_instances WHERE $1 = '' OR org=$1 ORDER BY org, name", org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.DBInstance, error) { return scanDB(r) })
}

// SetDBInstanceState records an instance's status and address.
func (db *DB) SetDBInstanceState(ctx context.Context, id string, status hangar.DBStatus, host string, port int) error {
	_, err := db.pool.Exec(ctx, "UPDATE db_instances SET status=$2, host=$3, port=$4 WHERE id=$1", id, string(status), host, port)
	return err
}
