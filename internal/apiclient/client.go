package apiclient

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Client calls a Hangar server.
// size: one method per route of the API: the typed client.
type Client struct {
	// BaseURL is the server's base URL, e.g. https://localhost:8443.
	BaseURL string
	// Token is the bearer access token; empty for unauthenticated calls.
	Token string
	// HTTP is the HTTP client. Default http.DefaultClient.
	HTTP *http.Client
}

// Do sends a JSON request and decodes a JSON response into out (when non-nil).
// A non-2xx answer is returned as *Error.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	b, err := c.send(ctx, method, path, body)
	if err != nil || out == nil || len(b) == 0 {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// send sends body (JSON, possibly streamed) and returns the response body of
// a 2xx answer; any other answer is returned as *Error.
func (c *Client) send(ctx context.Context, method, path string, body io.Reader) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	return c.roundTrip(req)
}

// roundTrip sends req with the bearer token and returns the response body of
// a 2xx answer. Any other answer is returned as *OAuthError when its body is
// an OAuth error, else as *Error.
func (c *Client) roundTrip(req *http.Request) ([]byte, error) {
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	method, path := req.Method, req.URL.Path
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return nil, &e
		}
		var oe OAuthError
		if json.Unmarshal(b, &oe) == nil && oe.Code != "" {
			return nil, &oe
		}
		return nil, &Error{StatusCode: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
	}
	return b, nil
}

// postForm posts form, form-encoded as OAuth endpoints take it, and decodes
// the JSON answer into out.
func (c *Client) postForm(ctx context.Context, path string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	b, err := c.roundTrip(req)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("POST %s: decode response: %w", path, err)
	}
	return nil
}

// doString calls an endpoint that answers with one string, as JSON or as
// plain text.
func (c *Client) doString(ctx context.Context, method, path string, in any) (string, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return "", err
		}
		body = bytes.NewReader(b)
	}
	raw, err := c.send(ctx, method, path, body)
	if err != nil {
		return "", err
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	return strings.TrimSpace(string(raw)), nil
}

// Exchange trades a refresh token for an access token.
func (c *Client) Exchange(ctx context.Context, refreshToken string) (TokenResponse, error) {
	var out TokenResponse
	err := c.Do(ctx, http.MethodPost, "/oauth/token", TokenRequest{GrantType: "refresh_token", RefreshToken: refreshToken}, &out)
	return out, err
}

// DeviceCode starts a device login (RFC 8628 §3.1): the user approves the
// returned user code on the server's page while the device polls
// DeviceToken.
func (c *Client) DeviceCode(ctx context.Context) (DeviceCodeResponse, error) {
	var out DeviceCodeResponse
	err := c.postForm(ctx, "/oauth/device/code", url.Values{"client_id": {"dbos-cloud"}}, &out)
	return out, err
}

// DeviceToken polls for the tokens of a device login. Until the user
// decides, and when they deny or the code expires, it returns an
// *OAuthError whose Code says which (OAuthAuthorizationPending,
// OAuthSlowDown, OAuthAccessDenied, OAuthExpiredToken).
func (c *Client) DeviceToken(ctx context.Context, deviceCode string) (DeviceTokenResponse, error) {
	var out DeviceTokenResponse
	err := c.postForm(ctx, "/oauth/device/token", url.Values{
		"grant_type": {GrantTypeDeviceCode}, "device_code": {deviceCode}, "client_id": {"dbos-cloud"},
	}, &out)
	return out, err
}

// Revoke revokes a refresh token.
func (c *Client) Revoke(ctx context.Context, refreshToken string) error {
	return c.Do(ctx, http.MethodPost, "/oauth/revoke", RevokeRequest{Token: refreshToken}, nil)
}

// Profile returns the caller's profile.
func (c *Client) Profile(ctx context.Context) (Profile, error) {
	var out Profile
	err := c.Do(ctx, http.MethodGet, "/v1alpha1/user/profile", nil, &out)
	return out, err
}

// RegisterUser registers the caller as a DBOS Cloud user.
func (c *Client) RegisterUser(ctx context.Context, req RegisterUserRequest) error {
	return c.Do(ctx, http.MethodPut, "/v1alpha1/user", req, nil)
}

func orgPath(org string, parts ...string) string {
	p := "/v1alpha1/" + url.PathEscape(org)
	for _, s := range parts {
		p += "/" + url.PathEscape(s)
	}
	return p
}

// RegisterApp registers an application and returns its ID.
func (c *Client) RegisterApp(ctx context.Context, org string, req RegisterAppRequest) (string, error) {
	return c.doString(ctx, http.MethodPut, orgPath(org, "applications"), req)
}

// Apps lists the org's applications.
func (c *Client) Apps(ctx context.Context, org string) ([]Application, error) {
	var out []Application
	err := c.Do(ctx, http.MethodGet, orgPath(org, "applications"), nil, &out)
	return out, err
}

// App returns one application.
func (c *Client) App(ctx context.Context, org, app string) (Application, error) {
	var out Application
	err := c.Do(ctx, http.MethodGet, orgPath(org, "applications", app), nil, &out)
	return out, err
}

// UpdateApp changes an application's settings.
func (c *Client) UpdateApp(ctx context.Context, org, app string, req UpdateAppRequest) error {
	return c.Do(ctx, http.MethodPatch, orgPath(org, "applications", app), req, nil)
}

// DeleteApp deletes an application, and its database when DropDB is set.
func (c *Client) DeleteApp(ctx context.Context, org, app string, req DeleteAppRequest) error {
	return c.Do(ctx, http.MethodDelete, orgPath(org, "applications", app), req, nil)
}

// AppVersions lists an application's versions.
func (c *Client) AppVersions(ctx context.Context, org, app string) ([]AppVersion, error) {
	var out []AppVersion
	err := c.Do(ctx, http.MethodGet, orgPath(org, "applications", app, "versions"), nil, &out)
	return out, err
}

// Deploy deploys an application: req carries a previous version to restore
// and, for a change of database instance (changeDB), the target instance.
// A new archive is sent with DeployArchive.
func (c *Client) Deploy(ctx context.Context, org, app string, changeDB bool, req DeployRequest) (DeployResponse, error) {
	var out DeployResponse
	err := c.Do(ctx, http.MethodPost, deployPath(org, app, changeDB), req, &out)
	return out, err
}

// DeployArchive deploys the zip archive that archive writes, as the official
// CLI's body {"application_archive": base64, "target_database_name"?}. The
// archive is zipped and base64-encoded on the fly into the request body, never
// held in memory. targetDB is set to change the app's database instance.
func (c *Client) DeployArchive(ctx context.Context, org, app, targetDB string, archive func(io.Writer) error) (DeployResponse, error) {
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(writeDeployBody(pw, targetDB, archive))
	}()
	defer pr.Close()
	var out DeployResponse
	b, err := c.send(ctx, http.MethodPost, deployPath(org, app, targetDB != ""), pr)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("deploy %s: decode response: %w", app, err)
	}
	return out, nil
}

// DeployZip deploys a zip archive of size bytes read from archive through
// Hangar's streaming endpoint, POST /hangar/v1/{org}/applications/{app}/deploy,
// as a raw application/zip body. It sends "Expect: 100-continue", so that a
// refusal (no such route on an older server, app not found, too large)
// arrives before the body is sent. A server without the endpoint answers
// 404 "no route for …": deploy with DeployArchive instead.
func (c *Client) DeployZip(ctx context.Context, org, app string, archive io.Reader, size int64) (DeployResponse, error) {
	p := "/hangar/v1/" + url.PathEscape(org) + "/applications/" + url.PathEscape(app) + "/deploy"
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BaseURL+p, archive)
	if err != nil {
		return DeployResponse{}, err
	}
	req.ContentLength = size
	if size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/zip")
	req.Header.Set("Expect", "100-continue")
	var out DeployResponse
	b, err := c.roundTrip(req)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("deploy %s: decode response: %w", app, err)
	}
	return out, nil
}

func writeDeployBody(w io.Writer, targetDB string, archive func(io.Writer) error) error {
	if targetDB != "" {
		t, err := json.Marshal(targetDB)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, `{"target_database_name":%s,`, t); err != nil {
			return err
		}
	} else if _, err := io.WriteString(w, "{"); err != nil {
		return err
	}
	if _, err := io.WriteString(w, `"application_archive":"`); err != nil {
		return err
	}
	enc := base64.NewEncoder(base64.StdEncoding, w)
	if err := archive(enc); err != nil {
		return err
	}
	if err := enc.Close(); err != nil {
		return err
	}
	_, err := io.WriteString(w, `"}`)
	return err
}

func deployPath(org, app string, changeDB bool) string {
	if changeDB {
		return orgPath(org, "applications", app, "changedbinstance")
	}
	return orgPath(org, "applications", app)
}

// AppLogs returns one page of an application's logs; query holds last,
// limit, since and upto as the official CLI sends them.
func (c *Client) AppLogs(ctx context.Context, org, app string, query url.Values) (LogsResponse, error) {
	var out LogsResponse
	query.Set("format", "json")
	err := c.Do(ctx, http.MethodGet, orgPath(org, "logs", "applications", app)+"?"+query.Encode(), nil, &out)
	return out, err
}

// CreateSecret creates or updates an application's environment variable.
func (c *Client) CreateSecret(ctx context.Context, org string, req CreateSecretRequest) error {
	return c.Do(ctx, http.MethodPost, orgPath(org, "applications", "secrets"), req, nil)
}

// Secrets lists the names of an application's environment variables.
func (c *Client) Secrets(ctx context.Context, org, app string) ([]string, error) {
	var out []string
	err := c.Do(ctx, http.MethodGet, orgPath(org, "applications", app, "secrets"), nil, &out)
	return out, err
}

// DeleteSecret deletes an application's environment variable.
func (c *Client) DeleteSecret(ctx context.Context, org, app, name string) error {
	return c.Do(ctx, http.MethodDelete, orgPath(org, "applications", app, "secrets", name), nil, nil)
}

// Workflows lists an application's workflows (queued ones when queues is
// set) and returns the server's JSON as is.
func (c *Client) Workflows(ctx context.Context, org, app string, queues bool, req ListWorkflowsRequest) (json.RawMessage, error) {
	what := "workflows"
	if queues {
		what = "queues"
	}
	var out json.RawMessage
	err := c.Do(ctx, http.MethodPost, orgPath(org, "applications", app, what), req, &out)
	return out, err
}

// WorkflowAction cancels, resumes or restarts (action) a workflow.
func (c *Client) WorkflowAction(ctx context.Context, org, app, workflowID, action string) error {
	p := "/appsadmin/" + url.PathEscape(org) + "/applications/" + url.PathEscape(app) + "/workflows/" + url.PathEscape(workflowID) + "/" + action
	return c.Do(ctx, http.MethodPost, p, struct{}{}, nil)
}

// ForkWorkflow starts a copy of a workflow that runs from startStep on,
// and returns its ID.
func (c *Client) ForkWorkflow(ctx context.Context, org, app, workflowID string, startStep int) (string, error) {
	p := "/hangar/v1/" + url.PathEscape(org) + "/applications/" + url.PathEscape(app) + "/workflows/" + url.PathEscape(workflowID) + "/fork"
	var out RestartWorkflowResponse
	err := c.Do(ctx, http.MethodPost, p, ForkWorkflowRequest{StartStep: startStep}, &out)
	return out.WorkflowID, err
}

// ProvisionDB starts provisioning a database instance.
func (c *Client) ProvisionDB(ctx context.Context, org string, req ProvisionDBRequest) error {
	return c.Do(ctx, http.MethodPost, orgPath(org, "databases", "userdb"), req, nil)
}

// DBs lists the org's database instances.
func (c *Client) DBs(ctx context.Context, org string) ([]UserDBInstance, error) {
	var out []UserDBInstance
	err := c.Do(ctx, http.MethodGet, orgPath(org, "databases"), nil, &out)
	return out, err
}

// DB returns one database instance.
func (c *Client) DB(ctx context.Context, org, db string) (UserDBInstance, error) {
	var out UserDBInstance
	err := c.Do(ctx, http.MethodGet, orgPath(org, "databases", "userdb", "info", db), nil, &out)
	return out, err
}

// DestroyDB destroys a provisioned database instance.
func (c *Client) DestroyDB(ctx context.Context, org, db string) error {
	return c.Do(ctx, http.MethodDelete, orgPath(org, "databases", "userdb", db), nil, nil)
}

// ResetDBPassword sets a database instance's admin password.
func (c *Client) ResetDBPassword(ctx context.Context, org, db, password string) error {
	return c.Do(ctx, http.MethodPost, orgPath(org, "databases", "userdb", db, "credentials"), ResetPasswordRequest{Password: password}, nil)
}

// RestoreDB starts restoring a database instance to a point in time as a new
// instance.
func (c *Client) RestoreDB(ctx context.Context, org, db string, req RestoreDBRequest) error {
	return c.Do(ctx, http.MethodPost, orgPath(org, "databases", "userdb", db, "restore"), req, nil)
}

// LinkDB links a Postgres server of the user's own.
func (c *Client) LinkDB(ctx context.Context, org string, req LinkDBRequest) error {
	return c.Do(ctx, http.MethodPost, orgPath(org, "databases", "byod"), req, nil)
}

// UnlinkDB unlinks a linked Postgres server.
func (c *Client) UnlinkDB(ctx context.Context, org, db string) error {
	return c.Do(ctx, http.MethodDelete, orgPath(org, "databases", "byod", db), nil, nil)
}

// Dashboard calls the dashboard endpoint with method (PUT launches it, GET
// returns it, DELETE deletes it) and returns its URL.
func (c *Client) Dashboard(ctx context.Context, org, method string) (string, error) {
	var in any
	if method == http.MethodPut {
		in = struct{}{}
	}
	return c.doString(ctx, method, orgPath(org, "dashboard"), in)
}

// InviteSecret returns a single-use secret to join the org.
func (c *Client) InviteSecret(ctx context.Context, org string) (string, error) {
	return c.doString(ctx, http.MethodGet, orgPath(org, "secret"), nil)
}

// OrgUsers lists the org's users.
func (c *Client) OrgUsers(ctx context.Context, org string) (OrgUsers, error) {
	var out OrgUsers
	err := c.Do(ctx, http.MethodGet, orgPath(org, "users"), nil, &out)
	return out, err
}

// RenameOrg renames the org.
func (c *Client) RenameOrg(ctx context.Context, org, newName string) error {
	return c.Do(ctx, http.MethodPatch, orgPath(org), RenameOrgRequest{NewName: newName}, nil)
}

// JoinOrg joins the org with an invite secret.
func (c *Client) JoinOrg(ctx context.Context, org, secret string) error {
	return c.Do(ctx, http.MethodPost, orgPath(org, "join"), JoinOrgRequest{Secret: secret}, nil)
}

// RemoveOrgUser removes a user from the org.
func (c *Client) RemoveOrgUser(ctx context.Context, org, user string) error {
	return c.Do(ctx, http.MethodDelete, orgPath(org, user), nil, nil)
}
