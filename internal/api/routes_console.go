package api

// consoleRoutes registers what the web console (internal/console) and the
// dashboard commands need besides the rest of the API: a password sign-in
// that answers with an access token, and the org's dashboard URL, as the
// official CLI's `dashboard launch|url|delete` ask for it, and an app's
// metrics history for the dashboards' charts.
func (s *Server) consoleRoutes(mux registrar) {
	mux.Handle("POST /hangar/v1/signin", s.handle(s.passwordSignIn))
	mux.Handle("PUT /v1alpha1/{org}/dashboard", s.authed(s.dashboardURL))
	mux.Handle("GET /v1alpha1/{org}/dashboard", s.authed(s.dashboardURL))
	mux.Handle("DELETE /v1alpha1/{org}/dashboard", s.authed(s.deleteDashboard))
	mux.Handle("GET /hangar/v1/{org}/applications/{app}/metrics", s.authed(s.appMetrics))
}
