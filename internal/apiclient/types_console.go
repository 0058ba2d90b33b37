package apiclient

import (
	"context"
	"net/http"
)

// SignInRequest is POST /hangar/v1/signin: a password sign-in, answered
// with a TokenResponse.
type SignInRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// SignIn trades a user name and password for an access token.
func (c *Client) SignIn(ctx context.Context, username, password string) (TokenResponse, error) {
	var out TokenResponse
	err := c.Do(ctx, http.MethodPost, "/hangar/v1/signin", SignInRequest{Username: username, Password: password}, &out)
	return out, err
}

// AppMetrics is GET /hangar/v1/{org}/applications/{app}/metrics?range=hour|day|week:
// an app's monitoring history in buckets of StepSeconds. Every list has a
// value per bucket of Times (Unix seconds), null where nothing was sampled.
type AppMetrics struct {
	Range       string
	StepSeconds int
	Times       []int64
	// Requests per bucket by status class.
	Requests2xx, Requests3xx, Requests4xx, Requests5xx []*float64
	// LatencyP50MS and LatencyP99MS are in milliseconds.
	LatencyP50MS, LatencyP99MS                                        []*float64
	Executors, Restarts, OOMKills                                     []*float64
	WorkflowsStarted, WorkflowsCompleted, WorkflowsFailed, QueueDepth []*float64
	// ByExecutor has the latest executors of the range.
	ByExecutor []ExecutorMetrics
}

// ExecutorMetrics is one executor's memory and CPU per bucket of an
// AppMetrics, and its memory limit.
type ExecutorMetrics struct {
	ID                        string
	MemoryMiB, MemoryLimitMiB []*float64
	CPUPercent                []*float64
}
