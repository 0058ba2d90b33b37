package apiclient

import (
	"context"
	"net/http"
)

// PasswordPath is the route with which a user sets its own password:
// PUT, authenticated, with a SetPasswordRequest; it answers 204.
const PasswordPath = "/hangar/v1/user/password"

// SetPasswordRequest sets the caller's password (PUT PasswordPath). The
// password signs in on the device approval page.
type SetPasswordRequest struct {
	// Password is the new password: 10 to 256 characters.
	Password string `json:"password"`
	// CurrentPassword is the password being replaced: required when the
	// user has one already.
	CurrentPassword string `json:"current_password,omitempty"`
}

// SetPassword sets the logged-in user's password.
func (c *Client) SetPassword(ctx context.Context, req SetPasswordRequest) error {
	return c.Do(ctx, http.MethodPut, PasswordPath, req, nil)
}
