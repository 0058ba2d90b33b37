package apiclient

import "fmt"

// Wire types of Hangar's own endpoints, beyond the DBOS Cloud API: the
// device login flow and the streaming deploy.

// GrantTypeDeviceCode is the grant_type of a device access token request
// (RFC 8628 §3.4).
const GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"

// Error codes of a device access token response (RFC 8628 §3.5, RFC 6749
// §5.2).
const (
	OAuthAuthorizationPending = "authorization_pending"
	OAuthSlowDown             = "slow_down"
	OAuthExpiredToken         = "expired_token"
	OAuthAccessDenied         = "access_denied"
	OAuthInvalidGrant         = "invalid_grant"
	OAuthInvalidRequest       = "invalid_request"
	OAuthUnsupportedGrantType = "unsupported_grant_type"
)

// DeviceCodeResponse answers POST /oauth/device/code (RFC 8628 §3.2): the
// device polls with DeviceCode every Interval seconds while the user
// confirms UserCode at VerificationURI.
type DeviceCodeResponse struct {
	DeviceCode              string `json:"device_code"`
	UserCode                string `json:"user_code"`
	VerificationURI         string `json:"verification_uri"`
	VerificationURIComplete string `json:"verification_uri_complete"`
	ExpiresIn               int    `json:"expires_in"`
	Interval                int    `json:"interval"`
}

// DeviceTokenRequest is POST /oauth/device/token, form-encoded as RFC 8628
// §3.4 has it (JSON is accepted too).
type DeviceTokenRequest struct {
	GrantType  string `json:"grant_type"`
	DeviceCode string `json:"device_code"`
}

// DeviceTokenResponse answers an approved device grant: an access token and
// a new refresh token of the approving user.
type DeviceTokenResponse struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// OAuthError is the error body of the device endpoints (RFC 6749 §5.2),
// sent with status 400: Code is one of the OAuth* constants.
type OAuthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

func (e *OAuthError) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return fmt.Sprintf("%s: %s", e.Code, e.Description)
}

// ExecutorEvent is one of an app's recent executor events, from GET
// /hangar/v1/{org}/applications/{app}/events: an exit, an out-of-memory kill
// (with the limit), a failed health check, a start, a scaling decision, or a
// recovery of workflows.
type ExecutorEvent struct {
	Time           string
	Kind           string
	Executor       string
	Version        string
	MemoryLimitMiB int `json:",omitempty"`
	Message        string
}

// AppHealth is what Hangar adds to an Application: how its executors fare.
// The official CLI ignores these keys; a server without them leaves
// Application.AppHealth nil.
type AppHealth struct {
	// Executors counts the executors that serve the app.
	Executors int
	// CrashLoop, set while the app is below its minimum executors after
	// three failures or more, says how many and when the next executor
	// starts: "5 restarts in 2m10s; next start in 40s".
	CrashLoop string `json:",omitempty"`
	// LastProblem is the app's latest executor failure: an exit, an
	// out-of-memory kill (with the limit), a failed health check or start.
	LastProblem *ExecutorEvent `json:",omitempty"`
}

// ExecutorStats is a live executor of an app, from GET
// /hangar/v1/{org}/applications/{app}/executors: one of its serving
// version, or one finishing the work of an older version.
type ExecutorStats struct {
	ID         string
	Version    string
	AppVersion string
	// State is STARTING, SERVING, RETIRING (out of the route, finishing its
	// requests and workflows), DRAINING (started to finish the workflows of
	// an older version) or STOPPING.
	State string
	// StartedAt is RFC 3339.
	StartedAt string
	// MemoryLimitMiB is the app's memory setting when the executor started.
	MemoryLimitMiB int
	// Usage is nil when the server's driver does not account resources.
	Usage *ExecutorUsage `json:",omitempty"`
}

// ExecutorUsage is an executor's resource use, as its cgroup accounts it.
type ExecutorUsage struct {
	// MemoryBytes is in use now, page cache included; MemoryLimitBytes is
	// the enforced limit, 0 when none.
	MemoryBytes      uint64
	MemoryLimitBytes uint64
	// MemoryPeakBytes is the most it used at once since it started, 0 when
	// unknown (cgroup v2 before Linux 5.19).
	MemoryPeakBytes uint64
	// Pids counts its processes and threads now.
	Pids uint64
	// CPUSeconds is the CPU time used since it started, all threads.
	CPUSeconds float64
	// CPUPercent is its use over the last scaling interval, in percent of
	// one vCPU; absent until Hangar sampled it twice (serving executors
	// only).
	CPUPercent *float64 `json:",omitempty"`
	// ThrottledPeriods counts the scheduler periods in which it ran out of
	// CPU quota, and ThrottledSeconds how long it was held back.
	ThrottledPeriods uint64
	ThrottledSeconds float64
	// OOMKills counts its processes the kernel killed for exceeding the
	// memory limit.
	OOMKills uint64
}
