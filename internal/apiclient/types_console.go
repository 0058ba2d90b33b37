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
