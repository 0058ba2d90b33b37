package store

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

const dbCols = "id, org, name, status, host, port, admin_user, admin_password, is_linked, created_at"

func (db *DB) scanDB(row pgx.Row) (hangar.DBInstance, error) {
	var d hangar.DBInstance
	var status, password string
	err := row.Scan(&d.ID, &d.Org, &d.Name, &status, &d.Host, &d.Port, &d.AdminUser, &password, &d.IsLinked, &d.CreatedAt)
	if err != nil {
		return d, err
	}
	d.Status = hangar.DBStatus(status)
	d.AdminPassword, err = db.openPassword(colAdminPassword, d.ID, password)
	return d, err
}

// CreateDBInstance records a new database instance; a duplicate name in the
// org is a conflict.
func (db *DB) CreateDBInstance(ctx context.Context, d hangar.DBInstance, lim hangar.OrgLimits) error {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if lim.DBInstances > 0 && !d.IsLinked {
			u, err := lockOrgUsage(ctx, tx, d.Org)
			if err != nil {
				return err
			}
			if u.instances >= lim.DBInstances {
				return hangar.LimitError(d.Org, lim.DBInstances, "managed database instances", "destroy one")
			}
		}
		_, err := tx.Exec(ctx, "INSERT INTO db_instances ("+dbCols+") VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,now())",
			d.ID, d.Org, d.Name, string(d.Status), d.Host, d.Port, d.AdminUser, db.sealPassword(colAdminPassword, d.ID, d.AdminPassword), d.IsLinked)
		return err
	})
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "database instance %s already exists", d.Name)
	}
	return err
}

// DBInstance returns the org's instance named name.
func (db *DB) DBInstance(ctx context.Context, org, name string) (hangar.DBInstance, error) {
	d, err := db.scanDB(db.pool.QueryRow(ctx, "SELECT "+dbCols+" FROM db_instances WHERE org=$1 AND name=$2", org, name))
	return d, notFoundIf(err, hangar.DBNotFound(name))
}

// DBInstanceByID returns the instance with id.
func (db *DB) DBInstanceByID(ctx context.Context, id string) (hangar.DBInstance, error) {
	d, err := db.scanDB(db.pool.QueryRow(ctx, "SELECT "+dbCols+" FROM db_instances WHERE id=$1", id))
	return d, notFoundIf(err, hangar.DBNotFound(id))
}

// DBInstances lists the org's instances by name; org "" lists every org's.
func (db *DB) DBInstances(ctx context.Context, org string) ([]hangar.DBInstance, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+dbCols+" FROM db_instances WHERE $1 = '' OR org=$1 ORDER BY org, name", org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.DBInstance, error) { return db.scanDB(r) })
}

// SetDBInstanceState records an instance's status and address.
func (db *DB) SetDBInstanceState(ctx context.Context, id string, status hangar.DBStatus, host string, port int) error {
	_, err := db.pool.Exec(ctx, "UPDATE db_instances SET status=$2, host=$3, port=$4 WHERE id=$1", id, string(status), host, port)
	return err
}

// SetDBInstancePassword changes the admin password of the instance with
// id: it locks the instance's record, calls apply with the instance as
// recorded (its current password included), which changes the password in
// the server, and records password if apply succeeds. Concurrent changes
// of one instance's password so run one after the other.
func (db *DB) SetDBInstancePassword(ctx context.Context, id, password string, apply func(hangar.DBInstance) error) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		d, err := db.scanDB(tx.QueryRow(ctx, "SELECT "+dbCols+" FROM db_instances WHERE id=$1 FOR UPDATE", id))
		if err != nil {
			return notFoundIf(err, hangar.DBNotFound(id))
		}
		if err := apply(d); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE db_instances SET admin_password=$2 WHERE id=$1", id, db.sealPassword(colAdminPassword, id, password))
		return err
	})
}

// DeleteDBInstance removes the record of the instance with id, unless
// applications are registered on it: then it returns a KindConflict error
// that names them. The instance row is locked first, so that no app is
// registered on it (which takes a key-share lock through the foreign key)
// while the apps are counted.
func (db *DB) DeleteDBInstance(ctx context.Context, id string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var name string
		err := tx.QueryRow(ctx, "SELECT name FROM db_instances WHERE id=$1 FOR UPDATE", id).Scan(&name)
		if err != nil {
			return notFoundIf(err, hangar.DBNotFound(id))
		}
		rows, err := tx.Query(ctx, "SELECT name FROM apps WHERE db_instance_id=$1 ORDER BY name", id)
		if err != nil {
			return err
		}
		apps, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(apps) > 0 {
			what := "application"
			if len(apps) > 1 {
				what = "applications"
			}
			return hangar.Errorf(hangar.KindConflict,
				"database instance %s is used by %s %s: delete them, or move them to another instance with `dbos-cloud app change-database-instance`, first",
				name, what, strings.Join(apps, ", "))
		}
		_, err = tx.Exec(ctx, "DELETE FROM db_instances WHERE id=$1", id)
		return err
	})
}
