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
// Every route's request body is capped at maxBody bytes, except an
// upload's.
type registry struct {
	mux      *http.ServeMux
	patterns []string
	maxBody  int64
}

var _ registrar = (*registry)(nil)

func newRegistry(maxBody int64) *registry {
	return &registry{mux: http.NewServeMux(), maxBody: maxBody}
}

// Handle registers h for pattern, as http.ServeMux.Handle does.
func (r *registry) Handle(pattern string, h http.Handler) {
	r.patterns = append(r.patterns, pattern)
	if u, ok := h.(uploadRoute); ok {
		h = u.Handler
	} else {
		h = limitBody(h, r.maxBody)
	}
	r.mux.Handle(pattern, h)
}

// uploadRoute marks the handler of a route that receives a deploy archive: it
// bounds the body itself, by the archive store's limits, and the registry
// leaves it alone.
type uploadRoute struct{ http.Handler }

// limitBody caps the body of h's requests at n bytes: reading more fails
// with an *http.MaxBytesError, and the server closes the connection.
func limitBody(h http.Handler, n int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n > 0 && r.Body != nil && r.Body != http.NoBody {
			r.Body = http.MaxBytesReader(w, r.Body, n)
		}
		h.ServeHTTP(w, r)
	})
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
