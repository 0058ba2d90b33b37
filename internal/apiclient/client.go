package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Client calls a Hangar server.
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
	req, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("%s %s: read response: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		var e Error
		if json.Unmarshal(b, &e) == nil && e.Message != "" {
			return &e
		}
		return &Error{StatusCode: resp.StatusCode, Message: fmt.Sprintf("%s %s: %s", method, path, resp.Status)}
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: decode response: %w", method, path, err)
	}
	return nil
}

// Exchange trades a refresh token for an access token.
func (c *Client) Exchange(ctx context.Context, refreshToken string) (TokenResponse, error) {
	var out TokenResponse
	err := c.Do(ctx, http.MethodPost, "/oauth/token", TokenRequest{GrantType: "refresh_token", RefreshToken: refreshToken}, &out)
	return out, err
}

// Profile returns the caller's profile.
func (c *Client) Profile(ctx context.Context) (Profile, error) {
	var out Profile
	err := c.Do(ctx, http.MethodGet, "/v1alpha1/user/profile", nil, &out)
	return out, err
}

// Apps lists the org's applications.
func (c *Client) Apps(ctx context.Context, org string) ([]Application, error) {
	var out []Application
	err := c.Do(ctx, http.MethodGet, "/v1alpha1/"+url.PathEscape(org)+"/applications", nil, &out)
	return out, err
}

// App returns one application.
func (c *Client) App(ctx context.Context, org, app string) (Application, error) {
	var out Application
	err := c.Do(ctx, http.MethodGet, "/v1alpha1/"+url.PathEscape(org)+"/applications/"+url.PathEscape(app), nil, &out)
	return out, err
}
