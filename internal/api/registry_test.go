package api

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRegistry_BodyLimit: bodies over the cap fail to read, except on
// upload routes.
func TestRegistry_BodyLimit(t *testing.T) {
	t.Parallel()
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
			return
		}
		fmt.Fprintf(w, "%d", len(b))
	})
	reg := newRegistry(1 << 10)
	reg.Handle("POST /small", read)
	reg.Handle("POST /upload", uploadRoute{read})
	for _, tc := range []struct {
		path string
		size int
		want int
	}{
		{"/small", 1 << 10, http.StatusOK},
		{"/small", 1<<10 + 1, http.StatusRequestEntityTooLarge},
		{"/upload", 1 << 20, http.StatusOK},
	} {
		w := httptest.NewRecorder()
		reg.ServeHTTP(w, httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(strings.Repeat("a", tc.size))))
		if w.Code != tc.want {
			t.Errorf("POST %s with %d bytes: got %d, want %d", tc.path, tc.size, w.Code, tc.want)
		}
	}
}

// TestNewHandler_BodyLimit: a JSON body over Config.MaxBodyBytes gets 413.
func TestNewHandler_BodyLimit(t *testing.T) {
	t.Parallel()
	h := NewHandler(Config{Domain: "localhost", MaxBodyBytes: 1 << 10}, Deps{}, slog.New(slog.DiscardHandler))
	body := `{"token":"` + strings.Repeat("a", 2<<10) + `"}`
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/oauth/revoke", strings.NewReader(body)))
	if w.Code != http.StatusRequestEntityTooLarge {
		t.Errorf("got %d %s, want 413", w.Code, w.Body)
	}
}
