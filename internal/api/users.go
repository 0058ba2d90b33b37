package api

import (
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// token exchanges a refresh token for an access token (Auth0-shaped).
func (s *loginsAPI) token(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.TokenRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	if req.GrantType != "refresh_token" || req.RefreshToken == "" {
		return hangar.Errorf(hangar.KindInvalid, `unsupported grant: send grant_type "refresh_token" with a refresh_token`)
	}
	tok, exp, err := s.logins.Exchange(r.Context(), req.RefreshToken)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, apiclient.TokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(time.Until(exp).Seconds()),
	})
}

func notFoundRoute(r *http.Request) error {
	return hangar.Errorf(hangar.KindNotFound, "no route for %s %s", r.Method, r.URL.Path)
}
