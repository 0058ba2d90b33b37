package api

import (
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// passwordSignIn is POST /hangar/v1/signin: a user name and password for an
// access token, with the approval page's limit on wrong passwords (keyed on
// the name and the client's address). The console signs in through it.
func (s *Server) passwordSignIn(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.SignInRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	u, err := s.checkPassword(r.Context(), normalizeUserName(req.Username), req.Password, clientAddr(r))
	setRetryAfter(w, err, s.now())
	if err != nil {
		return err
	}
	tok, exp, err := s.tokens.Issue(u)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, apiclient.TokenResponse{
		AccessToken: tok, TokenType: "Bearer", ExpiresIn: int(exp.Sub(s.now()) / time.Second),
	})
}

// dashboardURL is PUT and GET /v1alpha1/{org}/dashboard: the URL of the
// org's monitoring dashboards in the console. They always exist (the
// console draws them from the metrics history), so launching one only
// returns its URL.
func (s *Server) dashboardURL(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, "https://"+s.cfg.Domain+"/console/"+org+"/dashboard")
}

// deleteDashboard is DELETE /v1alpha1/{org}/dashboard: accepted, and a
// no-op that says so, since the dashboards are part of the console.
func (s *Server) deleteDashboard(w http.ResponseWriter, r *http.Request) error {
	if _, err := orgOf(r); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, "nothing to delete: the dashboards are part of the Hangar console and always available")
}
