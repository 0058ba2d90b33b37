package api

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/store"
)

// The device login flow (RFC 8628): `dbos-cloud login` asks for a device
// code, shows the user code and the approval page's URL, and polls the token
// endpoint while the user signs in on the page (GET/POST /device) and
// approves or denies the code.
const (
	// deviceCodeTTL is how long a device code lives.
	deviceCodeTTL = 15 * time.Minute
	// deviceInterval is the polling interval devices are told.
	deviceInterval = 5 * time.Second
	// userCodeAlphabet has no vowels (no words) and no look-alike letters,
	// as RFC 8628 §6.1 suggests: 20^8 codes.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	userCodeLen      = 8
)

// Cookies of the approval page. The __Host- prefix makes browsers refuse
// them unless Secure, host-only and for Path=/: an app served on a subdomain
// (<org>-<app>.<domain>, same-site with the API host, so SameSite does not
// stop it) cannot plant them to forge a form or a sign-in.
const (
	csrfCookie    = "__Host-hangar-csrf"
	sessionCookie = "__Host-hangar-device"
	// sessionTTL is how long a sign-in on the page lasts.
	sessionTTL = 15 * time.Minute
)

// deviceCode starts a device login: POST /oauth/device/code (RFC 8628
// §3.1-3.2). client_id and scope are accepted and ignored: every approved
// device gets an access token and a refresh token.
func (s *Server) deviceCode(w http.ResponseWriter, r *http.Request) error {
	now := s.now()
	dc := store.DeviceCode{
		DeviceCode: "hgd_" + auth.NewSecret(32), Interval: deviceInterval,
		CreatedAt: now, ExpiresAt: now.Add(deviceCodeTTL),
	}
	var err error
	for range 5 { // a clash of user codes is rare; draw again
		dc.UserCode = newUserCode()
		if err = s.store.CreateDeviceCode(r.Context(), dc); hangar.KindOf(err) != hangar.KindConflict {
			break
		}
	}
	if err != nil {
		return err
	}
	shown := formatUserCode(dc.UserCode)
	page := "https://" + s.cfg.Domain + "/device"
	return writeJSON(w, http.StatusOK, apiclient.DeviceCodeResponse{
		DeviceCode: dc.DeviceCode, UserCode: shown,
		VerificationURI: page, VerificationURIComplete: page + "?user_code=" + url.QueryEscape(shown),
		ExpiresIn: int(deviceCodeTTL / time.Second), Interval: int(deviceInterval / time.Second),
	})
}

// oauthToken is a token endpoint for every grant: the device grant here,
// anything else (refresh_token) to the Auth0-shaped token handler. It serves
// POST /oauth/token, where RFC 8628 clients post device grants, as the
// official CLI does to Auth0.
func (s *Server) oauthToken(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return hangar.Errorf(hangar.KindInvalid, "invalid request body: %v", err)
	}
	req, ok := deviceTokenRequest(r.Header.Get("Content-Type"), body)
	if ok && req.GrantType == apiclient.GrantTypeDeviceCode {
		return s.redeemDevice(w, r, req)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	return s.token(w, r)
}

// deviceToken is POST /oauth/device/token: the device grant only.
func (s *Server) deviceToken(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		return writeOAuthError(w, apiclient.OAuthInvalidRequest, "the request body is too large or unreadable")
	}
	req, ok := deviceTokenRequest(r.Header.Get("Content-Type"), body)
	if !ok {
		return writeOAuthError(w, apiclient.OAuthInvalidRequest, "send grant_type and device_code form-encoded")
	}
	if req.GrantType != apiclient.GrantTypeDeviceCode {
		return writeOAuthError(w, apiclient.OAuthUnsupportedGrantType, "this endpoint takes grant_type "+apiclient.GrantTypeDeviceCode)
	}
	return s.redeemDevice(w, r, req)
}

// deviceTokenRequest reads a token request, form-encoded (RFC 6749) or JSON.
func deviceTokenRequest(contentType string, body []byte) (apiclient.DeviceTokenRequest, bool) {
	var req apiclient.DeviceTokenRequest
	if mt, _, _ := mime.ParseMediaType(contentType); mt == "application/json" {
		return req, json.Unmarshal(body, &req) == nil
	}
	v, err := url.ParseQuery(string(body))
	if err != nil {
		return req, false
	}
	return apiclient.DeviceTokenRequest{GrantType: v.Get("grant_type"), DeviceCode: v.Get("device_code")}, true
}

// redeemDevice answers one poll of a device: an OAuth error until the code
// is approved, then, once, an access token and a new refresh token.
func (s *Server) redeemDevice(w http.ResponseWriter, r *http.Request, req apiclient.DeviceTokenRequest) error {
	if req.DeviceCode == "" {
		return writeOAuthError(w, apiclient.OAuthInvalidRequest, "device_code is missing")
	}
	refresh := auth.NewRefreshToken()
	state, u, err := s.store.RedeemDeviceCode(r.Context(), req.DeviceCode, s.now(), uuid.NewString(), refresh)
	if err != nil {
		return err
	}
	switch state {
	case store.DevicePending:
		return writeOAuthError(w, apiclient.OAuthAuthorizationPending, "the code is not approved yet")
	case store.DeviceSlowDown:
		return writeOAuthError(w, apiclient.OAuthSlowDown, "polling too fast: wait 5 seconds more between requests")
	case store.DeviceExpired:
		return writeOAuthError(w, apiclient.OAuthExpiredToken, "the code expired: start the login again")
	case store.DeviceDenied:
		return writeOAuthError(w, apiclient.OAuthAccessDenied, "the login was denied on the approval page")
	case store.DeviceApproved:
	default:
		return writeOAuthError(w, apiclient.OAuthInvalidGrant, "unknown or already used device code")
	}
	tok, exp, err := s.tokens.Issue(u)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, apiclient.DeviceTokenResponse{
		AccessToken: tok, RefreshToken: refresh, TokenType: "Bearer", ExpiresIn: int(exp.Sub(s.now()).Seconds()),
	})
}

// writeOAuthError writes an RFC 6749 §5.2 error with status 400.
func writeOAuthError(w http.ResponseWriter, code, description string) error {
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusBadRequest, apiclient.OAuthError{Code: code, Description: description})
}

// newUserCode draws a user code: userCodeLen letters of userCodeAlphabet.
func newUserCode() string {
	b := make([]byte, userCodeLen)
	for i := range b {
		// Uniform over the alphabet: bytes past its last whole multiple
		// are drawn again.
		for {
			var c [1]byte
			rand.Read(c[:]) //nolint:errcheck // crypto/rand never fails
			if int(c[0]) < 256/len(userCodeAlphabet)*len(userCodeAlphabet) {
				b[i] = userCodeAlphabet[int(c[0])%len(userCodeAlphabet)]
				break
			}
		}
	}
	return string(b)
}

// formatUserCode shows a code as ABCD-EFGH.
func formatUserCode(c string) string {
	if len(c) != userCodeLen {
		return c
	}
	return c[:4] + "-" + c[4:]
}

// normalizeUserCode accepts what a person types: any case, dashes and
// spaces.
func normalizeUserCode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		case r >= 'A' && r <= 'Z':
			return r
		}
		return -1
	}, s)
}

// devicePageData is what the approval page shows.
type devicePageData struct {
	CSRF     string
	UserCode string // as typed or from the URL, shown formatted
	// Account names the signed-in user; empty when nobody is signed in.
	Account string
	// Name is the user name last typed in the sign-in form.
	Name string
	// Error is a problem with the last form, Done the outcome of a
	// decision.
	Error, Done string
}

var devicePage = template.Must(template.New("device").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hangar · log in a device</title>
<style>
body{font-family:system-ui,sans-serif;max-width:34rem;margin:3rem auto;padding:0 1rem;line-height:1.5}
input{font:inherit;padding:.3rem;width:100%;box-sizing:border-box}
input.code{font-family:monospace;font-size:1.4rem;letter-spacing:.2rem;text-transform:uppercase}
button{font:inherit;padding:.4rem 1rem;margin-right:.5rem}
.error{color:#a00}.done{color:#070}.muted{color:#666;font-size:.9rem}details{margin-top:1.5rem}
</style></head><body>
<h1>Log in a device to Hangar</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
{{if .Done}}<p class="done" role="status">{{.Done}}</p>
{{else if .Account}}
<p>Signed in as <b>{{.Account}}</b>.</p>
<form method="post" action="/device">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<p><label>Code shown by <code>dbos-cloud login</code><br>
<input class="code" name="user_code" value="{{.UserCode}}" autocomplete="off" autofocus required></label></p>
<p class="muted">Approve only a login you started yourself, whose terminal shows this same code.
The device will act as {{.Account}}.</p>
<button name="action" value="approve">Approve</button><button name="action" value="deny">Deny</button>
</form>
<form method="post" action="/device"><input type="hidden" name="csrf" value="{{.CSRF}}">
<p class="muted">Not you? <button name="action" value="signout">Sign out</button></p></form>
{{else}}
<form method="post" action="/device">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="user_code" value="{{.UserCode}}">
<p><label>User name<br>
<input name="username" value="{{.Name}}" autocomplete="username" autocapitalize="none" spellcheck="false" autofocus required></label></p>
<p><label>Password<br>
<input type="password" name="password" autocomplete="current-password" required></label></p>
<button name="action" value="signin">Sign in</button>
</form>
<details><summary class="muted">No password? Sign in with a refresh token</summary>
<form method="post" action="/device">
<input type="hidden" name="csrf" value="{{.CSRF}}">
<input type="hidden" name="user_code" value="{{.UserCode}}">
<p><label>Your refresh token<br>
<input type="password" name="refresh_token" autocomplete="off" required></label></p>
<p class="muted">The token <code>hangar users add</code> printed for you, or the refreshToken of a logged-in
<code>.dbos/credentials</code>. Set a password with <code>dbos-cloud user password</code>.</p>
<button name="action" value="signin">Sign in</button>
</form>
</details>
{{end}}
</body></html>
`))

// devicePageGet shows the approval page: the sign-in form, or, signed in,
// the code to approve (from ?user_code=).
func (s *Server) devicePageGet(w http.ResponseWriter, r *http.Request) error {
	d := devicePageData{CSRF: s.csrfToken(w, r), UserCode: formatUserCode(normalizeUserCode(r.URL.Query().Get("user_code")))}
	if u, ok := s.deviceSession(r); ok {
		d.Account = accountName(u)
	}
	return renderDevicePage(w, http.StatusOK, d)
}

// devicePagePost handles the page's forms: sign in, approve, deny, sign out.
// Each must carry the CSRF token of the page's cookie, and come from the
// page's own origin when the browser says where it comes from.
func (s *Server) devicePagePost(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return renderDevicePage(w, http.StatusBadRequest, devicePageData{CSRF: s.csrfToken(w, r), Error: "The form could not be read: reload the page and try again."})
	}
	d := devicePageData{UserCode: formatUserCode(normalizeUserCode(r.PostForm.Get("user_code")))}
	if !s.validCSRF(r) {
		d.CSRF = s.newCSRF(w)
		d.Error = "This form expired or was not sent from this page: reload it and try again."
		return renderDevicePage(w, http.StatusForbidden, d)
	}
	d.CSRF = r.PostForm.Get("csrf")
	switch action := r.PostForm.Get("action"); action {
	case "signin":
		u, err := s.signIn(r)
		if k := hangar.KindOf(err); k == hangar.KindUnauthorized || k == hangar.KindTooMany {
			d.Name = normalizeUserName(r.PostForm.Get("username"))
			d.Error = capitalize(hangar.MessageOf(err)) + "."
			setRetryAfter(w, err, s.now())
			return renderDevicePage(w, statusOf(k), d)
		}
		if err != nil {
			return err
		}
		tok, _, err := s.tokens.Issue(u)
		if err != nil {
			return err
		}
		setCookie(w, sessionCookie, tok, sessionTTL)
		target := "/device"
		if d.UserCode != "" {
			target += "?user_code=" + url.QueryEscape(d.UserCode)
		}
		http.Redirect(w, r, target, http.StatusSeeOther)
		return nil
	case "signout":
		setCookie(w, sessionCookie, "", -1)
		http.Redirect(w, r, "/device", http.StatusSeeOther)
		return nil
	case "approve", "deny":
		u, ok := s.deviceSession(r)
		if !ok {
			d.Error = "Sign in first: your sign-in expired or you signed out."
			return renderDevicePage(w, http.StatusUnauthorized, d)
		}
		d.Account = accountName(u)
		code := normalizeUserCode(d.UserCode)
		if len(code) != userCodeLen {
			d.Error = "Enter the 8-letter code dbos-cloud login shows, like BCDF-GHJK."
			return renderDevicePage(w, http.StatusBadRequest, d)
		}
		now := s.now()
		if until, ok := s.decisions.take(clientAddr(r), now); !ok {
			err := retryError{err: hangar.Errorf(hangar.KindTooMany, "too many codes tried from your address: try again in %d seconds", int((until.Sub(now)+time.Second-1)/time.Second)), until: until}
			setRetryAfter(w, err, now)
			d.Error = capitalize(hangar.MessageOf(err)) + "."
			return renderDevicePage(w, http.StatusTooManyRequests, d)
		}
		err := s.store.DecideDeviceCode(r.Context(), code, u.ID, action == "approve", now)
		if hangar.KindOf(err) == hangar.KindNotFound {
			d.Error = hangar.MessageOf(err) + "."
			return renderDevicePage(w, http.StatusBadRequest, d)
		}
		if err != nil {
			return err
		}
		if action == "approve" {
			d.Done = "Approved: dbos-cloud login on your device finishes within a few seconds. You can close this page."
		} else {
			d.Done = "Denied: the login on that device fails."
		}
		return renderDevicePage(w, http.StatusOK, d)
	default:
		d.Error = "Unknown action " + action + "."
		return renderDevicePage(w, http.StatusBadRequest, d)
	}
}

// signIn checks the sign-in form: a refresh token when one is given, else a
// user name and password. Errors: KindUnauthorized, KindTooMany.
func (s *Server) signIn(r *http.Request) (hangar.User, error) {
	if tok := strings.TrimSpace(r.PostForm.Get("refresh_token")); tok != "" {
		u, err := s.store.UseRefreshToken(r.Context(), tok, s.now(), auth.RefreshMaxAge, auth.RefreshMaxIdle)
		if hangar.KindOf(err) == hangar.KindUnauthorized {
			return u, hangar.Errorf(hangar.KindUnauthorized, "that refresh token is invalid, expired or revoked")
		}
		return u, err
	}
	return s.checkPassword(r.Context(), normalizeUserName(r.PostForm.Get("username")), r.PostForm.Get("password"), clientAddr(r))
}

// capitalize starts a message with a capital letter, as a sentence on the
// page.
func capitalize(msg string) string {
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// deviceSession returns the account signed in on the approval page: the
// subject of the access token in its session cookie, if that account still
// exists and is enabled.
func (s *Server) deviceSession(r *http.Request) (hangar.User, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return hangar.User{}, false
	}
	id, err := s.tokens.Verify(c.Value)
	if err != nil {
		return hangar.User{}, false
	}
	u, err := s.store.AccountByID(r.Context(), id)
	if err != nil {
		if hangar.KindOf(err) != hangar.KindUnauthorized {
			s.log.WarnContext(r.Context(), "look up device page account", "request_id", requestID(r.Context()), "err", err)
		}
		return hangar.User{}, false
	}
	return u, true
}

// accountName is how the page names an account; a sign-up account has no
// name until it registers.
func accountName(u hangar.User) string {
	if u.Name == "" {
		return "a new account (not registered yet)"
	}
	return u.Name + " (organization " + u.Org + ")"
}

// csrfToken returns the page's CSRF token, from its cookie or new.
func (s *Server) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) >= 32 {
		return c.Value
	}
	return s.newCSRF(w)
}

func (s *Server) newCSRF(w http.ResponseWriter) string {
	tok := auth.NewSecret(32)
	setCookie(w, csrfCookie, tok, 24*time.Hour)
	return tok
}

// validCSRF checks a form post: the csrf field equals the CSRF cookie, and
// the Origin header, when the browser sent one, is the page's own.
func (s *Server) validCSRF(r *http.Request) bool {
	if o := r.Header.Get("Origin"); o != "" && o != "https://"+r.Host {
		return false
	}
	c, err := r.Cookie(csrfCookie)
	if err != nil || len(c.Value) < 32 {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("csrf"))) == 1
}

// setCookie sets a __Host- cookie: Secure, HttpOnly, SameSite=Strict,
// Path=/. A negative maxAge deletes it.
func setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	c := &http.Cookie{Name: name, Value: value, Path: "/", Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode}
	if maxAge < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(maxAge / time.Second)
	}
	http.SetCookie(w, c)
}

func renderDevicePage(w http.ResponseWriter, status int, d devicePageData) error {
	var b bytes.Buffer
	if err := devicePage.Execute(&b, d); err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	w.WriteHeader(status)
	_, err := w.Write(b.Bytes())
	return err
}
