package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Workflows manages the DBOS workflows of an app, as the DBOS admin server
// did; *deploy.Service satisfies it. Every method names the org and the
// app, and returns KindNotFound for an unknown app or workflow and
// KindUnavailable while the app's database instance is not available.
type Workflows interface {
	// Workflows lists the workflows f selects.
	Workflows(ctx context.Context, org, app string, f hangar.WorkflowFilter) ([]hangar.Workflow, error)
	// Workflow returns one workflow with its input and output.
	Workflow(ctx context.Context, org, app, id string) (hangar.Workflow, error)
	// WorkflowSteps returns the steps a workflow recorded.
	WorkflowSteps(ctx context.Context, org, app, id string) ([]hangar.WorkflowStep, error)
	// CancelWorkflow cancels a workflow that has not ended.
	CancelWorkflow(ctx context.Context, org, app, id string) error
	// ResumeWorkflow resumes a workflow from its last recorded step.
	ResumeWorkflow(ctx context.Context, org, app, id string) error
	// RestartWorkflow starts a workflow again from the beginning under a
	// new ID, which it returns.
	RestartWorkflow(ctx context.Context, org, app, id string) (string, error)
	// ForkWorkflow starts a copy of a workflow from startStep under a new
	// ID, which it returns. KindInvalid for a negative startStep.
	ForkWorkflow(ctx context.Context, org, app, id string, startStep int) (string, error)
}

// workflowsAPI serves the workflow routes.
type workflowsAPI struct{ *Server }

// listWorkflows lists the app's workflows; queues lists those in a queue
// that wait or run, unless the request asks for other statuses.
func (s *workflowsAPI) listWorkflows(queues bool) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		org, err := orgOf(r)
		if err != nil {
			return err
		}
		var req apiclient.ListWorkflowsRequest
		if r.ContentLength != 0 {
			if err := decode(r, &req); err != nil {
				return err
			}
		}
		f, err := workflowFilter(req)
		if err != nil {
			return err
		}
		f.QueuesOnly = queues
		ws, err := s.workflows.Workflows(r.Context(), org, r.PathValue("app"), f)
		if err != nil {
			return err
		}
		out := make([]apiclient.WorkflowStatus, 0, len(ws))
		for _, wf := range ws {
			out = append(out, toWorkflowStatus(wf))
		}
		return writeJSON(w, http.StatusOK, out)
	}
}

func (s *workflowsAPI) getWorkflow(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	wf, err := s.workflows.Workflow(r.Context(), org, r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, toWorkflowStatus(wf))
}

func (s *workflowsAPI) workflowSteps(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	steps, err := s.workflows.WorkflowSteps(r.Context(), org, r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	out := make([]apiclient.WorkflowStep, 0, len(steps))
	for _, st := range steps {
		out = append(out, apiclient.WorkflowStep{
			FunctionID: st.ID, FunctionName: st.Name, Output: st.Output, Error: st.Error,
			ChildWorkflowID: st.ChildWorkflowID, StartedAtEpochMS: epochMS(st.StartedAt), CompletedAtEpochMS: epochMS(st.CompletedAt),
		})
	}
	return writeJSON(w, http.StatusOK, out)
}

func (s *workflowsAPI) cancelWorkflow(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	if err := s.workflows.CancelWorkflow(r.Context(), org, r.PathValue("app"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *workflowsAPI) resumeWorkflow(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	if err := s.workflows.ResumeWorkflow(r.Context(), org, r.PathValue("app"), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *workflowsAPI) restartWorkflow(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	id, err := s.workflows.RestartWorkflow(r.Context(), org, r.PathValue("app"), r.PathValue("id"))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.RestartWorkflowResponse{WorkflowID: id})
}

// forkWorkflow starts a copy of a workflow that runs from a step on; the
// official CLI has no such command, the console's workflow page does.
func (s *workflowsAPI) forkWorkflow(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	var req apiclient.ForkWorkflowRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	id, err := s.workflows.ForkWorkflow(r.Context(), org, r.PathValue("app"), r.PathValue("id"), req.StartStep)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.RestartWorkflowResponse{WorkflowID: id})
}

// workflowFilter validates the filters of a workflow listing.
func workflowFilter(req apiclient.ListWorkflowsRequest) (hangar.WorkflowFilter, error) {
	f := hangar.WorkflowFilter{
		IDs: req.WorkflowUUIDs, IDPrefix: req.WorkflowIDPrefix, Name: req.WorkflowName,
		AuthenticatedUser: req.AuthenticatedUser, ApplicationVersion: req.ApplicationVersion, QueueName: req.QueueName,
		SortDesc: req.SortDesc, LoadInput: req.LoadInput, LoadOutput: req.LoadOutput, Limit: req.Limit,
	}
	if req.Limit != nil && (*req.Limit < 0 || *req.Limit > hangar.MaxWorkflowsListed) {
		return f, hangar.Errorf(hangar.KindInvalid, "limit must be between 0 and %d, got %d", hangar.MaxWorkflowsListed, *req.Limit)
	}
	if req.Offset != nil {
		if *req.Offset < 0 {
			return f, hangar.Errorf(hangar.KindInvalid, "offset must be 0 or more, got %d", *req.Offset)
		}
		f.Offset = *req.Offset
	}
	var statuses []string
	switch st := req.Status.(type) {
	case nil:
	case string:
		if st != "" {
			statuses = []string{st}
		}
	case []any:
		for _, v := range st {
			s, ok := v.(string)
			if !ok {
				return f, hangar.Errorf(hangar.KindInvalid, "status must be a string or a list of strings")
			}
			statuses = append(statuses, s)
		}
	default:
		return f, hangar.Errorf(hangar.KindInvalid, "status must be a string or a list of strings")
	}
	for _, s := range statuses {
		st, err := parseWorkflowStatus(s)
		if err != nil {
			return f, err
		}
		f.Statuses = append(f.Statuses, st)
	}
	var err error
	if f.StartTime, err = parseWorkflowTime("start_time", req.StartTime); err != nil {
		return f, err
	}
	if f.EndTime, err = parseWorkflowTime("end_time", req.EndTime); err != nil {
		return f, err
	}
	return f, nil
}

// parseWorkflowStatus parses a status as the DBOS CLIs name them, in any
// case: RETRIES_EXCEEDED is MAX_RECOVERY_ATTEMPTS_EXCEEDED.
func parseWorkflowStatus(s string) (hangar.WorkflowStatus, error) {
	up := strings.ToUpper(strings.TrimSpace(s))
	if up == "RETRIES_EXCEEDED" {
		return hangar.WorkflowMaxRecoveryAttemptsExceeded, nil
	}
	names := make([]string, 0, len(hangar.WorkflowStatuses))
	for _, st := range hangar.WorkflowStatuses {
		if string(st) == up {
			return st, nil
		}
		names = append(names, string(st))
	}
	return "", hangar.Errorf(hangar.KindInvalid, "unknown workflow status %q: use one of %s (or RETRIES_EXCEEDED)", s, strings.Join(names, ", "))
}

// parseWorkflowTime parses an ISO 8601 time of a workflow filter; one
// without a time zone is UTC. "" is the zero time.
func parseWorkflowTime(field, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, hangar.Errorf(hangar.KindInvalid, "%s %q is not an ISO 8601 time (like 2026-01-02T15:04:05Z)", field, s)
}

// toWorkflowStatus converts a workflow to the admin server's shape.
func toWorkflowStatus(w hangar.Workflow) apiclient.WorkflowStatus {
	out := apiclient.WorkflowStatus{
		WorkflowUUID: w.ID, Status: string(w.Status), WorkflowName: w.Name,
		WorkflowClassName: w.ClassName, WorkflowConfigName: w.ConfigName,
		AuthenticatedUser: w.AuthenticatedUser, AssumedRole: w.AssumedRole,
		Input: w.Input, Output: w.Output, Error: w.Error,
		CreatedAt: epochMS(w.CreatedAt), UpdatedAt: epochMS(w.UpdatedAt),
		QueueName: w.QueueName, ApplicationVersion: w.ApplicationVersion, ApplicationID: w.ApplicationID,
		ExecutorID: w.ExecutorID, WorkflowDeadlineEpochMS: epochMS(w.Deadline), DeduplicationID: w.DeduplicationID,
		Priority: strconv.Itoa(w.Priority), QueuePartitionKey: w.QueuePartitionKey, DequeuedAt: epochMS(w.DequeuedAt),
		ForkedFrom: w.ForkedFrom, WasForkedFrom: w.WasForkedFrom, ParentWorkflowID: w.ParentWorkflowID,
		DelayUntilEpochMS: epochMS(w.DelayUntil), CompletedAt: epochMS(w.CompletedAt), Attributes: w.Attributes,
	}
	if roles := strings.TrimSpace(w.AuthenticatedRoles); roles != "[]" && roles != "null" {
		out.AuthenticatedRoles = roles
	}
	if w.Timeout > 0 {
		out.WorkflowTimeoutMS = strconv.FormatInt(w.Timeout.Milliseconds(), 10)
	}
	return out
}

// epochMS formats t as epoch milliseconds; the zero time is "".
func epochMS(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}
