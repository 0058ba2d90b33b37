package api

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestNewHandler_Middleware checks the contract metrics rely on: the
// middleware wraps every request and sees the matched route's pattern once
// the route returns.
func TestNewHandler_Middleware(t *testing.T) {
	t.Parallel()
	var got []string
	mw := func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			next.ServeHTTP(w, r)
			got = append(got, r.Method+" "+r.URL.Path+" → "+r.Pattern)
		})
	}
	// Neither request reaches a dependency: one lacks a token, the other
	// names no route.
	h := NewHandler(Config{Domain: "localhost", Middleware: mw}, Deps{}, slog.New(slog.DiscardHandler))
	for _, path := range []string{"/v1alpha1/alice/applications/greeter", "/no/such/route"} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		if w.Code != http.StatusUnauthorized && w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 401 or 404", path, w.Code)
		}
	}
	want := []string{
		"GET /v1alpha1/alice/applications/greeter → GET /v1alpha1/{org}/applications/{app}",
		"GET /no/such/route → /",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("middleware saw (-want +got):\n%s", diff)
	}
}
