package sysdb

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// This file reads and writes an app's DBOS system database (schema dbos,
// the same tables in the Go and TypeScript SDKs) as the platform: to drain
// a replaced version, to recover the workflows of executors that died, and
// to measure queue depth for scaling. A system database DBOS has not created
// yet holds no workflows, so its missing schema or table reads as zero.

// internalQueue is the queue the DBOS SDKs re-enqueue recovered workflows on
// when they had none.
const internalQueue = "_dbos_internal_queue"

// ActiveWorkflows counts the workflows of an app version that are PENDING or
// ENQUEUED in the app's DBOS system database sysDB.
func (d *DB) ActiveWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB, appVersion string) (int, error) {
	var n int
	err := d.withSysDB(ctx, inst, sysDB, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM dbos.workflow_status
			WHERE status IN ('PENDING', 'ENQUEUED') AND application_version = $1`, appVersion).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count active workflows of %s: %w", appVersion, err)
	}
	return n, nil
}

// EnqueuedWorkflows counts the workflows waiting in the queues of sysDB
// (status ENQUEUED) that executors of appVersion may dequeue: those of that
// version and those enqueued without one.
func (d *DB) EnqueuedWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB, appVersion string) (int, error) {
	var n int
	err := d.withSysDB(ctx, inst, sysDB, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT count(*) FROM dbos.workflow_status
			WHERE status = 'ENQUEUED' AND (application_version = $1 OR application_version IS NULL)`, appVersion).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("count enqueued workflows of %s: %w", appVersion, err)
	}
	return n, nil
}

// QueuedVersions returns the application versions that have workflows
// waiting in the queues of sysDB (status ENQUEUED), in order. Only an
// executor of a workflow's version dequeues it, so the platform must run
// one of each: after a restore, a database change or a restart, nothing
// else would.
func (d *DB) QueuedVersions(ctx context.Context, inst hangar.DBInstance, sysDB string) ([]string, error) {
	var versions []string
	err := d.withSysDB(ctx, inst, sysDB, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT DISTINCT application_version FROM dbos.workflow_status
			WHERE status = 'ENQUEUED' AND application_version IS NOT NULL ORDER BY 1`)
		if err != nil {
			return err
		}
		versions, err = pgx.CollectRows(rows, pgx.RowTo[string])
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list versions with enqueued workflows: %w", err)
	}
	return versions, nil
}

// PendingExecutors returns the executors whose ID starts with prefix and
// that own PENDING workflows in sysDB, by the application version of those
// workflows. The platform compares them with the executors it runs to find
// the work of executors that are gone.
func (d *DB) PendingExecutors(ctx context.Context, inst hangar.DBInstance, sysDB, prefix string) (map[string][]string, error) {
	owners := map[string][]string{}
	err := d.withSysDB(ctx, inst, sysDB, func(c *pgx.Conn) error {
		rows, err := c.Query(ctx, `SELECT DISTINCT application_version, executor_id FROM dbos.workflow_status
			WHERE status = 'PENDING' AND application_version IS NOT NULL AND starts_with(executor_id, $1)
			ORDER BY 1, 2`, prefix)
		if err != nil {
			return err
		}
		var version, executor string
		_, err = pgx.ForEachRow(rows, []any{&version, &executor}, func() error {
			owners[version] = append(owners[version], executor)
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list executors with pending workflows: %w", err)
	}
	return owners, nil
}

// RecoverWorkflows re-enqueues the PENDING workflows that executorIDs ran
// for appVersion in sysDB, with the statement the DBOS SDKs run at launch for
// their own executor ID: each becomes ENQUEUED again on its queue, or on the
// SDK's internal queue when it had none, so that a live executor of the same
// version dequeues it and resumes it from its last recorded step. It returns
// how many workflows it re-enqueued. The executors must be dead: a workflow
// re-enqueued while its executor still runs it runs twice at once.
func (d *DB) RecoverWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB string, executorIDs []string, appVersion string) (int, error) {
	if len(executorIDs) == 0 {
		return 0, nil
	}
	var n int64
	err := d.withSysDB(ctx, inst, sysDB, func(c *pgx.Conn) error {
		tag, err := c.Exec(ctx, `UPDATE dbos.workflow_status
			SET status = 'ENQUEUED', started_at_epoch_ms = NULL, owner_xid = NULL,
				queue_name = COALESCE(NULLIF(queue_name, ''), $4), updated_at = $3
			WHERE status = 'PENDING' AND executor_id = ANY($1) AND application_version = $2`,
			executorIDs, appVersion, time.Now().UnixMilli(), internalQueue)
		n = tag.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("recover workflows of %v (version %s): %w", executorIDs, appVersion, err)
	}
	return int(n), nil
}
