package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// CreateUser creates u in the org u.Org: an existing org gains a member, a
// missing one is created with u as its admin. Operators choose the org
// explicitly (hangar users add --org); see CreateUserWithOrg for a user of
// their own.
func (db *DB) CreateUser(ctx context.Context, u hangar.User) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "INSERT INTO orgs (name) VALUES ($1) ON CONFLICT DO NOTHING", u.Org)
		if err != nil {
			return fmt.Errorf("create org %s: %w", u.Org, err)
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		if tag.RowsAffected() == 1 {
			_, err = tx.Exec(ctx, "UPDATE orgs SET admin_id=$2 WHERE name=$1", u.Org, u.ID)
		}
		return err
	})
}

// CreateUserWithOrg creates u and a new org u.Org with u as its admin. An
// existing user or org of those names is a KindConflict error.
func (db *DB) CreateUserWithOrg(ctx context.Context, u hangar.User) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if err := insertOrg(ctx, tx, u.Org, ""); err != nil {
			return err
		}
		if err := insertUser(ctx, tx, u); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE orgs SET admin_id=$2 WHERE name=$1", u.Org, u.ID)
		return err
	})
}

func insertUser(ctx context.Context, tx pgx.Tx, u hangar.User) error {
	_, err := tx.Exec(ctx, "INSERT INTO users (id, name, email, org) VALUES ($1, $2, $3, $4)", u.ID, u.Name, u.Email, u.Org)
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "user %s already exists", u.Name)
	}
	return err
}

// insertOrg creates org with admin adminID ("" for none yet). An existing
// org of that name is a KindConflict error.
func insertOrg(ctx context.Context, tx pgx.Tx, org, adminID string) error {
	_, err := tx.Exec(ctx, "INSERT INTO orgs (name, admin_id) VALUES ($1, NULLIF($2, ''))", org, adminID)
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "organization %s already exists", org)
	}
	return err
}

// CreateSignup creates an account with ID id that has no username or org
// yet: it registers (RegisterUser) with the first access token its refresh
// tokens get.
func (db *DB) CreateSignup(ctx context.Context, id string) error {
	_, err := db.pool.Exec(ctx, "INSERT INTO users (id) VALUES ($1)", id)
	return err
}

// RegisterUser gives the sign-up account id its username: it joins the org
// of the invite whose secret hashes to inviteHash, or, with a nil
// inviteHash, creates an org named after the user with the user as its admin.
// Errors: KindUnauthorized for an unknown or disabled account, KindConflict
// when the account is registered already or a name is taken, KindForbidden
// for an invalid, used or expired invite.
func (db *DB) RegisterUser(ctx context.Context, id, name string, inviteHash []byte, now time.Time) (hangar.User, error) {
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var cur *string
		var disabled *time.Time
		err := tx.QueryRow(ctx, "SELECT name, disabled_at FROM users WHERE id=$1 FOR UPDATE", id).Scan(&cur, &disabled)
		if errors.Is(err, pgx.ErrNoRows) {
			return hangar.Errorf(hangar.KindUnauthorized, "this account no longer exists: ask your Hangar operator for a new sign-up token")
		}
		if err != nil {
			return err
		}
		if disabled != nil {
			return hangar.Errorf(hangar.KindUnauthorized, "this account is disabled: ask your Hangar operator")
		}
		if cur != nil {
			return hangar.Errorf(hangar.KindConflict, "you are registered already, as %s", *cur)
		}
		org := name
		if inviteHash != nil {
			if org, err = consumeInvite(ctx, tx, inviteHash, "", id, now); err != nil {
				return err
			}
		} else if err := insertOrg(ctx, tx, org, ""); err != nil {
			if hangar.KindOf(err) == hangar.KindConflict {
				return hangar.Errorf(hangar.KindConflict, "an organization named %s exists already: choose another username", org)
			}
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE users SET name=$2, org=$3, joined_at=$4 WHERE id=$1", id, name, org, now)
		if isUniqueViolation(err) {
			return hangar.Errorf(hangar.KindConflict, "username %s is taken: choose another one", name)
		}
		if err != nil {
			return err
		}
		if inviteHash == nil {
			_, err = tx.Exec(ctx, "UPDATE orgs SET admin_id=$2 WHERE name=$1", org, id)
		}
		return err
	})
	if err != nil {
		return hangar.User{}, err
	}
	return db.UserByID(ctx, id)
}

const userCols = "id, COALESCE(name, ''), email, COALESCE(org, ''), created_at, disabled_at"

func scanUser(row pgx.Row) (hangar.User, *time.Time, error) {
	var u hangar.User
	var disabled *time.Time
	err := row.Scan(&u.ID, &u.Name, &u.Email, &u.Org, &u.CreatedAt, &disabled)
	return u, disabled, err
}

// UserByID returns the registered user with id: the principal of an access
// token. A missing (or not yet registered) user is the "user not found"
// error the official CLI matches on, which starts its registration; a
// disabled user is KindUnauthorized.
func (db *DB) UserByID(ctx context.Context, id string) (hangar.User, error) {
	u, disabled, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE id=$1 AND name IS NOT NULL", id))
	if err != nil {
		return hangar.User{}, notFoundIf(err, hangar.UserNotFound())
	}
	if disabled != nil {
		return hangar.User{}, hangar.Errorf(hangar.KindUnauthorized, "user %s is disabled: ask your Hangar operator", u.Name)
	}
	return u, nil
}

// UserByName returns the user named name, disabled or not.
func (db *DB) UserByName(ctx context.Context, name string) (hangar.User, error) {
	u, _, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE name=$1", name))
	return u, notFoundIf(err, hangar.Errorf(hangar.KindNotFound, "user %s not found", name))
}

// Accounts lists every account: registered users by name, then sign-up
// accounts by creation time.
func (db *DB) Accounts(ctx context.Context) ([]hangar.Account, error) {
	rows, err := db.pool.Query(ctx, `
		SELECT u.id, COALESCE(u.name, ''), u.email, COALESCE(u.org, ''), u.created_at, u.disabled_at,
		       u.name IS NULL, COALESCE(o.admin_id = u.id, false),
		       (SELECT max(COALESCE(t.last_used_at, t.created_at)) FROM refresh_tokens t WHERE t.user_id = u.id)
		  FROM users u LEFT JOIN orgs o ON o.name = u.org
		 ORDER BY u.name IS NULL, u.name, u.created_at`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (hangar.Account, error) {
		var a hangar.Account
		var disabled, seen *time.Time
		err := r.Scan(&a.ID, &a.Name, &a.Email, &a.Org, &a.CreatedAt, &disabled, &a.Pending, &a.Admin, &seen)
		a.Disabled = disabled != nil
		if seen != nil {
			a.LastSeen = *seen
		}
		return a, err
	})
}

// accountByName locks the account named name (or, when name is a sign-up
// account's ID, that account) for update.
func accountByName(ctx context.Context, tx pgx.Tx, name string) (id string, org *string, err error) {
	err = tx.QueryRow(ctx, "SELECT id, org FROM users WHERE name=$1 OR (name IS NULL AND id=$1) FOR UPDATE", name).Scan(&id, &org)
	return id, org, notFoundIf(err, hangar.Errorf(hangar.KindNotFound, "user %s not found", name))
}

// SetUserDisabled disables (or enables again) the user named name. Disabling
// also revokes every refresh token of the user, so that enabling it again
// needs a new one (NewRefreshToken).
func (db *DB) SetUserDisabled(ctx context.Context, name string, disabled bool, now time.Time) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		id, _, err := accountByName(ctx, tx, name)
		if err != nil {
			return err
		}
		if !disabled {
			_, err = tx.Exec(ctx, "UPDATE users SET disabled_at=NULL WHERE id=$1", id)
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET disabled_at=$2 WHERE id=$1 AND disabled_at IS NULL", id, now); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE refresh_tokens SET revoked_at=$2 WHERE user_id=$1 AND revoked_at IS NULL", id, now)
		return err
	})
}

// DeleteUser deletes the user named name (or the sign-up account with that
// ID) and its refresh tokens. An admin's org passes to its longest-standing
// other member; an org left without members is deleted too. The last member
// of an org that still has applications or databases cannot be deleted
// (KindConflict naming them): they would be left without an owner.
func (db *DB) DeleteUser(ctx context.Context, name string) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		id, org, err := accountByName(ctx, tx, name)
		if err != nil {
			return err
		}
		if org != nil {
			if err := leaveOrg(ctx, tx, id, *org, func(apps, dbs string) error {
				return hangar.Errorf(hangar.KindConflict, "user %s is the last member of organization %s, which still has %s: delete them first", name, *org, andList(apps, dbs))
			}); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, "DELETE FROM users WHERE id=$1", id); err != nil {
			return err
		}
		if org != nil {
			return dropOrgIfEmpty(ctx, tx, *org)
		}
		return nil
	})
}

// SetPasswordHash sets the password hash of the user named name (from
// auth.HashPassword); an empty hash removes the password. Errors:
// KindNotFound for an unknown user.
func (db *DB) SetPasswordHash(ctx context.Context, name, hash string) error {
	tag, err := db.pool.Exec(ctx, "UPDATE users SET password_hash=NULLIF($2, '') WHERE name=$1", name, hash)
	if err != nil {
		return fmt.Errorf("set password of %s: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return hangar.Errorf(hangar.KindNotFound, "user %s not found", name)
	}
	return nil
}

// LoginByName returns the user named name with its password hash, disabled
// or not. Errors: KindNotFound for an unknown user.
func (db *DB) LoginByName(ctx context.Context, name string) (hangar.Login, error) {
	var l hangar.Login
	var disabled *time.Time
	err := db.pool.QueryRow(ctx, "SELECT "+userCols+", COALESCE(password_hash, '') FROM users WHERE name=$1", name).
		Scan(&l.ID, &l.Name, &l.Email, &l.Org, &l.CreatedAt, &disabled, &l.PasswordHash)
	l.Disabled = disabled != nil
	return l, notFoundIf(err, hangar.Errorf(hangar.KindNotFound, "user %s not found", name))
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

// UseRefreshToken returns the account a live refresh token belongs to and
// marks it used. A token is live when not revoked, younger than maxAge and
// used within maxIdle, and its user is not disabled. A sign-up account that
// has not registered yet comes back with its ID only (no name or org).
func (db *DB) UseRefreshToken(ctx context.Context, token string, now time.Time, maxAge, maxIdle time.Duration) (hangar.User, error) {
	invalid := hangar.Errorf(hangar.KindUnauthorized, "invalid, expired or revoked refresh token")
	var userID string
	err := db.pool.QueryRow(ctx, `
		UPDATE refresh_tokens SET last_used_at = $2
		 WHERE token_hash = $1 AND revoked_at IS NULL
		   AND created_at > $3 AND COALESCE(last_used_at, created_at) > $4
		RETURNING user_id`, hashToken(token), now, now.Add(-maxAge), now.Add(-maxIdle)).Scan(&userID)
	if err != nil {
		return hangar.User{}, notFoundIf(err, invalid)
	}
	u, disabled, err := scanUser(db.pool.QueryRow(ctx, "SELECT "+userCols+" FROM users WHERE id=$1", userID))
	if err != nil {
		return hangar.User{}, notFoundIf(err, invalid)
	}
	if disabled != nil {
		return hangar.User{}, invalid
	}
	return u, nil
}

// RevokeRefreshToken revokes a refresh token; unknown tokens are ignored.
func (db *DB) RevokeRefreshToken(ctx context.Context, token string, now time.Time) error {
	_, err := db.pool.Exec(ctx, "UPDATE refresh_tokens SET revoked_at=$2 WHERE token_hash=$1 AND revoked_at IS NULL", hashToken(token), now)
	return err
}

// Setting returns the value stored under key, creating it with create() when
// absent. Concurrent callers all get the first value stored.
func (db *DB) Setting(ctx context.Context, key string, create func() (string, error)) (string, error) {
	var v string
	err := db.pool.QueryRow(ctx, "SELECT value FROM settings WHERE key=$1", key).Scan(&v)
	if err == nil || !errors.Is(err, pgx.ErrNoRows) {
		return v, err
	}
	if v, err = create(); err != nil {
		return "", err
	}
	if _, err := db.pool.Exec(ctx, "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT DO NOTHING", key, v); err != nil {
		return "", fmt.Errorf("store setting %s: %w", key, err)
	}
	err = db.pool.QueryRow(ctx, "SELECT value FROM settings WHERE key=$1", key).Scan(&v)
	return v, err
}

// LookupSetting returns the value stored under key and whether there is one.
func (db *DB) LookupSetting(ctx context.Context, key string) (string, bool, error) {
	var v string
	err := db.pool.QueryRow(ctx, "SELECT value FROM settings WHERE key=$1", key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", false, nil
	}
	return v, err == nil, err
}

// SwapSetting replaces key's value old with new, and reports false (changing
// nothing) when the stored value is not old: a compare-and-swap for values
// several processes update, like the signing key set.
func (db *DB) SwapSetting(ctx context.Context, key, old, new string) (bool, error) {
	tag, err := db.pool.Exec(ctx, "UPDATE settings SET value=$3 WHERE key=$1 AND value=$2", key, old, new)
	return tag.RowsAffected() == 1, err
}
