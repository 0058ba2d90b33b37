package e2e

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/console"
)

// consoleCase is how the authorization suite exercises one route of the
// console, as B signed in to the console, with A's names in the path.
// Without check, the page must refuse (403 or 404) and show none of A's.
type consoleCase struct {
	// path replaces the path built from the pattern.
	path string
	// form is posted (with B's CSRF token) instead of an empty form.
	form  url.Values
	check func(t *testing.T, status int, body string)
}

// consoleCases has a case for every route of console.Routes():
// TestAuthorization_EveryRoute fails when one is missing.
func consoleCases() map[string]consoleCase {
	public := func(t *testing.T, status int, body string) {
		if status != http.StatusOK && status != http.StatusSeeOther {
			t.Errorf("got %d, want 200 or 303:\n%s", status, body)
		}
		if strings.Contains(body, "greeter") || strings.Contains(body, "avadb") {
			t.Errorf("a public page shows A's names:\n%s", body)
		}
	}
	return map[string]consoleCase{
		// Public, or B's own: sign-in, B's home, the vendored assets.
		"GET /static/":                                           {path: "/static/console.css", check: public},
		"GET /{$}":                                               {check: public},
		"GET /console/{$}":                                       {check: public},
		"GET /console/signin":                                    {check: public},
		"POST /console/signin":                                   {form: url.Values{"username": {"ava"}, "password": {"not-avas-password"}}, check: wantStatusPage(http.StatusUnauthorized)},
		"POST /console/signout":                                  {check: wantStatusPage(http.StatusSeeOther)},
		"GET /console/{org}/apps":                                {},
		"GET /console/{org}/apps/{app}":                          {},
		"POST /console/{org}/apps/{app}/settings":                {form: url.Values{"memory": {"1024"}}},
		"POST /console/{org}/apps/{app}/redeploy":                {form: url.Values{"version": {"VERSION"}}},
		"POST /console/{org}/apps/{app}/secrets":                 {form: url.Values{"name": {"API_KEY"}, "value": {"pwned"}}},
		"POST /console/{org}/apps/{app}/secrets/{name}/delete":   {},
		"GET /console/{org}/apps/{app}/executors":                {},
		"GET /console/{org}/apps/{app}/logs":                     {},
		"GET /console/{org}/apps/{app}/logs/lines":               {},
		"GET /console/{org}/apps/{app}/workflows":                {},
		"GET /console/{org}/apps/{app}/queues":                   {},
		"GET /console/{org}/apps/{app}/workflows/{id}":           {},
		"POST /console/{org}/apps/{app}/workflows/{id}/{action}": {},
		"GET /console/{org}/apps/{app}/dashboard":                {},
		"GET /console/{org}/apps/{app}/metrics":                  {},
		"GET /console/{org}/dashboard":                           {},
		"GET /console/{org}/databases":                           {},
		"POST /console/{org}/databases/{db}/restore":             {form: url.Values{"time": {"2026-01-01T00:00"}, "target": {"stolen"}}},
		"POST /console/{org}/databases/link":                     {form: url.Values{"name": {"linked"}, "host": {"localhost"}, "port": {"5432"}, "password": {"x"}}},
		"POST /console/{org}/databases/{db}/unlink":              {},
		"GET /console/{org}/members":                             {},
		"POST /console/{org}/members/invite":                     {},
		"POST /console/{org}/members/{username}/remove":          {},
		"POST /console/{org}/rename":                             {form: url.Values{"name": {"pwned"}}},
	}
}

func wantStatusPage(want int) func(t *testing.T, status int, body string) {
	return func(t *testing.T, status int, body string) {
		if status != want {
			t.Errorf("got %d, want %d:\n%s", status, want, body)
		}
	}
}

// consoleOtherOrg drives every route of the console as B, signed in to the
// console, against A's names.
func (f *authzFixture) consoleOtherOrg(t *testing.T) {
	b := newConsoleBrowser(t, f.h)
	b.signIn(t, f.benRefresh)
	names := f.names()
	names["action"] = "cancel"
	cases := consoleCases()
	for _, pattern := range console.Routes() {
		c, ok := cases[pattern]
		if !ok {
			continue // TestAuthorization_EveryRoute reports it
		}
		t.Run(pattern, func(t *testing.T) {
			method, path := requestOf(t, strings.ReplaceAll(pattern, "{$}", ""), routeCase{path: c.path}, names)
			form := c.form
			if method == http.MethodPost && form == nil {
				form = url.Values{}
			}
			if v := form.Get("version"); v == "VERSION" {
				form.Set("version", f.version)
			}
			status, body := b.send(t, method, path, form)
			if pattern == "POST /console/signout" {
				defer b.signIn(t, f.benRefresh)
			}
			if c.check != nil {
				c.check(t, status, body)
				return
			}
			if status != http.StatusForbidden && status != http.StatusNotFound {
				t.Errorf("got %d, want 403 or 404:\n%s", status, body)
			}
			for _, a := range []string{f.version, "API_KEY", "amy", "avadb"} {
				if a != "" && strings.Contains(body, a) && !slices.Contains(c.form["name"], a) {
					t.Errorf("the answer shows A's %q:\n%s", a, body)
				}
			}
		})
	}
	// A form of B's own without the CSRF token (as another site would
	// post it) is refused, and B's org keeps its name.
	req, err := http.NewRequest(http.MethodPost, "https://"+f.h.Domain+"/console/ben/rename", strings.NewReader(url.Values{"name": {"forged"}}.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a rename without the CSRF token: %d, want 403", resp.StatusCode)
	}
	if users, err := f.ben.OrgUsers(context.Background(), "ben"); err != nil || users.OrgName != "ben" {
		t.Errorf("B's org after a forged rename: %+v, %v; want it still ben", users, err)
	}
	// Signed out, no page of the console shows anything.
	b.send(t, http.MethodPost, "/console/signout", url.Values{})
	if status, _ := b.send(t, http.MethodGet, "/console/ben/apps", nil); status != http.StatusSeeOther {
		t.Errorf("B's apps after signing out: %d, want 303 to the sign-in page", status)
	}
}

// consoleBrowser is a cookie-keeping HTTP client of the console that does
// not follow redirects.
type consoleBrowser struct {
	h    *Hangar
	hc   *http.Client
	csrf string
}

func newConsoleBrowser(t *testing.T, h *Hangar) *consoleBrowser {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	hc := h.HTTPClient(t)
	hc.Jar = jar
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &consoleBrowser{h: h, hc: hc}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// signIn signs in with a refresh token through the sign-in form.
func (b *consoleBrowser) signIn(t *testing.T, refresh string) {
	t.Helper()
	if status, body := b.send(t, http.MethodGet, "/console/signin", nil); status != http.StatusOK {
		t.Fatalf("sign-in page: %d\n%s", status, body)
	}
	status, body := b.send(t, http.MethodPost, "/console/signin", url.Values{"refresh_token": {refresh}})
	if status != http.StatusSeeOther {
		t.Fatalf("sign in: %d, want 303\n%s", status, body)
	}
}

// send sends a request (a form, with the page's CSRF token, when form is
// not nil) and returns the answer's status and body.
func (b *consoleBrowser) send(t *testing.T, method, path string, form url.Values) (int, string) {
	t.Helper()
	var r io.Reader
	if form != nil {
		f := url.Values{"csrf": {b.csrf}}
		for k, v := range form {
			f[k] = v
		}
		r = strings.NewReader(f.Encode())
	}
	req, err := http.NewRequest(method, "https://"+b.h.Domain+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://"+b.h.Domain)
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if m := csrfField.FindSubmatch(body); m != nil {
		b.csrf = string(m[1])
	}
	return resp.StatusCode, string(body)
}
