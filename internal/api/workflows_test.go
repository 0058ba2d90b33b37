package api

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestWorkflowFilter(t *testing.T) {
	t.Parallel()
	ten := 10
	for _, tc := range []struct {
		name, body string
		want       hangar.WorkflowFilter
		wantErr    string
	}{
		// The official CLI sends an unset --limit or --offset as NaN: null.
		{name: "NaNIsNull", body: `{"limit":null,"offset":null,"workflow_name":"greet","sort_desc":true}`,
			want: hangar.WorkflowFilter{Name: "greet", SortDesc: true}},
		{name: "Status", body: `{"limit":10,"offset":3,"status":"success"}`,
			want: hangar.WorkflowFilter{Limit: &ten, Offset: 3, Statuses: []hangar.WorkflowStatus{hangar.WorkflowSuccess}}},
		{name: "StatusList", body: `{"status":["ENQUEUED","RETRIES_EXCEEDED"],"workflow_uuids":["a","b"],"load_input":true}`,
			want: hangar.WorkflowFilter{IDs: []string{"a", "b"}, LoadInput: true,
				Statuses: []hangar.WorkflowStatus{hangar.WorkflowEnqueued, hangar.WorkflowMaxRecoveryAttemptsExceeded}}},
		{name: "Times", body: `{"start_time":"2026-01-02T03:04:05.5+01:00","end_time":"2026-01-03"}`,
			want: hangar.WorkflowFilter{
				StartTime: time.Date(2026, 1, 2, 2, 4, 5, 5e8, time.UTC), EndTime: time.Date(2026, 1, 3, 0, 0, 0, 0, time.UTC)}},
		{name: "NegativeLimit", body: `{"limit":-1}`, wantErr: "limit must be between 0 and 10000, got -1"},
		{name: "LimitTooLarge", body: `{"limit":10001}`, wantErr: "limit must be between 0 and 10000, got 10001"},
		{name: "NegativeOffset", body: `{"offset":-2}`, wantErr: "offset must be 0 or more, got -2"},
		{name: "UnknownStatus", body: `{"status":"DONE"}`, wantErr: `unknown workflow status "DONE": use one of PENDING, ENQUEUED`},
		{name: "StatusNotString", body: `{"status":[1]}`, wantErr: "status must be a string or a list of strings"},
		{name: "BadTime", body: `{"end_time":"yesterday"}`, wantErr: `end_time "yesterday" is not an ISO 8601 time`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var req apiclient.ListWorkflowsRequest
			if err := json.Unmarshal([]byte(tc.body), &req); err != nil {
				t.Fatal(err)
			}
			got, err := workflowFilter(req)
			if tc.wantErr != "" {
				if hangar.KindOf(err) != hangar.KindInvalid || !strings.Contains(hangar.MessageOf(err), tc.wantErr) {
					t.Errorf("workflowFilter(%s) = %v, want %s error %q", tc.body, err, hangar.KindInvalid, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("workflowFilter(%s) (-want +got):\n%s", tc.body, diff)
			}
		})
	}
}

func TestToWorkflowStatus(t *testing.T) {
	t.Parallel()
	created := time.UnixMilli(1767225600123)
	got, err := json.Marshal(toWorkflowStatus(hangar.Workflow{
		ID: "wf-1", Status: hangar.WorkflowSuccess, Name: "greet", AuthenticatedRoles: "[]",
		Output: `{"json":"hi"}`, CreatedAt: created, UpdatedAt: created.Add(time.Second),
		ApplicationVersion: "v1", ExecutorID: "ex-1", Timeout: 2 * time.Second,
	}))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"WorkflowUUID":"wf-1","Status":"SUCCESS","WorkflowName":"greet","Output":"{\"json\":\"hi\"}",` +
		`"CreatedAt":"1767225600123","UpdatedAt":"1767225601123","ApplicationVersion":"v1","ExecutorID":"ex-1",` +
		`"WorkflowTimeoutMS":"2000","Priority":"0","WasForkedFrom":false}`
	if string(got) != want {
		t.Errorf("toWorkflowStatus() =\n%s\nwant\n%s", got, want)
	}
}

// TestRoutes_Workflows: the routes of the official CLI's workflow commands,
// and Hangar's fork from a step, are served (registering them also checks
// that no pattern conflicts).
func TestRoutes_Workflows(t *testing.T) {
	t.Parallel()
	routes := Routes()
	for _, want := range []string{
		"POST /v1alpha1/{org}/applications/{app}/workflows",
		"POST /v1alpha1/{org}/applications/{app}/queues",
		"POST /appsadmin/{org}/applications/{app}/workflows/{id}/cancel",
		"POST /appsadmin/{org}/applications/{app}/workflows/{id}/resume",
		"POST /appsadmin/{org}/applications/{app}/workflows/{id}/restart",
		"POST /hangar/v1/{org}/applications/{app}/workflows/{id}/fork",
	} {
		if !slices.Contains(routes, want) {
			t.Errorf("Routes() lacks %q", want)
		}
	}
}
