package apiclient

// ListWorkflowsRequest is POST …/applications/{app}/workflows and
// …/queues (and their /appsadmin forms): the filters of the DBOS admin
// server's /workflows. Unset numbers arrive as null (the official CLI sends
// NaN).
type ListWorkflowsRequest struct {
	Limit              *int     `json:"limit,omitempty"`
	Offset             *int     `json:"offset,omitempty"`
	WorkflowUUIDs      []string `json:"workflow_uuids,omitempty"`
	AuthenticatedUser  string   `json:"authenticated_user,omitempty"`
	StartTime          string   `json:"start_time,omitempty"`
	EndTime            string   `json:"end_time,omitempty"`
	Status             any      `json:"status,omitempty"` // a string or a list of strings
	WorkflowIDPrefix   string   `json:"workflow_id_prefix,omitempty"`
	ApplicationVersion string   `json:"application_version,omitempty"`
	WorkflowName       string   `json:"workflow_name,omitempty"`
	QueueName          string   `json:"queue_name,omitempty"`
	SortDesc           bool     `json:"sort_desc,omitempty"`
	LoadInput          bool     `json:"load_input,omitempty"`
	LoadOutput         bool     `json:"load_output,omitempty"`
}

// WorkflowStatus is one workflow as POST …/workflows and …/queues list it
// and GET /appsadmin/{org}/applications/{app}/workflows/{id} returns it:
// the DBOS admin server's shape (WorkflowsOutput of the DBOS SDKs'
// conductor protocol). Times are epoch milliseconds, as strings; Input,
// Output and Error are serialized as the app's DBOS SDK stored them, and
// only listed when asked for (load_input, load_output).
type WorkflowStatus struct {
	WorkflowUUID            string
	Status                  string
	WorkflowName            string
	WorkflowClassName       string `json:",omitempty"`
	WorkflowConfigName      string `json:",omitempty"`
	AuthenticatedUser       string `json:",omitempty"`
	AssumedRole             string `json:",omitempty"`
	AuthenticatedRoles      string `json:",omitempty"` // a JSON list
	Input                   string `json:",omitempty"`
	Output                  string `json:",omitempty"`
	Error                   string `json:",omitempty"`
	CreatedAt               string `json:",omitempty"`
	UpdatedAt               string `json:",omitempty"`
	QueueName               string `json:",omitempty"`
	ApplicationVersion      string `json:",omitempty"`
	ApplicationID           string `json:",omitempty"`
	ExecutorID              string `json:",omitempty"`
	WorkflowTimeoutMS       string `json:",omitempty"`
	WorkflowDeadlineEpochMS string `json:",omitempty"`
	DeduplicationID         string `json:",omitempty"`
	Priority                string
	QueuePartitionKey       string `json:",omitempty"`
	DequeuedAt              string `json:",omitempty"`
	ForkedFrom              string `json:",omitempty"`
	WasForkedFrom           bool
	ParentWorkflowID        string `json:",omitempty"`
	DelayUntilEpochMS       string `json:",omitempty"`
	CompletedAt             string `json:",omitempty"`
	Attributes              string `json:",omitempty"` // a JSON object
}

// WorkflowStep is one step of GET …/workflows/{id}/steps, in the DBOS admin
// server's shape: times are epoch milliseconds, as strings.
type WorkflowStep struct {
	FunctionID         int    `json:"function_id"`
	FunctionName       string `json:"function_name"`
	Output             string `json:"output,omitempty"`
	Error              string `json:"error,omitempty"`
	ChildWorkflowID    string `json:"child_workflow_id,omitempty"`
	StartedAtEpochMS   string `json:"started_at_epoch_ms,omitempty"`
	CompletedAtEpochMS string `json:"completed_at_epoch_ms,omitempty"`
}

// ForkWorkflowRequest is POST /hangar/v1/{org}/applications/{app}/workflows/{id}/fork:
// the new workflow keeps the steps the original recorded below StartStep
// and runs from StartStep on (0: from the beginning, as a restart).
type ForkWorkflowRequest struct {
	StartStep int `json:"start_step"`
}

// RestartWorkflowResponse is POST …/workflows/{id}/restart and …/fork: the
// ID of the new workflow.
type RestartWorkflowResponse struct {
	WorkflowID string `json:"workflow_id"`
}
