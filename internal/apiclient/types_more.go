package apiclient

// UpdateAppRequest is PATCH /v1alpha1/{org}/applications/{app}. The official
// CLI sends the numbers as strings, or omits them.
type UpdateAppRequest struct {
	ExecutorsMemoryMib FlexInt `json:"executors_memory_mib"`
	MinVMs             FlexInt `json:"min_vms"`
	MaxVMs             FlexInt `json:"max_vms"`
}

// DeleteAppRequest is DELETE /v1alpha1/{org}/applications/{app}.
type DeleteAppRequest struct {
	DropDB bool `json:"dropdb"`
}

// LogsResponse is GET /v1alpha1/{org}/logs/applications/{app}: one page of
// log text; when End is false, the next page starts at NextTimestamp (sent
// back as since).
type LogsResponse struct {
	End           bool   `json:"end"`
	NextTimestamp string `json:"next_timestamp"`
	Body          string `json:"body"`
}

// CreateSecretRequest is POST /v1alpha1/{org}/applications/secrets.
type CreateSecretRequest struct {
	ApplicationName  string
	SecretName       string
	ClearSecretValue string
}

// LinkDBRequest is POST /v1alpha1/{org}/databases/byod.
type LinkDBRequest struct {
	Name              string  `json:"Name"`
	HostName          string  `json:"HostName"`
	Port              int     `json:"Port"`
	Password          string  `json:"Password"`
	CaptureProvenance bool    `json:"captureProvenance"`
	SupabaseReference *string `json:"supabaseReference,omitempty"`
	DBOSAdminName     string  `json:"dbosAdminName,omitempty"`
}

// ResetPasswordRequest is POST …/databases/userdb/{db}/credentials.
type ResetPasswordRequest struct {
	Password string
}

// RestoreDBRequest is POST …/databases/userdb/{db}/restore.
type RestoreDBRequest struct {
	RestoreName      string
	RestoreTimestamp string
}

// OrgUsers is GET /v1alpha1/{org}/users.
type OrgUsers struct {
	OrgName   string
	UserNames []string
}

// RenameOrgRequest is PATCH /v1alpha1/{org}.
type RenameOrgRequest struct {
	NewName string `json:"newName"`
}

// JoinOrgRequest is POST /v1alpha1/{org}/join.
type JoinOrgRequest struct {
	Secret string `json:"secret"`
}

// RegisterUserRequest is PUT /v1alpha1/user.
type RegisterUserRequest struct {
	Name       string `json:"name"`
	GivenName  string `json:"given_name"`
	FamilyName string `json:"family_name"`
	Company    string `json:"company"`
	Secret     string `json:"secret,omitempty"`
}

// RevokeRequest revokes a refresh token (POST /oauth/revoke).
type RevokeRequest struct {
	Token string `json:"token"`
}
