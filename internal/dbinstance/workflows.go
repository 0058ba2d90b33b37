package dbinstance

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// ActiveWorkflows counts the workflows of an app version that are PENDING or
// ENQUEUED in the app's DBOS system database sysDB. A system database DBOS
// has not created yet holds none.
func (m *Manager) ActiveWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB, appVersion string) (int, error) {
	if err := hangar.ValidatePGIdent("database name", sysDB); err != nil {
		return 0, err
	}
	var n int
	err := withConn(ctx, AdminURL(inst, sysDB), func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM dbos.workflow_status
			WHERE status IN ('PENDING', 'ENQUEUED') AND application_version = $1`, appVersion).Scan(&n)
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "3F000") { // no table / no schema yet
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("count active workflows of %s: %w", appVersion, err)
	}
	return n, nil
}
