package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

const versionCols = "id, app_id, archive_digest, status, error, deployed_by, created_at, finished_at, app_version, restored_from, config, schema_fingerprint, steps"

func scanVersion(row pgx.Row) (hangar.Version, error) {
	var v hangar.Version
	var status string
	var finished *time.Time
	var steps []byte
	err := row.Scan(&v.ID, &v.AppID, &v.ArchiveDigest, &status, &v.Error, &v.DeployedBy, &v.CreatedAt, &finished,
		&v.AppVersion, &v.RestoredFrom, &v.Config, &v.SchemaFingerprint, &steps)
	if err != nil {
		return v, err
	}
	v.Status = hangar.VersionStatus(status)
	if finished != nil {
		v.FinishedAt = *finished
	}
	return v, json.Unmarshal(steps, &v.Steps)
}

// CreateVersion records a new version.
func (db *DB) CreateVersion(ctx context.Context, v hangar.Version) error {
	if v.AppVersion == "" {
		v.AppVersion = v.ID
	}
	_, err := db.pool.Exec(ctx, `INSERT INTO versions (id, app_id, archive_digest, status, deployed_by, app_version, restored_from)
		VALUES ($1,$2,$3,$4,$5,$6,$7)`,
		v.ID, v.AppID, v.ArchiveDigest, string(v.Status), v.DeployedBy, v.AppVersion, v.RestoredFrom)
	return err
}

// Version returns the app's version with id.
func (db *DB) Version(ctx context.Context, appID, id string) (hangar.Version, error) {
	v, err := scanVersion(db.pool.QueryRow(ctx, "SELECT "+versionCols+" FROM versions WHERE app_id=$1 AND id=$2", appID, id))
	return v, notFoundIf(err, hangar.Errorf(hangar.KindNotFound, "version %s not found: list versions with `dbos-cloud app versions`", id))
}

// Versions lists the app's versions, newest first.
func (db *DB) Versions(ctx context.Context, appID string) ([]hangar.Version, error) {
	rows, err := db.pool.Query(ctx, "SELECT "+versionCols+" FROM versions WHERE app_id=$1 ORDER BY created_at DESC, id DESC", appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.Version, error) { return scanVersion(r) })
}

// RecordStep appends a step's timing and outcome to a version.
func (db *DB) RecordStep(ctx context.Context, id string, st hangar.StepRecord) error {
	b, err := json.Marshal([]hangar.StepRecord{st})
	if err != nil {
		return err
	}
	_, err = db.pool.Exec(ctx, "UPDATE versions SET steps = steps || $2::jsonb WHERE id=$1", id, b)
	return err
}

// SetVersionConfig records the config a version runs with.
func (db *DB) SetVersionConfig(ctx context.Context, id string, config []byte) error {
	_, err := db.pool.Exec(ctx, "UPDATE versions SET config=$2 WHERE id=$1", id, config)
	return err
}

// SetVersionSchema records a version's schema fingerprint.
func (db *DB) SetVersionSchema(ctx context.Context, id, fingerprint string) error {
	_, err := db.pool.Exec(ctx, "UPDATE versions SET schema_fingerprint=$2 WHERE id=$1", id, fingerprint)
	return err
}

// FinishVersion records a version's outcome.
func (db *DB) FinishVersion(ctx context.Context, id string, status hangar.VersionStatus, errText string) error {
	_, err := db.pool.Exec(ctx, "UPDATE versions SET status=$2, error=$3, finished_at=now() WHERE id=$1", id, string(status), errText)
	return err
}

// KeptArchives returns the archive digests of every version, of any app,
// that did not fail: the archives to keep.
func (db *DB) KeptArchives(ctx context.Context) (map[string]bool, error) {
	rows, err := db.pool.Query(ctx, "SELECT DISTINCT archive_digest FROM versions WHERE status <> $1 AND archive_digest <> ''", string(hangar.VersionFailed))
	if err != nil {
		return nil, err
	}
	digests, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	kept := make(map[string]bool, len(digests))
	for _, d := range digests {
		kept[d] = true
	}
	return kept, nil
}
