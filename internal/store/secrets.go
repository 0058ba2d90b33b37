package store

import (
	"bytes"
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// PutSecret stores the sealed value of the app's secret name, replacing an
// earlier value.
func (db *DB) PutSecret(ctx context.Context, appID, name string, sealed []byte, now time.Time) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO app_secrets (app_id, name, sealed, created_at, updated_at) VALUES ($1,$2,$3,$4,$4)
		ON CONFLICT (app_id, name) DO UPDATE SET sealed=EXCLUDED.sealed, updated_at=EXCLUDED.updated_at`, appID, name, sealed, now)
	return err
}

// SecretNames returns the names of the app's secrets, sorted.
func (db *DB) SecretNames(ctx context.Context, appID string) ([]string, error) {
	rows, err := db.pool.Query(ctx, "SELECT name FROM app_secrets WHERE app_id=$1 ORDER BY name", appID)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// SealedSecrets returns the app's secrets, sealed, by name.
func (db *DB) SealedSecrets(ctx context.Context, appID string) (map[string][]byte, error) {
	rows, err := db.pool.Query(ctx, "SELECT name, sealed FROM app_secrets WHERE app_id=$1", appID)
	if err != nil {
		return nil, err
	}
	out := map[string][]byte{}
	var name string
	var sealed []byte
	_, err = pgx.ForEachRow(rows, []any{&name, &sealed}, func() error {
		out[name] = bytes.Clone(sealed)
		return nil
	})
	return out, err
}

// DeleteSecret deletes the app's secret name and reports whether it existed.
func (db *DB) DeleteSecret(ctx context.Context, appID, name string) (bool, error) {
	tag, err := db.pool.Exec(ctx, "DELETE FROM app_secrets WHERE app_id=$1 AND name=$2", appID, name)
	return tag.RowsAffected() == 1, err
}
