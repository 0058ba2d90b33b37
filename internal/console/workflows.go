package console

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// workflowStatuses are the statuses a list can be filtered by.
var workflowStatuses = []string{"PENDING", "ENQUEUED", "SUCCESS", "ERROR", "CANCELLED", "MAX_RECOVERY_ATTEMPTS_EXCEEDED"}

// workflowsData is the workflows (or queues) page.
type workflowsData struct {
	Queues   bool
	Statuses []string
	// The filter, as the form sent it.
	Status, Name, Version, Start, End string
	Workflows                         []apiclient.WorkflowStatus
	Limit                             int
}

const workflowsPageSize = 100

func (c *Console) workflowsPage(queues bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		s, org, err := c.orgSession(r)
		if err != nil {
			return err
		}
		q := r.URL.Query()
		d := workflowsData{Queues: queues, Statuses: workflowStatuses, Status: q.Get("status"), Name: strings.TrimSpace(q.Get("name")),
			Version: strings.TrimSpace(q.Get("version")), Start: q.Get("start"), End: q.Get("end"), Limit: workflowsPageSize}
		limit := workflowsPageSize
		req := apiclient.ListWorkflowsRequest{Limit: &limit, SortDesc: true, WorkflowName: d.Name, ApplicationVersion: d.Version}
		if d.Status != "" {
			req.Status = d.Status
		}
		if req.StartTime, err = formTime(d.Start); err != nil {
			return err
		}
		if req.EndTime, err = formTime(d.End); err != nil {
			return err
		}
		raw, err := s.api.Workflows(r.Context(), org, r.PathValue("app"), queues, req)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &d.Workflows); err != nil {
			return fmt.Errorf("decode workflows: %w", err)
		}
		tab, title := "workflows", "workflows"
		if queues {
			tab, title = "queues", "queues"
		}
		c.render(w, r, http.StatusOK, "workflows", page{Title: r.PathValue("app") + " " + title, User: s.user, Org: org, App: r.PathValue("app"), Tab: tab, Data: d})
		return nil
	}
}

// formTime turns a datetime-local field (UTC) into RFC 3339.
func formTime(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	t, err := time.Parse("2006-01-02T15:04", v)
	if err != nil {
		return "", &pageError{Status: http.StatusBadRequest, Message: "Times look like 2026-01-31T13:45 (UTC); got " + strconv.Quote(v) + "."}
	}
	return t.UTC().Format(time.RFC3339), nil
}

// workflowData is a workflow's detail page.
type workflowData struct {
	W     apiclient.WorkflowStatus
	Steps []apiclient.WorkflowStep
}

func (c *Console) workflowPage(w http.ResponseWriter, r *http.Request) error {
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	base := "/appsadmin/" + url.PathEscape(org) + "/applications/" + url.PathEscape(r.PathValue("app")) + "/workflows/" + url.PathEscape(r.PathValue("id"))
	// Each call opens a connection to the app's system database: both at
	// once.
	var d workflowData
	stepsErr := make(chan error, 1)
	go func() { stepsErr <- s.api.Do(r.Context(), http.MethodGet, base+"/steps", nil, &d.Steps) }()
	err = s.api.Do(r.Context(), http.MethodGet, base, nil, &d.W)
	if err := errors.Join(err, <-stepsErr); err != nil {
		return err
	}
	c.render(w, r, http.StatusOK, "workflow", page{Title: "Workflow " + d.W.WorkflowUUID, User: s.user, Org: org, App: r.PathValue("app"), Tab: "workflows", Data: d})
	return nil
}

func (c *Console) workflowAction(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	s, org, err := c.orgSession(r)
	if err != nil {
		return err
	}
	app, id, action := r.PathValue("app"), r.PathValue("id"), r.PathValue("action")
	switch action {
	case "cancel", "resume", "restart":
	case "fork":
		step, err := strconv.Atoi(r.PostForm.Get("step"))
		if err != nil || step < 0 {
			return &pageError{Status: http.StatusBadRequest, Message: "Pick the step to fork from in the steps of the workflow."}
		}
		newID, err := s.api.ForkWorkflow(r.Context(), org, app, id, step)
		if err != nil {
			return err
		}
		return redirect(w, r, appPath(org, app, "workflows", newID), "Workflow forked from step "+strconv.Itoa(step)+" of "+id+".")
	default:
		return &pageError{Status: http.StatusNotFound, Message: "No workflow action " + strconv.Quote(action) + "."}
	}
	if err := s.api.WorkflowAction(r.Context(), org, app, id, action); err != nil {
		return err
	}
	past := map[string]string{"cancel": "cancelled", "resume": "resumed", "restart": "restarted"}[action]
	return redirect(w, r, appPath(org, app, "workflows", id), "Workflow "+past+".")
}
