package store

import (
	"context"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// orgUsage is what an org holds that hangar.OrgLimits bound.
type orgUsage struct {
	apps, instances, executors int
}

// lockOrgUsage locks org's row for the rest of tx, so that the checks of
// its limits and the writes they allow are serialized per org, and returns
// its usage.
func lockOrgUsage(ctx context.Context, tx pgx.Tx, org string) (orgUsage, error) {
	var u orgUsage
	if _, err := tx.Exec(ctx, "SELECT 1 FROM orgs WHERE name=$1 FOR UPDATE", org); err != nil {
		return u, err
	}
	err := tx.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM apps WHERE org=$1),
		(SELECT count(*) FROM db_instances WHERE org=$1 AND NOT is_linked),
		(SELECT coalesce(sum(min_vms), 0) FROM apps WHERE org=$1)`, org).Scan(&u.apps, &u.instances, &u.executors)
	return u, err
}

// executorsError is the error of an org whose apps' minimum executors would
// exceed lim.
func executorsError(org string, lim hangar.OrgLimits) error {
	return hangar.LimitError(org, lim.Executors, "executors (the minimum executors of all its applications)",
		"lower another application's minimum executors (app update --min-executors)")
}

// CheckOrgExecutors returns a KindForbidden error naming the limit when
// org's apps' minimum executors sum to more than lim.Executors (the
// operator lowered it since they were set).
func (db *DB) CheckOrgExecutors(ctx context.Context, org string, lim hangar.OrgLimits) error {
	if lim.Executors <= 0 {
		return nil
	}
	var n int
	if err := db.pool.QueryRow(ctx, "SELECT coalesce(sum(min_vms), 0) FROM apps WHERE org=$1", org).Scan(&n); err != nil {
		return err
	}
	if n > lim.Executors {
		return executorsError(org, lim)
	}
	return nil
}
