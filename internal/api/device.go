package api

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"html/template"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Logins runs the device login flow (RFC 8628) and the refresh-token
// exchange; *auth.Logins satisfies it. The handlers here and in users.go
// only translate HTTP to its calls.
type Logins interface {
	// Start starts a device login: a device code with a normalized user
	// code.
	Start(ctx context.Context) (hangar.DeviceCode, error)
	// Redeem answers one poll of a device: its code's state and, once
	// approved, the grant.
	Redeem(ctx context.Context, deviceCode string) (hangar.DeviceState, auth.Grant, error)
	// Decide approves or denies a user code for u from the address client.
	// Errors: KindInvalid, KindTooMany (an auth.RetryError), KindNotFound.
	Decide(ctx context.Context, u hangar.User, userCode, client string, approve bool) error
	// SignInWithRefreshToken returns a refresh token's user.
	// KindUnauthorized.
	SignInWithRefreshToken(ctx context.Context, token string) (hangar.User, error)
	// Exchange exchanges a refresh token for an access token and its
	// expiry. KindUnauthorized.
	Exchange(ctx context.Context, refreshToken string) (string, time.Time, error)
	// NewSession returns the token of a sign-in on the approval page.
	NewSession(u hangar.User) (string, error)
	// Session returns the account a session token signs in.
	// KindUnauthorized, or another kind when the lookup failed.
	Session(ctx context.Context, token string) (hangar.User, error)
}

// loginsAPI serves the login routes: the device flow and its approval
// page, the token endpoints and users' own passwords.
type loginsAPI struct{ *Server }

// Cookies of the approval page. The __Host- prefix makes browsers refuse
// them unless Secure, host-only and for Path=/: an app served on a subdomain
// (<org>-<app>.<domain>, same-site with the API host, so SameSite does not
// stop it) cannot plant them to forge a form or a sign-in.
const (
	csrfCookie    = "__Host-hangar-csrf"
	sessionCookie = "__Host-hangar-device"
)

// deviceCode starts a device login: POST /oauth/device/code (RFC 8628
// §3.1-3.2). client_id and scope are accepted and ignored: every approved
// device gets an access token and a refresh token.
func (s *loginsAPI) deviceCode(w http.ResponseWriter, r *http.Request) error {
	dc, err := s.logins.Start(r.Context())
	if err != nil {
		return err
	}
	shown := auth.FormatUserCode(dc.UserCode)
	page := "https://" + s.cfg.Domain + "/device"
	return writeJSON(w, http.StatusOK, apiclient.DeviceCodeResponse{
		DeviceCode: dc.DeviceCode, UserCode: shown,
		VerificationURI: page, VerificationURIComplete: page + "?user_code=" + url.QueryEscape(shown),
		ExpiresIn: int(dc.ExpiresAt.Sub(dc.CreatedAt) / time.Second), Interval: int(dc.Interval / time.Second),
	})
}

// oauthToken is a token endpoint for every grant: the device grant here,
// anything else (refresh_token) to the Auth0-shaped token handler. It serves
// POST /oauth/token, where RFC 8628 clients post device grants, as the
// official CLI does to Auth0.
func (s *loginsAPI) oauthToken(w http.ResponseWriter, r *http.Request) error {
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
func (s *loginsAPI) deviceToken(w http.ResponseWriter, r *http.Request) error {
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
func (s *loginsAPI) redeemDevice(w http.ResponseWriter, r *http.Request, req apiclient.DeviceTokenRequest) error {
	if req.DeviceCode == "" {
		return writeOAuthError(w, apiclient.OAuthInvalidRequest, "device_code is missing")
	}
	state, g, err := s.logins.Redeem(r.Context(), req.DeviceCode)
	if err != nil {
		return err
	}
	switch state {
	case hangar.DevicePending:
		return writeOAuthError(w, apiclient.OAuthAuthorizationPending, "the code is not approved yet")
	case hangar.DeviceSlowDown:
		return writeOAuthError(w, apiclient.OAuthSlowDown, "polling too fast: wait 5 seconds more between requests")
	case hangar.DeviceExpired:
		return writeOAuthError(w, apiclient.OAuthExpiredToken, "the code expired: start the login again")
	case hangar.DeviceDenied:
		return writeOAuthError(w, apiclient.OAuthAccessDenied, "the login was denied on the approval page")
	case hangar.DeviceApproved:
	default:
		return writeOAuthError(w, apiclient.OAuthInvalidGrant, "unknown or already used device code")
	}
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, apiclient.DeviceTokenResponse{
		AccessToken: g.AccessToken, RefreshToken: g.RefreshToken, TokenType: "Bearer", ExpiresIn: int(g.ExpiresIn.Seconds()),
	})
}

// writeOAuthError writes an RFC 6749 §5.2 error with status 400.
func writeOAuthError(w http.ResponseWriter, code, description string) error {
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusBadRequest, apiclient.OAuthError{Code: code, Description: description})
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

//go:embed templates/device.html
var templates embed.FS

var devicePage = template.Must(template.ParseFS(templates, "templates/device.html"))

// devicePageGet shows the approval page: the sign-in form, or, signed in,
// the code to approve (from ?user_code=).
func (s *loginsAPI) devicePageGet(w http.ResponseWriter, r *http.Request) error {
	d := devicePageData{CSRF: s.csrfToken(w, r), UserCode: shownUserCode(r.URL.Query().Get("user_code"))}
	if u, ok := s.deviceSession(r); ok {
		d.Account = accountName(u)
	}
	return renderDevicePage(w, http.StatusOK, d)
}

// shownUserCode is a user code as typed, as the page shows it.
func shownUserCode(typed string) string { return auth.FormatUserCode(auth.NormalizeUserCode(typed)) }

// devicePagePost handles the page's forms: sign in, approve, deny, sign out.
// Each must carry the CSRF token of the page's cookie, and come from the
// page's own origin when the browser says where it comes from.
func (s *loginsAPI) devicePagePost(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return renderDevicePage(w, http.StatusBadRequest, devicePageData{CSRF: s.csrfToken(w, r), Error: "The form could not be read: reload the page and try again."})
	}
	d := devicePageData{UserCode: shownUserCode(r.PostForm.Get("user_code"))}
	if !validCSRF(r) {
		d.CSRF = s.newCSRF(w)
		d.Error = "This form expired or was not sent from this page: reload it and try again."
		return renderDevicePage(w, http.StatusForbidden, d)
	}
	d.CSRF = r.PostForm.Get("csrf")
	switch action := r.PostForm.Get("action"); action {
	case "signin":
		return s.devicePageSignIn(w, r, d)
	case "signout":
		setCookie(w, sessionCookie, "", -1)
		http.Redirect(w, r, "/device", http.StatusSeeOther)
		return nil
	case "approve", "deny":
		return s.devicePageDecide(w, r, d, action == "approve")
	default:
		d.Error = "Unknown action " + action + "."
		return renderDevicePage(w, http.StatusBadRequest, d)
	}
}

// devicePageSignIn signs in with the form's refresh token when one is
// given, else with its user name and password, and back to the page.
func (s *loginsAPI) devicePageSignIn(w http.ResponseWriter, r *http.Request, d devicePageData) error {
	var u hangar.User
	var err error
	if tok := strings.TrimSpace(r.PostForm.Get("refresh_token")); tok != "" {
		u, err = s.logins.SignInWithRefreshToken(r.Context(), tok)
	} else {
		u, err = s.passwords.CheckPassword(r.Context(), normalizeUserName(r.PostForm.Get("username")), r.PostForm.Get("password"), clientAddr(r))
	}
	if k := hangar.KindOf(err); k == hangar.KindUnauthorized || k == hangar.KindTooMany {
		d.Name = normalizeUserName(r.PostForm.Get("username"))
		d.Error = capitalize(hangar.MessageOf(err)) + "."
		setRetryAfter(w, err)
		return renderDevicePage(w, statusOf(k), d)
	}
	if err != nil {
		return err
	}
	tok, err := s.logins.NewSession(u)
	if err != nil {
		return err
	}
	setCookie(w, sessionCookie, tok, auth.SessionTTL)
	target := "/device"
	if d.UserCode != "" {
		target += "?user_code=" + url.QueryEscape(d.UserCode)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
	return nil
}

// devicePageDecide approves or denies the form's code for the signed-in
// account.
func (s *loginsAPI) devicePageDecide(w http.ResponseWriter, r *http.Request, d devicePageData, approve bool) error {
	u, ok := s.deviceSession(r)
	if !ok {
		d.Error = "Sign in first: your sign-in expired or you signed out."
		return renderDevicePage(w, http.StatusUnauthorized, d)
	}
	d.Account = accountName(u)
	err := s.logins.Decide(r.Context(), u, d.UserCode, clientAddr(r), approve)
	switch k := hangar.KindOf(err); {
	case err == nil:
	case k == hangar.KindTooMany:
		setRetryAfter(w, err)
		d.Error = capitalize(hangar.MessageOf(err)) + "."
		return renderDevicePage(w, http.StatusTooManyRequests, d)
	case k == hangar.KindInvalid || k == hangar.KindNotFound:
		d.Error = hangar.MessageOf(err) + "."
		return renderDevicePage(w, http.StatusBadRequest, d)
	default:
		return err
	}
	if approve {
		d.Done = "Approved: dbos-cloud login on your device finishes within a few seconds. You can close this page."
	} else {
		d.Done = "Denied: the login on that device fails."
	}
	return renderDevicePage(w, http.StatusOK, d)
}

// capitalize starts a message with a capital letter, as a sentence on the
// page.
func capitalize(msg string) string {
	if msg == "" {
		return msg
	}
	return strings.ToUpper(msg[:1]) + msg[1:]
}

// deviceSession returns the account signed in on the approval page by its
// session cookie.
func (s *loginsAPI) deviceSession(r *http.Request) (hangar.User, bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return hangar.User{}, false
	}
	u, err := s.logins.Session(r.Context(), c.Value)
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
func (s *loginsAPI) csrfToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(csrfCookie); err == nil && auth.ReuseCSRF(c.Value) {
		return c.Value
	}
	return s.newCSRF(w)
}

func (s *loginsAPI) newCSRF(w http.ResponseWriter) string {
	tok := auth.NewCSRFToken()
	setCookie(w, csrfCookie, tok, 24*time.Hour)
	return tok
}

// validCSRF checks a form post (auth.ValidCSRF).
func validCSRF(r *http.Request) bool {
	c, err := r.Cookie(csrfCookie)
	if err != nil {
		return false
	}
	return auth.ValidCSRF(c.Value, r.PostForm.Get("csrf"), r.Header.Get("Origin"), r.Host)
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
