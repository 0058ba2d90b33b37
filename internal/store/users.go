package store

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// CreateUser creates u, and its organization when it does not exist yet.
func (db *DB) CreateUser(ctx context.Context, u hangar.User) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "INSERT INTO orgs (name) VALUES ($1) ON CONFLICT DO NOTHING", u.Org); err != nil {
			return fmt.Errorf("create org %s: %w", u.Org, err)
		}
		_, err := tx.Exec(ctx, "INSERT INTO users (id, name, email, org) VALUES ($1, $2, $3, $4)", u.ID, u.Name, u.Email, u.Org)
		if isUniqueViolation(err) {
			return hangar.Errorf(hangar.KindConflict, "user %s already exists", u.Name)
		}
		return err
	})
}

const userCols = "id, name, email, org, created_at"

func scanUser(row pgx.Row) (hangar.User, error) {
	var u hangar.User
	err := row.Scan(&u.ID, &u.Name, &u.Email, &u.Org, &u.CreatedAt)
	return u, err
}

// UserByID returns the user with id, or the "user not found" error the
// official CLI matches on.
func (db *DB) UserByID(ctx context.Context, id string) (hangar.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE id=$1", id))
	return u, notFoundIf(err, hangar.UserNotFound())
}

// UserByName returns the user named name.
func (db *DB) UserByName(ctx context.Context, name string) (hangar.User, error) {
	u, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE name=$1", name))
	return u, notFoundIf(err, hangar.UserNotFound())
}

func hashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// AddRefreshToken stores the hash of a refresh token for userID.
func (db *DB) AddRefreshToken(ctx context.Context, id, userID, token string) error {
	_, err := db.pool.Exec(ctx, "INSERT INTO refresh_tokens (id, user_id, token_hash) VALUES ($1, $2, $3)", id, userID, hashToken(token))
	return err
}

// UseRefreshToken returns the user a live refresh token belongs to and marks
// it used. A token is live when not revoked, younger than maxAge and used
// within maxIdle.
func (db *DB) UseRefreshToken(ctx context.Context, token string, now time.Time, maxAge, maxIdle time.Duration) (hangar.User, error) {
	var userID string
	err := db.pool.QueryRow(ctx, `
		UPDATE refresh_tokens SET last_used_at = $2
		 WHERE token_hash = $1 AND revoked_at IS NULL
		   AND created_at > $3 AND COALESCE(last_used_at, created_at) > $4
		RETURNING user_id`, hashToken(token), now, now.Add(-maxAge), now.Add(-maxIdle)).Scan(&userID)
	if err != nil {
		return hangar.User{}, notFoundIf(err, hangar.Errorf(hangar.KindUnauthorized, "invalid, expired or revoked refresh token"))
	}
	return db.UserByID(ctx, userID)
}

// RevokeRefreshToken revokes a refresh token; unknown tokens are ignored.
func (db *DB) RevokeRefreshToken(ctx context.Context, token string, now time.Time) error {
	_, err := db.pool.Exec(ctx, "UPDATE refresh_tokens SET revoked_at=$2 WHERE token_hash=$1 AND revoked_at IS NULL", hashToken(token), now)
	return err
}

// Setting returns the value stored under key, creating it with create() when
// absent. Concurrent callers all get the first value stored.
func (db *DB) Setting(ctx context.Context, key string, create func() (string, error)) (string, error) {
	v, err := create()
	if err != nil {
		return "", err
	}
	if _, err := db.pool.Exec(ctx, "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", key, v); err != nil {
		return "", fmt.Errorf("store setting %s: %w", key, err)
	}
	err = db.pool.QueryRow(ctx, "SELECT value FROM settings WHERE key=$1", key).Scan(&v)
	return v, err
}
