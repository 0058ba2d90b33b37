package sysdb

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// This file serves what the DBOS admin server did for the platform (list,
// get, steps, cancel, resume, fork) from an app's system database, since
// current DBOS SDKs have no admin server. The statements mirror those of
// the DBOS Transact Go SDK v1.8.0, dbos/internal/sysdb/system_database.go
// (ListWorkflows, GetWorkflowSteps, CancelWorkflows, ResumeWorkflows,
// ForkWorkflows); the TypeScript SDK 5.x runs the same ones. The tables'
// columns differ between SDK versions, so they use only the columns the
// database has: a missing one reads as NULL and is not written.

// listWorkflows runs the listing of DBOS's ListWorkflows with filter f.
func listWorkflows(ctx context.Context, q querier, s sysSchema, f hangar.WorkflowFilter) ([]hangar.Workflow, error) {
	if !s.has("workflow_status", "workflow_uuid") {
		return nil, nil // DBOS has not created its tables yet
	}
	var r wfRow
	exprs, dsts, from := listColumns(s, f, &r)
	where, args := listFilter(s, f)
	sql := "SELECT " + strings.Join(exprs, ", ") + " FROM " + from
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	order := "ASC"
	if f.SortDesc {
		order = "DESC"
	}
	limit := hangar.MaxWorkflowsListed
	if f.Limit != nil {
		limit = *f.Limit
	}
	sql += fmt.Sprintf(" ORDER BY ws.created_at %s, ws.workflow_uuid %s LIMIT $%d OFFSET $%d", order, order, len(args)+1, len(args)+2)
	args = append(args, limit, f.Offset)

	rows, err := q.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	var out []hangar.Workflow
	_, err = pgx.ForEachRow(rows, dsts, func() error {
		out = append(out, r.workflow())
		return nil
	})
	return out, err
}

// listColumns returns what a listing selects (the columns the schema has,
// and the input and output when f asks for them), where each goes in r,
// and the tables it reads them from.
func listColumns(s sysSchema, f hangar.WorkflowFilter, r *wfRow) (exprs []string, dsts []any, from string) {
	cols := r.columns()
	exprs = make([]string, 0, len(cols)+3)
	dsts = make([]any, 0, len(cols)+3)
	for _, c := range cols {
		exprs = append(exprs, s.col(c.name, c.typ))
		dsts = append(dsts, c.dst)
	}
	from = "dbos.workflow_status ws"
	input, output, errText := "NULL::text", "NULL::text", "NULL::text"
	if f.LoadInput {
		input = s.payload("wi.inputs", "ws.inputs")
		if s.has("workflow_input", "inputs") {
			from += " LEFT JOIN dbos.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid"
		}
	}
	if f.LoadOutput {
		output, errText = s.payload("wo.output", "ws.output"), s.payload("wo.error", "ws.error")
		if s.has("workflow_output", "output") {
			from += " LEFT JOIN dbos.workflow_output wo ON wo.workflow_uuid = ws.workflow_uuid"
		}
	}
	exprs = append(exprs, input, output, errText)
	dsts = append(dsts, &r.input, &r.output, &r.errText)
	return exprs, dsts, from
}

// listFilter returns the conditions of a listing with filter f and their
// arguments ($1, $2, … in order).
func listFilter(s sysSchema, f hangar.WorkflowFilter) (where []string, args []any) {
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if len(f.IDs) > 0 {
		add("ws.workflow_uuid = ANY($%d)", f.IDs)
	}
	if f.IDPrefix != "" {
		add("starts_with(ws.workflow_uuid, $%d)", f.IDPrefix)
	}
	for _, eq := range []struct{ column, value string }{
		{"name", f.Name}, {"authenticated_user", f.AuthenticatedUser},
		{"application_version", f.ApplicationVersion}, {"queue_name", f.QueueName},
	} {
		if eq.value != "" {
			add(s.col(eq.column, "text")+" = $%d", eq.value)
		}
	}
	statuses := f.Statuses
	if f.QueuesOnly {
		where = append(where, s.col("queue_name", "text")+" IS NOT NULL")
		if len(statuses) == 0 {
			statuses = []hangar.WorkflowStatus{hangar.WorkflowEnqueued, hangar.WorkflowPending, hangar.WorkflowDelayed}
		}
	}
	if len(statuses) > 0 {
		ss := make([]string, len(statuses))
		for i, st := range statuses {
			ss[i] = string(st)
		}
		add("ws.status = ANY($%d)", ss)
	}
	if !f.StartTime.IsZero() {
		add("ws.created_at >= $%d", f.StartTime.UnixMilli())
	}
	if !f.EndTime.IsZero() {
		add("ws.created_at <= $%d", f.EndTime.UnixMilli())
	}
	return where, args
}

// ListWorkflows returns the workflows of sysDB that f selects, as DBOS's
// ListWorkflows does.
func (d *DB) ListWorkflows(ctx context.Context, inst hangar.DBInstance, sysDB string, f hangar.WorkflowFilter) ([]hangar.Workflow, error) {
	var out []hangar.Workflow
	err := d.withSchema(ctx, inst, sysDB, func(c *pgx.Conn, s sysSchema) error {
		var err error
		out, err = listWorkflows(ctx, c, s, f)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list workflows: %w", err)
	}
	return out, nil
}

// GetWorkflow returns workflow id of sysDB with its input and output.
// KindNotFound.
func (d *DB) GetWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string) (hangar.Workflow, error) {
	var w hangar.Workflow
	err := d.withSchema(ctx, inst, sysDB, func(c *pgx.Conn, s sysSchema) error {
		var err error
		w, err = getWorkflow(ctx, c, s, id)
		return err
	})
	return w, err
}

// getWorkflow reads workflow id with its input and output. KindNotFound.
func getWorkflow(ctx context.Context, q querier, s sysSchema, id string) (hangar.Workflow, error) {
	ws, err := listWorkflows(ctx, q, s, hangar.WorkflowFilter{IDs: []string{id}, LoadInput: true, LoadOutput: true})
	if err != nil {
		return hangar.Workflow{}, fmt.Errorf("get workflow %s: %w", id, err)
	}
	if len(ws) == 0 {
		return hangar.Workflow{}, workflowNotFound(id)
	}
	return ws[0], nil
}

func workflowNotFound(id string) error {
	return hangar.Errorf(hangar.KindNotFound, "workflow %s not found", id)
}

// WorkflowSteps returns the steps workflow id of sysDB recorded, in order,
// as DBOS's GetWorkflowSteps does. KindNotFound.
func (d *DB) WorkflowSteps(ctx context.Context, inst hangar.DBInstance, sysDB, id string) ([]hangar.WorkflowStep, error) {
	var steps []hangar.WorkflowStep
	err := d.withSchema(ctx, inst, sysDB, func(c *pgx.Conn, s sysSchema) error {
		if err := requireWorkflow(ctx, c, s, id); err != nil {
			return err
		}
		if !s.has("operation_outputs", "function_id") {
			return nil
		}
		col := func(column, typ string) string {
			if s.has("operation_outputs", column) {
				return column + "::" + typ
			}
			return "NULL::" + typ
		}
		rows, err := c.Query(ctx, `SELECT function_id, `+col("function_name", "text")+`, `+col("output", "text")+`, `+
			col("error", "text")+`, `+col("child_workflow_id", "text")+`, `+col("started_at_epoch_ms", "bigint")+`, `+
			col("completed_at_epoch_ms", "bigint")+`
			FROM dbos.operation_outputs WHERE workflow_uuid = $1 ORDER BY function_id ASC`, id)
		if err != nil {
			return err
		}
		var st hangar.WorkflowStep
		var name, output, errText, child *string
		var started, completed *int64
		_, err = pgx.ForEachRow(rows, []any{&st.ID, &name, &output, &errText, &child, &started, &completed}, func() error {
			steps = append(steps, hangar.WorkflowStep{
				ID: st.ID, Name: deref(name), Output: deref(output), Error: deref(errText), ChildWorkflowID: deref(child),
				StartedAt: msTime(started), CompletedAt: msTime(completed),
			})
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list steps of workflow %s: %w", id, err)
	}
	return steps, nil
}

// withSchema runs f on a connection to sysDB, with the columns of the
// schema DBOS created there.
func (d *DB) withSchema(ctx context.Context, inst hangar.DBInstance, sysDB string, f func(*pgx.Conn, sysSchema) error) error {
	return d.withSysDB(ctx, inst, sysDB, func(c *pgx.Conn) error {
		s, err := readSchema(ctx, c)
		if err != nil {
			return err
		}
		return f(c, s)
	})
}

// changeWorkflow runs f in a transaction on sysDB, once workflow id is
// known to be there. KindNotFound.
func (d *DB) changeWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string, f func(pgx.Tx, sysSchema) error) error {
	return d.withSchema(ctx, inst, sysDB, func(c *pgx.Conn, s sysSchema) error {
		return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			if err := requireWorkflow(ctx, tx, s, id); err != nil {
				return err
			}
			return f(tx, s)
		})
	})
}

// requireWorkflow returns KindNotFound unless workflow id exists.
func requireWorkflow(ctx context.Context, q querier, s sysSchema, id string) error {
	found := false
	if s.has("workflow_status", "workflow_uuid") {
		if err := q.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM dbos.workflow_status WHERE workflow_uuid = $1)", id).Scan(&found); err != nil {
			return err
		}
	}
	if !found {
		return workflowNotFound(id)
	}
	return nil
}

// sets renders the assignments of an UPDATE of workflow_status, leaving out
// the columns the table lacks.
func (s sysSchema) sets(assign [][2]string) string {
	var out []string
	for _, a := range assign {
		if s.has("workflow_status", a[0]) {
			out = append(out, a[0]+" = "+a[1])
		}
	}
	return strings.Join(out, ", ")
}

// CancelWorkflow cancels workflow id of sysDB as DBOS's CancelWorkflows
// does: unless it has ended, it becomes CANCELLED and leaves its queue;
// its executor stops it before its next step. KindNotFound.
func (d *DB) CancelWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string) error {
	err := d.changeWorkflow(ctx, inst, sysDB, id, func(tx pgx.Tx, s sysSchema) error {
		_, err := tx.Exec(ctx, `UPDATE dbos.workflow_status SET `+s.sets([][2]string{
			{"status", "$1"}, {"updated_at", nowMS}, {"completed_at", nowMS}, {"started_at_epoch_ms", "NULL"},
			{"queue_name", "NULL"}, {"deduplication_id", "NULL"}, {"owner_xid", "NULL"},
		})+` WHERE workflow_uuid = $2 AND status NOT IN ($3, $4, $5)`,
			hangar.WorkflowCancelled, id, hangar.WorkflowSuccess, hangar.WorkflowError, hangar.WorkflowCancelled)
		return err
	})
	if err != nil {
		return fmt.Errorf("cancel workflow %s: %w", id, err)
	}
	return nil
}

// ResumeWorkflow resumes workflow id of sysDB as DBOS's ResumeWorkflows
// does: unless it ended with SUCCESS or ERROR, it is ENQUEUED again on the
// SDK's internal queue, for an executor of its application version to run
// from its last recorded step, keeping its ID. It returns the workflow
// after the change. KindNotFound.
func (d *DB) ResumeWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string) (hangar.Workflow, error) {
	var w hangar.Workflow
	err := d.changeWorkflow(ctx, inst, sysDB, id, func(tx pgx.Tx, s sysSchema) error {
		_, err := tx.Exec(ctx, `UPDATE dbos.workflow_status SET `+s.sets([][2]string{
			{"status", "$1"}, {"queue_name", "$2"}, {"recovery_attempts", "0"},
			{"workflow_deadline_epoch_ms", "NULL"}, {"deduplication_id", "NULL"}, {"owner_xid", "NULL"},
			{"started_at_epoch_ms", "NULL"}, {"updated_at", nowMS}, {"completed_at", "NULL"},
		})+` WHERE workflow_uuid = $3 AND status NOT IN ($4, $5)`,
			hangar.WorkflowEnqueued, internalQueue, id, hangar.WorkflowSuccess, hangar.WorkflowError)
		if err != nil {
			return err
		}
		w, err = getWorkflow(ctx, tx, s, id)
		return err
	})
	if err != nil {
		return hangar.Workflow{}, fmt.Errorf("resume workflow %s: %w", id, err)
	}
	return w, nil
}

// ForkWorkflow starts a copy of workflow id of sysDB under a new ID, as
// DBOS's ForkWorkflows does: the copy has the original's inputs and
// application version, is ENQUEUED on the SDK's internal queue, and keeps
// the steps (and their events and stream entries) the original recorded
// below startStep, so that it runs from startStep on; from step 0 it runs
// from the beginning. It returns the new workflow. KindNotFound;
// KindInvalid for a negative startStep.
func (d *DB) ForkWorkflow(ctx context.Context, inst hangar.DBInstance, sysDB, id string, startStep int) (hangar.Workflow, error) {
	if startStep < 0 {
		return hangar.Workflow{}, hangar.Errorf(hangar.KindInvalid, "the step to fork from must be 0 or more, got %d", startStep)
	}
	newID := uuid.NewString()
	var w hangar.Workflow
	err := d.changeWorkflow(ctx, inst, sysDB, id, func(tx pgx.Tx, s sysSchema) error {
		if err := forkStatus(ctx, tx, s, id, newID); err != nil {
			return err
		}
		if startStep > 0 {
			if err := forkHistory(ctx, tx, s, id, newID, startStep); err != nil {
				return err
			}
		}
		if s.has("workflow_status", "was_forked_from") {
			if _, err := tx.Exec(ctx, "UPDATE dbos.workflow_status SET was_forked_from = TRUE WHERE workflow_uuid = $1", id); err != nil {
				return err
			}
		}
		var err error
		w, err = getWorkflow(ctx, tx, s, newID)
		return err
	})
	if err != nil {
		return hangar.Workflow{}, fmt.Errorf("fork workflow %s: %w", id, err)
	}
	return w, nil
}

// forkStatus inserts the status (and inputs) of newID, a fork of id.
func forkStatus(ctx context.Context, tx pgx.Tx, s sysSchema, id, newID string) error {
	// The fork's own values; the other columns are copied from the original.
	own := map[string]string{
		"workflow_uuid": "$1", "status": "$2", "queue_name": "$3", "recovery_attempts": "0",
		"forked_from": "ws.workflow_uuid", "created_at": nowMS, "updated_at": nowMS,
	}
	copied := []string{
		"name", "authenticated_user", "assumed_role", "authenticated_roles", "application_version",
		"application_id", "serialization", "class_name", "config_name", "attributes", "application_name",
	}
	splitInputs := s.has("workflow_input", "inputs")
	if !splitInputs {
		copied = append(copied, "inputs") // older SDKs keep them in workflow_status
	}
	var cols, exprs []string
	for _, c := range s["workflow_status"] {
		expr, ok := own[c]
		if !ok && slices.Contains(copied, c) {
			expr, ok = "ws."+pgx.Identifier{c}.Sanitize(), true
		}
		if ok {
			cols, exprs = append(cols, pgx.Identifier{c}.Sanitize()), append(exprs, expr)
		}
	}
	_, err := tx.Exec(ctx, `INSERT INTO dbos.workflow_status (`+strings.Join(cols, ", ")+`)
		SELECT `+strings.Join(exprs, ", ")+` FROM dbos.workflow_status ws WHERE ws.workflow_uuid = $4`,
		newID, hangar.WorkflowEnqueued, internalQueue, id)
	if err != nil || !splitInputs {
		return err
	}
	from := "dbos.workflow_status ws LEFT JOIN dbos.workflow_input wi ON wi.workflow_uuid = ws.workflow_uuid"
	_, err = tx.Exec(ctx, `INSERT INTO dbos.workflow_input (workflow_uuid, inputs)
		SELECT $1, `+s.payload("wi.inputs", "ws.inputs")+` FROM `+from+` WHERE ws.workflow_uuid = $2`, newID, id)
	return err
}

// forkHistory copies to newID what workflow id recorded below startStep:
// its steps, its events' history and latest values, its stream entries.
func forkHistory(ctx context.Context, tx pgx.Tx, s sysSchema, id, newID string, startStep int) error {
	for _, table := range []string{"operation_outputs", "workflow_events_history", "streams"} {
		if !s.has(table, "function_id") {
			continue
		}
		var cols, exprs []string
		for _, c := range s[table] {
			if c == "retention_timestamp" { // a new row's own
				continue
			}
			expr := pgx.Identifier{c}.Sanitize()
			cols = append(cols, expr)
			if c == "workflow_uuid" {
				expr = "$1"
			}
			exprs = append(exprs, expr)
		}
		_, err := tx.Exec(ctx, `INSERT INTO dbos.`+table+` (`+strings.Join(cols, ", ")+`)
			SELECT `+strings.Join(exprs, ", ")+` FROM dbos.`+table+` WHERE workflow_uuid = $2 AND function_id < $3`,
			newID, id, startStep)
		if err != nil {
			return fmt.Errorf("copy %s: %w", table, err)
		}
	}
	if !s.has("workflow_events_history", "function_id") || !s.has("workflow_events", "value") {
		return nil
	}
	cols := []string{"key", "value"}
	if s.has("workflow_events", "serialization") && s.has("workflow_events_history", "serialization") {
		cols = append(cols, "serialization")
	}
	_, err := tx.Exec(ctx, `INSERT INTO dbos.workflow_events (workflow_uuid, `+strings.Join(cols, ", ")+`)
		SELECT $1, `+strings.Join(cols, ", ")+` FROM (
			SELECT h.`+strings.Join(cols, ", h.")+`, ROW_NUMBER() OVER (PARTITION BY h.key ORDER BY h.function_id DESC) AS rn
			FROM dbos.workflow_events_history h WHERE h.workflow_uuid = $2 AND h.function_id < $3
		) latest WHERE rn = 1`, newID, id, startStep)
	if err != nil {
		return fmt.Errorf("copy workflow_events: %w", err)
	}
	return nil
}
