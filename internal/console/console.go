// Package console serves Hangar's web console at https://<domain>/console/:
// pages rendered on the server from embedded html/template files, with htmx
// for the live parts and uPlot for the charts, both vendored under assets/
// (docs/console.md says why).
//
// The console is a client of the API, in process: every page and every
// action is one or more calls of the API's own handler through apiclient,
// with the access token of the signed-in user (the session cookie). So it
// is authorized exactly like the API, by the same code, and does exactly
// what the CLI's calls do. It imports apiclient only; only the composition
// root wires it.
package console

import (
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Config configures the console.
type Config struct {
	// Domain is the API's host[:port]: forms are accepted only from
	// https://<Domain>. Required.
	Domain string
	// API is the API's handler, which the console calls in process.
	// Required.
	API http.Handler
	// Logger logs the console's internal errors. Default slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

// Console is the web console's handler.
type Console struct {
	cfg   Config
	log   *slog.Logger
	pages map[string]*template.Template
	mux   *http.ServeMux
	// patterns are the console's routes, in the order registered.
	patterns []string
}

// New returns the console. It serves its own routes (/, /console/...) and
// passes every other request to cfg.API, so it can stand in front of it.
func New(cfg Config) (*Console, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger.With("component", "console"), pages: map[string]*template.Template{}, mux: http.NewServeMux()}
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("parse %s: %w", n, err)
		}
		c.pages[name] = t
	}
	c.routes()
	return c, nil
}

// Routes returns the pattern of every route the console serves, in the
// order registered. The authorization suite (e2e/authz_test.go) has a case
// for each.
func Routes() []string {
	c, err := New(Config{API: http.NotFoundHandler()})
	if err != nil {
		panic(err) // the embedded templates are part of the build
	}
	return c.patterns
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) { c.mux.ServeHTTP(w, r) }

// handle registers a page handler.
func (c *Console) handle(pattern string, h func(w http.ResponseWriter, r *http.Request) error) {
	c.patterns = append(c.patterns, pattern)
	c.mux.Handle(pattern, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			c.writeError(w, r, err)
		}
	}))
}

// pageError is an error page's message and status.
type pageError struct {
	Status  int
	Message string
	Detail  string
}

func (e *pageError) Error() string { return e.Message }

// writeError shows err: an API error with its status and message (a 401
// sends the browser to sign in), anything else as an internal error whose
// text stays in the log.
func (c *Console) writeError(w http.ResponseWriter, r *http.Request, err error) {
	pe := &pageError{Status: http.StatusInternalServerError, Message: "Something went wrong on the server; the operator's log has the details."}
	var ae *apiclient.Error
	switch {
	case errors.As(err, &ae):
		if ae.StatusCode == http.StatusUnauthorized && r.Method == http.MethodGet {
			clearCookie(w, sessionCookie)
			http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
			return
		}
		pe = &pageError{Status: ae.StatusCode, Message: capitalize(ae.Message), Detail: ae.DetailedError}
	case errors.As(err, &pe):
	default:
		c.log.ErrorContext(r.Context(), "console page failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	c.render(w, r, pe.Status, "error", page{Title: "Error", Data: pe})
}

// page is what every template gets: the layout's facts and the page's own
// Data.
type page struct {
	Title string
	// User and Org name the signed-in user; empty on the sign-in page.
	User, Org string
	// App is the app whose tabs the layout shows, Tab the current one.
	App, Tab string
	CSRF     string
	Flash    string
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	t, ok := c.pages[name]
	if !ok {
		http.Error(w, "no page "+name, http.StatusInternalServerError)
		return
	}
	if p.CSRF == "" {
		p.CSRF = c.csrfToken(w, r)
	}
	if ck, err := r.Cookie(flashCookie); err == nil && p.Flash == "" {
		if msg, err := url.QueryUnescape(ck.Value); err == nil {
			p.Flash = msg
		}
		clearCookie(w, flashCookie)
	}
	// A part (a table htmx reloads) is the page's content alone.
	tmpl := "layout"
	if strings.HasSuffix(name, "part") {
		tmpl = "content"
	}
	var b strings.Builder
	if err := t.ExecuteTemplate(&b, tmpl, p); err != nil {
		c.log.ErrorContext(r.Context(), "render console page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	// htmx and uPlot are scripts of our own origin; uPlot sets inline
	// styles on the elements it draws.
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(b.String()))
}

// client returns an API client that calls the API's handler in process
// with token, from the browser's address (the API limits wrong passwords
// per address).
func (c *Console) client(r *http.Request, token string) *apiclient.Client {
	return &apiclient.Client{
		BaseURL: "https://" + c.cfg.Domain,
		Token:   token,
		HTTP:    &http.Client{Transport: inProcess{h: c.cfg.API, remoteAddr: r.RemoteAddr}},
	}
}

// inProcess is a RoundTripper that serves requests with a handler.
type inProcess struct {
	h          http.Handler
	remoteAddr string
}

func (t inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	req.RemoteAddr = t.remoteAddr
	req.RequestURI = req.URL.RequestURI()
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, req)
	return rec.Result(), nil
}

// redirect answers a form with 303 to path, with a message the next page
// shows once. The message travels in a cookie rather than the URL, where
// anyone could write one into a link.
func redirect(w http.ResponseWriter, r *http.Request, path, flash string) error {
	if flash != "" {
		setCookie(w, flashCookie, url.QueryEscape(flash), time.Minute, http.SameSiteStrictMode)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
	return nil
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
