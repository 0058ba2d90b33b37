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
