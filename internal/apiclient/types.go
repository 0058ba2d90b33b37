// Package apiclient holds the wire types of Hangar's HTTP API — the DBOS
// Cloud API the official CLI speaks (shared/API.md) — and a typed Go client
// over them. The CLI and the end-to-end tests use it; the api package converts
// domain types to these explicitly. It imports nothing internal.
package apiclient

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// Error is the error body of every non-2xx response. The official CLI prints
// "[requestID] label: message." and matches substrings of Message.
type Error struct {
	Message       string `json:"message"`
	StatusCode    int    `json:"statusCode"`
	RequestID     string `json:"requestID"`
	DetailedError string `json:"DetailedError,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("[%s] %s", e.RequestID, e.Message)
	if e.DetailedError != "" {
		s += "\n" + e.DetailedError
	}
	return s
}

// FlexInt is an integer the official CLI may send as a JSON number or as a
// string (it has no parser for --executors-memory-mib and friends); null and
// "" decode as unset.
type FlexInt struct {
	Value int
	Set   bool
}

// UnmarshalJSON accepts 512, "512", null and "".
func (f *FlexInt) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch x := v.(type) {
	case nil:
		*f = FlexInt{}
	case float64:
		if x != float64(int(x)) {
			return fmt.Errorf("%v is not an integer", x)
		}
		*f = FlexInt{Value: int(x), Set: true}
	case string:
		if x == "" {
			*f = FlexInt{}
			return nil
		}
		n, err := strconv.Atoi(x)
		if err != nil {
			return fmt.Errorf("%q is not an integer", x)
		}
		*f = FlexInt{Value: n, Set: true}
	default:
		return fmt.Errorf("%s is not an integer", b)
	}
	return nil
}

// MarshalJSON writes the value as a number, or null when unset.
func (f FlexInt) MarshalJSON() ([]byte, error) {
	if !f.Set {
		return []byte("null"), nil
	}
	return strconv.AppendInt(nil, int64(f.Value), 10), nil
}

// Profile is GET /v1alpha1/user/profile.
type Profile struct {
	Name             string
	Email            string
	Organization     string
	SubscriptionPlan string
	IsOrgAdmin       bool
	CreatedAt        string
}

// RegisterAppRequest is PUT /v1alpha1/{org}/applications.
type RegisterAppRequest struct {
	Name               string  `json:"name"`
	Database           string  `json:"database"`
	Language           string  `json:"language"`
	ProvenanceDB       string  `json:"provenancedb"`
	ExecutorsMemoryMib FlexInt `json:"executors_memory_mib"`
}

// Application is an app as GET …/applications[/{app}] returns it.
type Application struct {
	Name                    string
	ID                      string
	PostgresInstanceName    string
	ApplicationDatabaseName string
	Status                  string
	Version                 string
	AppURL                  string
	ExecutorsMemoryMib      int
	*AppHealth              // Hangar's extra keys
}

// DeployRequest is POST …/applications/{app} (and …/changedbinstance). The
// server decodes it streaming; clients with large archives stream it too.
type DeployRequest struct {
	ApplicationArchive string `json:"application_archive,omitempty"`
	PreviousVersion    string `json:"previous_version,omitempty"`
	TargetDatabaseName string `json:"target_database_name,omitempty"`
}

// DeployResponse answers a deploy.
type DeployResponse struct {
	ApplicationName    string
	ApplicationVersion string
}

// AppVersion is one row of GET …/applications/{app}/versions. The official
// CLI reads the first three fields; Hangar adds the deploy's outcome.
type AppVersion struct {
	ApplicationName string
	Version         string
	CreationTime    string
	Status          string       `json:",omitempty"` // DEPLOYING, ACTIVE, FAILED or RETIRED
	Error           string       `json:",omitempty"` // why the deploy failed
	RestoredFrom    string       `json:",omitempty"` // the version a --previous-version deploy restores
	DeployedBy      string       `json:",omitempty"`
	Steps           []DeployStep `json:",omitempty"`
}

// DeployStep is the timing and outcome of one pipeline step of a version.
type DeployStep struct {
	Name       string `json:"name"`
	StartedAt  string `json:"started_at"`
	DurationMS int64  `json:"duration_ms"`
	Error      string `json:"error,omitempty"`
}

// ProvisionDBRequest is POST /v1alpha1/{org}/databases/userdb.
type ProvisionDBRequest struct {
	Name          string
	AdminName     string
	AdminPassword string
}

// UserDBInstance is a database instance as the databases endpoints return it.
type UserDBInstance struct {
	PostgresInstanceName string
	Status               string
	HostName             string
	Port                 int
	DatabaseUsername     string
	IsLinked             bool
	SupabaseReference    *string
	DBOSAdminName        string
}

// TokenRequest is POST /oauth/token, Auth0-shaped: grant_type
// "refresh_token" exchanges a refresh token for an access token.
type TokenRequest struct {
	GrantType    string `json:"grant_type"`
	RefreshToken string `json:"refresh_token"`
}

// TokenResponse answers /oauth/token.
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
}

// Credentials is the official CLI's ./.dbos/credentials file.
type Credentials struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken,omitempty"`
	UserName     string `json:"userName"`
	Organization string `json:"organization"`
}
