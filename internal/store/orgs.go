package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// OrgAdmin returns the ID of org's admin, "" when it has none (its admin
// was deleted and no member was left to take over).
func (db *DB) OrgAdmin(ctx context.Context, org string) (string, error) {
	var admin *string
	err := db.pool.QueryRow(ctx, "SELECT admin_id FROM orgs WHERE name=$1", org).Scan(&admin)
	if err != nil {
		return "", notFoundIf(err, orgNotFound(org))
	}
	if admin == nil {
		return "", nil
	}
	return *admin, nil
}

// OrgID returns the stable ID of the org named org.
func (db *DB) OrgID(ctx context.Context, org string) (string, error) {
	var id string
	err := db.pool.QueryRow(ctx, "SELECT id FROM orgs WHERE name=$1", org).Scan(&id)
	return id, notFoundIf(err, orgNotFound(org))
}

func orgNotFound(org string) error {
	return hangar.Errorf(hangar.KindNotFound, "organization %s not found", org)
}

// OrgMembers returns the names of org's members, sorted.
func (db *DB) OrgMembers(ctx context.Context, org string) ([]string, error) {
	rows, err := db.pool.Query(ctx, "SELECT name FROM users WHERE org=$1 ORDER BY name", org)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// CreateInvite stores an invite to org, by the user createdBy, whose secret
// hashes to secretHash (sha256), valid until expires. Expired invites are
// deleted on the way.
func (db *DB) CreateInvite(ctx context.Context, org string, secretHash []byte, createdBy string, now, expires time.Time) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM org_invites WHERE expires_at < $1", now); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "INSERT INTO org_invites (secret_hash, org, created_by, created_at, expires_at) VALUES ($1,$2,$3,$4,$5)",
			secretHash, org, createdBy, now, expires)
		return err
	})
}

// consumeInvite marks the live invite whose secret hashes to secretHash used
// by userID and returns its org. With org set, only an invite to that org
// matches. A missing, used or expired invite is KindForbidden.
func consumeInvite(ctx context.Context, tx pgx.Tx, secretHash []byte, org, userID string, now time.Time) (string, error) {
	var got string
	err := tx.QueryRow(ctx, `
		UPDATE org_invites SET used_at=$4, used_by=$3
		 WHERE secret_hash=$1 AND ($2 = '' OR org=$2) AND used_at IS NULL AND expires_at > $4
		RETURNING org`, secretHash, org, userID, now).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		msg := "invalid invite secret: it is unknown, used already or expired (secrets are single-use and valid 24 hours)"
		if org != "" {
			msg = "invalid invite secret for organization " + org + ": it is unknown, used already or expired (secrets are single-use and valid 24 hours)"
		}
		return "", hangar.Errorf(hangar.KindForbidden, "%s", msg)
	}
	return got, err
}

// JoinOrg moves the user userID into org with the invite whose secret hashes
// to secretHash, which it uses up; with org "", into the invite's org. Errors: KindForbidden for an invalid, used
// or expired invite (or one to another org); KindConflict when the user is a
// member already, or is the last member of an org that still has
// applications or databases, which must be deleted first.
func (db *DB) JoinOrg(ctx context.Context, userID, org string, secretHash []byte, now time.Time) error {
	return pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var cur string
		if err := tx.QueryRow(ctx, "SELECT org FROM users WHERE id=$1 AND name IS NOT NULL FOR UPDATE", userID).Scan(&cur); err != nil {
			return notFoundIf(err, hangar.UserNotFound())
		}
		org, err := consumeInvite(ctx, tx, secretHash, org, userID, now)
		if err != nil {
			return err
		}
		if cur == org {
			return hangar.Errorf(hangar.KindConflict, "you are a member of organization %s already", org)
		}
		err = leaveOrg(ctx, tx, userID, cur, func(apps, dbs string) error {
			return hangar.Errorf(hangar.KindConflict, "delete your %s before joining organization %s: they belong to organization %s, of which you are the last member", andList(apps, dbs), org, cur)
		})
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "UPDATE users SET org=$2, joined_at=$3 WHERE id=$1", userID, org, now); err != nil {
			return err
		}
		return dropOrgIfEmpty(ctx, tx, cur)
	})
}

// RemoveMember removes the user named name from org and returns the org it
// now belongs to: a new org of its own, named after it (or after it with a
// number when that name is taken), with it as admin. The admin cannot be
// removed (KindInvalid); a non-member is KindNotFound.
func (db *DB) RemoveMember(ctx context.Context, org, name string, now time.Time) (string, error) {
	var own string
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SELECT 1 FROM orgs WHERE name=$1 FOR UPDATE", org); err != nil {
			return err
		}
		var id string
		var admin bool
		err := tx.QueryRow(ctx, `SELECT u.id, COALESCE(o.admin_id = u.id, false) FROM users u JOIN orgs o ON o.name = u.org
			WHERE u.name=$1 AND u.org=$2 FOR UPDATE OF u`, name, org).Scan(&id, &admin)
		if err != nil {
			return notFoundIf(err, hangar.Errorf(hangar.KindNotFound, "user %s is not a member of organization %s", name, org))
		}
		if admin {
			return hangar.Errorf(hangar.KindInvalid, "%s is the admin of organization %s and cannot be removed from it", name, org)
		}
		if own, err = createOwnOrg(ctx, tx, name, id); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, "UPDATE users SET org=$2, joined_at=$3 WHERE id=$1", id, own, now)
		return err
	})
	return own, err
}

// createOwnOrg creates an org for the user id named name, with it as admin:
// named name when that is free, else name_2, name_3, …
func createOwnOrg(ctx context.Context, tx pgx.Tx, name, id string) (string, error) {
	for n := 1; n < 1000; n++ {
		cand := name
		if n > 1 {
			suffix := fmt.Sprintf("_%d", n)
			cand = name[:min(len(name), 30-len(suffix))] + suffix
		}
		tag, err := tx.Exec(ctx, "INSERT INTO orgs (name, admin_id) VALUES ($1, $2) ON CONFLICT DO NOTHING", cand, id)
		if err != nil {
			return "", err
		}
		if tag.RowsAffected() == 1 {
			return cand, nil
		}
	}
	return "", fmt.Errorf("no free organization name for user %s", name)
}

// RenameOrg renames org to newName; its members, apps, database instances
// and invites follow (ON UPDATE CASCADE). Errors: KindConflict when newName
// exists, KindNotFound when org does not.
func (db *DB) RenameOrg(ctx context.Context, org, newName string) error {
	tag, err := db.pool.Exec(ctx, "UPDATE orgs SET name=$2 WHERE name=$1", org, newName)
	if isUniqueViolation(err) {
		return hangar.Errorf(hangar.KindConflict, "organization %s already exists: choose another name", newName)
	}
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return orgNotFound(org)
	}
	return nil
}

// leaveOrg prepares the user id to leave org, whose row it locks: when the
// user is its last member and it still has applications or database
// instances, it returns busy(apps, dbs) with their names; when the user is
// its admin, the longest-standing other member becomes admin.
func leaveOrg(ctx context.Context, tx pgx.Tx, id, org string, busy func(apps, dbs string) error) error {
	var admin *string
	if err := tx.QueryRow(ctx, "SELECT admin_id FROM orgs WHERE name=$1 FOR UPDATE", org).Scan(&admin); err != nil {
		return notFoundIf(err, orgNotFound(org))
	}
	var next *string
	err := tx.QueryRow(ctx, "SELECT id FROM users WHERE org=$1 AND id<>$2 ORDER BY joined_at, id LIMIT 1", org, id).Scan(&next)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return err
	}
	if next == nil {
		var apps, dbs string
		err := tx.QueryRow(ctx, `SELECT
			COALESCE((SELECT string_agg(name, ', ' ORDER BY name) FROM apps WHERE org=$1), ''),
			COALESCE((SELECT string_agg(name, ', ' ORDER BY name) FROM db_instances WHERE org=$1), '')`, org).Scan(&apps, &dbs)
		if err != nil {
			return err
		}
		if apps != "" || dbs != "" {
			return busy(apps, dbs)
		}
		return nil
	}
	if admin != nil && *admin == id {
		_, err = tx.Exec(ctx, "UPDATE orgs SET admin_id=$2 WHERE name=$1", org, *next)
	}
	return err
}

// dropOrgIfEmpty deletes org when it has no members, apps or database
// instances left. Another table may still refer to it (a later feature's
// rows): then the org is kept, which is harmless.
func dropOrgIfEmpty(ctx context.Context, tx pgx.Tx, org string) error {
	sp, err := tx.Begin(ctx)
	if err != nil {
		return err
	}
	_, err = sp.Exec(ctx, `DELETE FROM orgs o WHERE name=$1
		AND NOT EXISTS (SELECT 1 FROM users WHERE org=o.name)
		AND NOT EXISTS (SELECT 1 FROM apps WHERE org=o.name)
		AND NOT EXISTS (SELECT 1 FROM db_instances WHERE org=o.name)`, org)
	if err != nil {
		return sp.Rollback(ctx)
	}
	return sp.Commit(ctx)
}

// andList describes an org's remaining apps and databases for an error.
func andList(apps, dbs string) string {
	var parts []string
	if apps != "" {
		parts = append(parts, "applications ("+apps+")")
	}
	if dbs != "" {
		parts = append(parts, "databases ("+dbs+")")
	}
	return strings.Join(parts, " and ")
}
