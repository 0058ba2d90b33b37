package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// The console's cookies. The __Host- prefix makes browsers refuse them
// unless Secure, host-only and for Path=/: an app served on a subdomain
// (<org>-<app>.<domain>, same-site with the console) cannot plant them.
// The session cookie holds the user's access token (24 h), and is
// SameSite=Lax so that a link to the console from elsewhere (the URL
// `dashboard url` prints) opens signed in; every form also needs the CSRF
// token.
const (
	sessionCookie = "__Host-hangar-console"
	csrfCookie    = "__Host-hangar-console-csrf"
	// flashCookie carries the outcome of a form to the page after it.
	flashCookie = "__Host-hangar-console-flash"
)

// session is the signed-in user of a request.
type session struct {
	api       *apiclient.Client
	user, org string
}

// session returns the request's signed-in user, or an *apiclient.Error
// with status 401 (writeError sends the browser to sign in).
func (c *Console) session(r *http.Request) (session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || ck.Value == "" {
		return session{}, &apiclient.Error{StatusCode: http.StatusUnauthorized, Message: "sign in first"}
	}
	api := c.client(r, ck.Value)
	p, err := api.Profile(r.Context())
	if err != nil {
		return session{}, err
	}
	return session{api: api, user: p.Name, org: p.Organization}, nil
}

// orgSession is session for a page under /console/{org}/: the API calls
// it makes carry {org}, so a user of another org gets the API's answer
// (403) for each of them.
func (c *Console) orgSession(r *http.Request) (session, string, error) {
	s, err := c.session(r)
	return s, r.PathValue("org"), err
}

func (c *Console) home(w http.ResponseWriter, r *http.Request) error {
	s, err := c.session(r)
	if err != nil {
		http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
		return nil
	}
	http.Redirect(w, r, "/console/"+url.PathEscape(s.org)+"/apps", http.StatusSeeOther)
	return nil
}

type signInData struct {
	Name, Error string
}

func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) error {
	c.render(w, r, http.StatusOK, "signin", page{Title: "Sign in", Data: signInData{}})
	return nil
}

// signIn signs in with a password or a refresh token, through the API's
// own endpoints (its limit on wrong passwords included), and keeps the
// access token in the session cookie.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	api := c.client(r, "")
	var tok apiclient.TokenResponse
	var err error
	name := strings.ToLower(strings.TrimSpace(r.PostForm.Get("username")))
	if rt := strings.TrimSpace(r.PostForm.Get("refresh_token")); rt != "" {
		tok, err = api.Exchange(r.Context(), rt)
	} else {
		tok, err = api.SignIn(r.Context(), name, r.PostForm.Get("password"))
	}
	var ae *apiclient.Error
	if errors.As(err, &ae) && ae.StatusCode/100 == 4 {
		c.render(w, r, ae.StatusCode, "signin", page{Title: "Sign in", Data: signInData{Name: name, Error: capitalize(ae.Message) + "."}})
		return nil
	}
	if err != nil {
		return err
	}
	setCookie(w, sessionCookie, tok.AccessToken, time.Duration(tok.ExpiresIn)*time.Second, http.SameSiteLaxMode)
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
	return nil
}

// signOut forgets the session. The access token itself stays valid until
// it expires: it was never shown to anyone but this browser.
func (c *Console) signOut(w http.ResponseWriter, r *http.Request) error {
	if err := c.checkForm(w, r); err != nil {
		return err
	}
	clearCookie(w, sessionCookie)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
	return nil
}

// checkForm parses a posted form and checks it carries the CSRF token of
// the browser's cookie (a field, or htmx's X-CSRF-Token header) and, when
// the browser says where it comes from, the console's own origin.
func (c *Console) checkForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return &pageError{Status: http.StatusBadRequest, Message: "The form could not be read: reload the page and try again."}
	}
	if o := r.Header.Get("Origin"); o != "" && o != "https://"+c.cfg.Domain {
		return &pageError{Status: http.StatusForbidden, Message: "This form was not sent from the console."}
	}
	sent := r.PostForm.Get("csrf")
	if sent == "" {
		sent = r.Header.Get("X-CSRF-Token")
	}
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) < 32 || subtle.ConstantTimeCompare([]byte(ck.Value), []byte(sent)) != 1 {
		return &pageError{Status: http.StatusForbidden, Message: "This form expired or was not sent from the console: reload the page and try again."}
	}
	return nil
}

// csrfToken returns the browser's CSRF token, from its cookie or new.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) >= 32 {
		return ck.Value
	}
	b := make([]byte, 32)
	rand.Read(b) //nolint:errcheck // crypto/rand never fails
	tok := base64.RawURLEncoding.EncodeToString(b)
	setCookie(w, csrfCookie, tok, 24*time.Hour, http.SameSiteStrictMode)
	return tok
}

func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration, site http.SameSite) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: site, MaxAge: int(maxAge / time.Second)})
}

func clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Path: "/", Secure: true, HttpOnly: true, MaxAge: -1})
}
