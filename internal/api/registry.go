package api

import "net/http"

// registrar is where routes are registered: a plain ServeMux, or the
// registry that also records them.
type registrar interface {
	Handle(pattern string, h http.Handler)
}

// registry is the API's ServeMux, recording each pattern registered on it so
// that Routes can list them. It has no HandleFunc: every route goes through
// Handle and is recorded.
type registry struct {
	mux      *http.ServeMux
	patterns []string
}

var _ registrar = (*registry)(nil)

func newRegistry() *registry { return &registry{mux: http.NewServeMux()} }

// Handle registers h for pattern, as http.ServeMux.Handle does.
func (r *registry) Handle(pattern string, h http.Handler) {
	r.patterns = append(r.patterns, pattern)
	r.mux.Handle(pattern, h)
}

func (r *registry) ServeHTTP(w http.ResponseWriter, req *http.Request) { r.mux.ServeHTTP(w, req) }

// Routes returns the pattern of every route the API serves ("POST
// /oauth/token", "GET /v1alpha1/{org}/applications", …, and the catch-all
// "/"), in the order they are registered. The authorization suite
// (e2e/authz_test.go) has a case for each and fails on a route without one.
func Routes() []string {
	// Registering builds handlers but runs none: a zero Server will do.
	return (&Server{}).routes().patterns
}
