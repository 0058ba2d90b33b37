package hangar

import "time"

// WorkflowStatus is the status DBOS records for a workflow in an app's
// system database.
type WorkflowStatus string

// The statuses of DBOS workflows.
const (
	WorkflowPending   WorkflowStatus = "PENDING"
	WorkflowEnqueued  WorkflowStatus = "ENQUEUED"
	WorkflowDelayed   WorkflowStatus = "DELAYED"
	WorkflowSuccess   WorkflowStatus = "SUCCESS"
	WorkflowError     WorkflowStatus = "ERROR"
	WorkflowCancelled WorkflowStatus = "CANCELLED"
	// WorkflowMaxRecoveryAttemptsExceeded is what the DBOS CLIs call
	// RETRIES_EXCEEDED.
	WorkflowMaxRecoveryAttemptsExceeded WorkflowStatus = "MAX_RECOVERY_ATTEMPTS_EXCEEDED"
)

// WorkflowStatuses lists every WorkflowStatus.
var WorkflowStatuses = []WorkflowStatus{
	WorkflowPending, WorkflowEnqueued, WorkflowDelayed, WorkflowSuccess,
	WorkflowError, WorkflowCancelled, WorkflowMaxRecoveryAttemptsExceeded,
}

// MaxWorkflowsListed bounds how many workflows one listing returns.
const MaxWorkflowsListed = 10000

// WorkflowFilter selects workflows of an app; a zero field selects all.
type WorkflowFilter struct {
	IDs                []string
	IDPrefix           string
	Name               string
	AuthenticatedUser  string
	ApplicationVersion string
	QueueName          string
	Statuses           []WorkflowStatus
	// StartTime and EndTime bound the creation time, inclusive.
	StartTime, EndTime time.Time
	// QueuesOnly selects workflows that have a queue; without Statuses,
	// only those waiting or running (ENQUEUED, PENDING, DELAYED).
	QueuesOnly bool
	// Limit is how many to return at most, MaxWorkflowsListed when nil;
	// Offset how many to skip first.
	Limit  *int
	Offset int
	// SortDesc lists the newest first; the oldest come first otherwise.
	SortDesc bool
	// LoadInput and LoadOutput also read the serialized inputs, and the
	// output and error.
	LoadInput, LoadOutput bool
}

// Workflow is one workflow as DBOS records it in an app's system database.
// Input, Output and Error are serialized as the app's DBOS SDK stored them.
type Workflow struct {
	ID                 string
	Status             WorkflowStatus
	Name               string
	ClassName          string
	ConfigName         string
	AuthenticatedUser  string
	AssumedRole        string
	AuthenticatedRoles string // a JSON list
	Input              string
	Output             string
	Error              string
	CreatedAt          time.Time
	UpdatedAt          time.Time
	QueueName          string
	ApplicationVersion string
	ApplicationID      string
	ExecutorID         string
	RecoveryAttempts   int64
	Timeout            time.Duration // zero: none
	Deadline           time.Time     // zero: none
	DeduplicationID    string
	Priority           int
	QueuePartitionKey  string
	DequeuedAt         time.Time // zero: not started from a queue
	ForkedFrom         string
	WasForkedFrom      bool
	ParentWorkflowID   string
	DelayUntil         time.Time // zero: none
	CompletedAt        time.Time // zero: not completed
	Attributes         string    // a JSON object, or ""
}

// WorkflowStep is one step a workflow recorded: its output or error,
// serialized by the app's DBOS SDK, or the child workflow it started.
type WorkflowStep struct {
	ID              int
	Name            string
	Output          string
	Error           string
	ChildWorkflowID string
	StartedAt       time.Time // zero: not recorded
	CompletedAt     time.Time // zero: not recorded
}
