package sysdb

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// The tables' columns differ between DBOS SDK versions: this file reads
// which ones a system database has, and the rows of workflow_status.

// nowMS is the current time in epoch milliseconds, as DBOS records it.
const nowMS = "(EXTRACT(epoch FROM now()) * 1000)::bigint"

// sysSchema maps each table of schema dbos to its columns, in order.
type sysSchema map[string][]string

func readSchema(ctx context.Context, q querier) (sysSchema, error) {
	rows, err := q.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = 'dbos' ORDER BY table_name, ordinal_position`)
	if err != nil {
		return nil, err
	}
	s := sysSchema{}
	var table, column string
	_, err = pgx.ForEachRow(rows, []any{&table, &column}, func() error {
		s[table] = append(s[table], column)
		return nil
	})
	return s, err
}

func (s sysSchema) has(table, column string) bool { return slices.Contains(s[table], column) }

// col is column of workflow_status (alias ws) as type typ, or a NULL of
// that type where the table lacks it.
func (s sysSchema) col(column, typ string) string {
	if s.has("workflow_status", column) {
		return "ws." + column + "::" + typ
	}
	return "NULL::" + typ
}

// payload is the first of the columns (alias.column) present, or NULL: a
// payload's column moved between SDK versions, and rows written before a
// move keep it where it was.
func (s sysSchema) payload(cols ...string) string {
	var present []string
	for _, c := range cols {
		alias, column, _ := strings.Cut(c, ".")
		table := map[string]string{"ws": "workflow_status", "wi": "workflow_input", "wo": "workflow_output"}[alias]
		if s.has(table, column) {
			present = append(present, c)
		}
	}
	switch len(present) {
	case 0:
		return "NULL::text"
	case 1:
		return present[0]
	}
	return "COALESCE(" + strings.Join(present, ", ") + ")"
}

// querier is a connection or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// wfRow receives one row of a workflow listing.
type wfRow struct {
	id                                                         string
	status, name, className, configName, user, role, roles     *string
	input, output, errText                                     *string
	queue, appVersion, appID, executor, dedup, partition       *string
	forkedFrom, parent, attributes                             *string
	createdAt, updatedAt                                       int64
	recovery, timeout, deadline, started, delayUntil, complete *int64
	priority                                                   *int64
	wasForked                                                  *bool
}

// wfColumn is a workflow_status column a listing reads: its type, and
// where it goes.
type wfColumn struct {
	name, typ string
	dst       any
}

// columns are the columns a listing reads into r.
func (r *wfRow) columns() []wfColumn {
	return []wfColumn{
		{"workflow_uuid", "text", &r.id}, {"status", "text", &r.status}, {"name", "text", &r.name},
		{"class_name", "text", &r.className}, {"config_name", "text", &r.configName},
		{"authenticated_user", "text", &r.user}, {"assumed_role", "text", &r.role},
		{"authenticated_roles", "text", &r.roles}, {"created_at", "bigint", &r.createdAt},
		{"updated_at", "bigint", &r.updatedAt}, {"queue_name", "text", &r.queue},
		{"application_version", "text", &r.appVersion}, {"application_id", "text", &r.appID},
		{"executor_id", "text", &r.executor}, {"recovery_attempts", "bigint", &r.recovery},
		{"workflow_timeout_ms", "bigint", &r.timeout}, {"workflow_deadline_epoch_ms", "bigint", &r.deadline},
		{"deduplication_id", "text", &r.dedup}, {"priority", "bigint", &r.priority},
		{"queue_partition_key", "text", &r.partition}, {"started_at_epoch_ms", "bigint", &r.started},
		{"forked_from", "text", &r.forkedFrom}, {"was_forked_from", "boolean", &r.wasForked},
		{"parent_workflow_id", "text", &r.parent}, {"delay_until_epoch_ms", "bigint", &r.delayUntil},
		{"completed_at", "bigint", &r.complete}, {"attributes", "text", &r.attributes},
	}
}

func (r *wfRow) workflow() hangar.Workflow {
	w := hangar.Workflow{
		ID: r.id, Status: hangar.WorkflowStatus(deref(r.status)), Name: deref(r.name),
		ClassName: deref(r.className), ConfigName: deref(r.configName),
		AuthenticatedUser: deref(r.user), AssumedRole: deref(r.role), AuthenticatedRoles: deref(r.roles),
		Input: deref(r.input), Output: deref(r.output), Error: deref(r.errText),
		CreatedAt: msTime(&r.createdAt), UpdatedAt: msTime(&r.updatedAt),
		QueueName: deref(r.queue), ApplicationVersion: deref(r.appVersion), ApplicationID: deref(r.appID),
		ExecutorID: deref(r.executor), DeduplicationID: deref(r.dedup), QueuePartitionKey: deref(r.partition),
		Deadline: msTime(r.deadline), DequeuedAt: msTime(r.started), DelayUntil: msTime(r.delayUntil),
		CompletedAt: msTime(r.complete), ForkedFrom: deref(r.forkedFrom), ParentWorkflowID: deref(r.parent),
		Attributes: deref(r.attributes),
	}
	if r.recovery != nil {
		w.RecoveryAttempts = *r.recovery
	}
	if r.timeout != nil && *r.timeout > 0 {
		w.Timeout = time.Duration(*r.timeout) * time.Millisecond
	}
	if r.priority != nil {
		w.Priority = int(*r.priority)
	}
	if r.wasForked != nil {
		w.WasForkedFrom = *r.wasForked
	}
	return w
}

// deref returns *p, or "" for nil.
func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

// msTime converts epoch milliseconds; nil is the zero time.
func msTime(ms *int64) time.Time {
	if ms == nil {
		return time.Time{}
	}
	return time.UnixMilli(*ms)
}
