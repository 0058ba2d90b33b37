package api

// accountRoutes registers the routes of users, organizations and secrets,
// served by acc. Literal segments win over wildcards in ServeMux, so
// POST …/applications/secrets is not a deploy of an app named "secrets",
// and DELETE /v1alpha1/{org}/dashboard is not the removal of a user.
func (s *Server) accountRoutes(mux registrar, acc Accounts) {
	a := &accountsAPI{Server: s, acc: acc}
	mux.Handle("POST /oauth/revoke", s.handle(a.revoke))
	mux.Handle("GET /v1alpha1/user/profile", s.authed(a.profile))
	mux.Handle("PUT /v1alpha1/user", s.handle(a.register))
	mux.Handle("PUT /hangar/v1/user/password", s.authed((&loginsAPI{s}).setPassword))

	mux.Handle("GET /v1alpha1/{org}/secret", s.authed(a.invite))
	mux.Handle("POST /v1alpha1/{org}/join", s.authed(a.join))
	mux.Handle("GET /v1alpha1/{org}/users", s.authed(a.orgUsers))
	mux.Handle("PATCH /v1alpha1/{org}", s.authed(a.renameOrg))
	mux.Handle("DELETE /v1alpha1/{org}/{username}", s.authed(a.removeMember))

	mux.Handle("POST /v1alpha1/{org}/applications/secrets", s.authed(a.putSecret))
	mux.Handle("GET /v1alpha1/{org}/applications/{app}/secrets", s.authed(a.listSecrets))
	mux.Handle("DELETE /v1alpha1/{org}/applications/{app}/secrets/{name}", s.authed(a.deleteSecret))
}
