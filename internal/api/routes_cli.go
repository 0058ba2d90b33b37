package api

// cliRoutes registers what Hangar's own dbos-cloud adds to the DBOS Cloud
// API: the device login flow (RFC 8628) with its approval page, and the
// streaming deploy of a raw zip.
func (s *Server) cliRoutes(mux registrar) {
	l := &loginsAPI{s}
	mux.Handle("POST /oauth/device/code", s.handle(l.deviceCode))
	mux.Handle("POST /oauth/device/token", s.handle(l.deviceToken))
	mux.Handle("GET /device", s.handle(l.devicePageGet))
	mux.Handle("POST /device", s.handle(l.devicePagePost))

	mux.Handle("POST /hangar/v1/{org}/applications/{app}/deploy", uploadRoute{s.authed(s.deployZip)})
}
