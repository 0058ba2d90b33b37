package api

// databaseRoutes registers the database instance endpoints (API.md §1):
// provision, list, info, destroy, reset-password and restore of managed
// instances, link and unlink of the user's own servers.
func (s *Server) databaseRoutes(mux registrar) {
	mux.Handle("POST /v1alpha1/{org}/databases/userdb", s.authed(s.provisionDB))
	mux.Handle("GET /v1alpha1/{org}/databases", s.authed(s.listDBs))
	mux.Handle("GET /v1alpha1/{org}/databases/userdb/info/{db}", s.authed(s.dbInfo))
	mux.Handle("DELETE /v1alpha1/{org}/databases/userdb/{db}", s.authed(s.destroyDB))
	mux.Handle("POST /v1alpha1/{org}/databases/userdb/{db}/credentials", s.authed(s.resetDBPassword))
	mux.Handle("POST /v1alpha1/{org}/databases/userdb/{db}/restore", s.authed(s.restoreDB))
	mux.Handle("POST /v1alpha1/{org}/databases/byod", s.authed(s.linkDB))
	mux.Handle("DELETE /v1alpha1/{org}/databases/byod/{db}", s.authed(s.unlinkDB))
}
