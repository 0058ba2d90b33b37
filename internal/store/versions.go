package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

const versionCols = "id, app_id, archive_digest, status, error, deployed_by, created_at"

func scanVersion(row pgx.Row) (hangar.Version, error) {
	var v hangar.Version
	var status string
	err := row.Scan(&v.ID, &v.AppID, &v.ArchiveDigest, &status, &v.Error, &v.DeployedBy, &v.CreatedAt)
	v.Status = hangar.VersionStatus(status)
	return v, err
}

// CreateVersion records a new version.
func (db *DB) CreateVersion(ctx context.Context, v hangar.Version) error {
	_, err := db.pool.Exec(ctx, "INSERT INTO versions (id, app_id, archive_digest, status, deployed_by) VALUES ($1,$2,$3,$4,$5)",
		v.ID, v.AppID, v.ArchiveDigest, string(v.Status), v.DeployedBy)
	return err
}

// Version returns the app's version with id.
func (db *DB) Version(ctx context.Context, appID, id string) (hangar.Version, error) {
	v, err := scanVersion(db.pool.QueryRow(ctx, "SELECT "+versionCols+" FROM versions WHERE app_id=$1 AND id=$2", appID, id))
	return v, notFoundIf(err, hangar.Errorf(hangar.KindNotFound, "version %s not found", id))
}

// Versions lists the app's versions, newest first.
func (db *DB) Versions(ctx context.Context, appID string) ([]hangar.Version, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+versionCols+" FROM versions WHERE app_id=$1 ORDER BY created_at DESC, id DESC", appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.Version, error) { return scanVersion(r) })
}

// FinishVersion records a version's outcome.
func (db *DB) FinishVersion(ctx context.Context, id string, status hangar.VersionStatus, errText string) error {
	_, err := db.pool.Exec(ctx, "UPDATE versions SET status=$2, error=$3 WHERE id=$1", id, string(status), errText)
	return err
}
