package api_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/hangartest"
	"github.com/hangar-oss/hangar/internal/store"
)

// clock is a settable time for a test server.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// deviceFixture is a whole server (hangartest) with user alice (ID u-alice,
// refresh token aliceToken), a settable clock and a counting hasher.
type deviceFixture struct {
	srv    *hangartest.Server
	st     *store.DB
	tokens *auth.Issuer // verifies the server's tokens
	clock  *clock
	hasher *countingHasher
}

// countingHasher counts the password checks of the real hasher it wraps.
type countingHasher struct {
	accounts.Hasher
	checks atomic.Int64
}

func (h *countingHasher) Verify(ctx context.Context, encoded, pw string) (bool, error) {
	h.checks.Add(1)
	return h.Hasher.Verify(ctx, encoded, pw)
}

const aliceToken = "hgr_alice-refresh-token"

func newDeviceFixture(t *testing.T) *deviceFixture {
	t.Helper()
	ctx := t.Context()
	c := &clock{t: time.Now()}
	hasher := &countingHasher{Hasher: auth.NewHasher(auth.HasherConfig{})}
	srv := hangartest.New(t, hangartest.Options{Now: c.Now, Hasher: hasher})
	st := srv.Store(t)
	if err := st.CreateUserWithOrg(ctx, hangar.User{ID: "u-alice", Name: "alice", Org: "alice"}); err != nil {
		t.Fatal(err)
	}
	if err := st.AddRefreshToken(ctx, "t-alice", "u-alice", aliceToken); err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.Open(ctx, st, auth.Config{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	return &deviceFixture{srv: srv, st: st, tokens: tokens, clock: c, hasher: hasher}
}

// client is an HTTP client of the server of its own.
func (f *deviceFixture) client() *http.Client {
	return &http.Client{Transport: f.srv.HTTP.Transport, Timeout: f.srv.HTTP.Timeout}
}

// browser is an HTTP client with a cookie jar that does not follow
// redirects, so a test sees each answer.
func (f *deviceFixture) browser(t *testing.T) *http.Client {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	c := f.client()
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

func (f *deviceFixture) startLogin(t *testing.T) apiclient.DeviceCodeResponse {
	t.Helper()
	c := &apiclient.Client{BaseURL: f.srv.URL, HTTP: f.client()}
	dc, err := c.DeviceCode(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return dc
}

// poll polls the token endpoint at path once and returns the OAuth error
// code ("" on success) and the tokens.
func (f *deviceFixture) poll(t *testing.T, path, deviceCode string) (string, apiclient.DeviceTokenResponse) {
	t.Helper()
	resp, err := f.client().PostForm(f.srv.URL+path, url.Values{"grant_type": {apiclient.GrantTypeDeviceCode}, "device_code": {deviceCode}})
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode == http.StatusOK {
		var out apiclient.DeviceTokenResponse
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return "", out
	}
	var oe apiclient.OAuthError
	if resp.StatusCode != http.StatusBadRequest || json.Unmarshal(b, &oe) != nil || oe.Code == "" {
		t.Fatalf("poll: got %d %s, want 200 or an OAuth error with 400", resp.StatusCode, b)
	}
	return oe.Code, apiclient.DeviceTokenResponse{}
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// page fetches the approval page and returns its status, body and CSRF token.
func (f *deviceFixture) page(t *testing.T, b *http.Client, query string) (int, string, string) {
	t.Helper()
	resp, err := b.Get(f.srv.URL + "/device" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := csrfField.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("page has no CSRF field:\n%s", body)
	}
	return resp.StatusCode, string(body), m[1]
}

// post submits the page's form and returns status and body.
func (f *deviceFixture) post(t *testing.T, b *http.Client, form url.Values) (int, string) {
	t.Helper()
	resp, err := b.PostForm(f.srv.URL+"/device", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// signIn signs b in as alice and returns the page's CSRF token.
func (f *deviceFixture) signIn(t *testing.T, b *http.Client, userCode string) string {
	t.Helper()
	_, _, csrf := f.page(t, b, "?user_code="+url.QueryEscape(userCode))
	status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"signin"}, "refresh_token": {aliceToken}, "user_code": {userCode}})
	if status != http.StatusSeeOther {
		t.Fatalf("sign in: got %d, want 303\n%s", status, body)
	}
	status, body, csrf = f.page(t, b, "?user_code="+url.QueryEscape(userCode))
	if status != http.StatusOK || !strings.Contains(body, "Signed in as <b>alice (organization alice)</b>") || !strings.Contains(body, userCode) {
		t.Fatalf("page after sign-in: got %d, want alice signed in with code %s\n%s", status, userCode, body)
	}
	return csrf
}

func wantPoll(t *testing.T, got, want string) {
	t.Helper()
	if got != want {
		t.Fatalf("poll: got %q, want %q", got, want)
	}
}

func TestDevice_Approve(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	dc := f.startLogin(t)
	if !regexp.MustCompile(`^[BCDFGHJKLMNPQRSTVWXZ]{4}-[BCDFGHJKLMNPQRSTVWXZ]{4}$`).MatchString(dc.UserCode) {
		t.Errorf("user code %q, want ABCD-EFGH of consonants", dc.UserCode)
	}
	page := f.srv.URL + "/device"
	if dc.VerificationURI != page || dc.VerificationURIComplete != page+"?user_code="+dc.UserCode || dc.ExpiresIn != 900 || dc.Interval != 5 {
		t.Errorf("device code response = %+v, want %s, expires_in 900, interval 5", dc, page)
	}
	if dc.DeviceCode == "" {
		t.Fatal("no device_code")
	}

	code, _ := f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthAuthorizationPending)
	code, _ = f.poll(t, "/oauth/device/token", dc.DeviceCode) // at once: too fast
	wantPoll(t, code, apiclient.OAuthSlowDown)
	f.clock.Advance(6 * time.Second) // the interval grew to 10 s
	code, _ = f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthSlowDown)
	f.clock.Advance(16 * time.Second) // and to 15 s
	code, _ = f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthAuthorizationPending)

	b := f.browser(t)
	// A wrong refresh token does not sign in.
	_, _, csrf := f.page(t, b, "")
	status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"signin"}, "refresh_token": {"hgr_wrong"}})
	if status != http.StatusUnauthorized || !strings.Contains(body, "invalid, expired or revoked") {
		t.Errorf("sign in with a wrong token: got %d, want 401 saying so\n%s", status, body)
	}
	csrf = f.signIn(t, b, dc.UserCode)

	// The code as a person might type it.
	typed := strings.ToLower(strings.ReplaceAll(dc.UserCode, "-", " "))
	status, body = f.post(t, b, url.Values{"csrf": {csrf}, "action": {"approve"}, "user_code": {typed}})
	if status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Fatalf("approve: got %d, want 200 Approved\n%s", status, body)
	}
	// Approved once: a second decision finds no pending code.
	status, body = f.post(t, b, url.Values{"csrf": {csrf}, "action": {"deny"}, "user_code": {dc.UserCode}})
	if status != http.StatusBadRequest || !strings.Contains(body, "unknown, expired or already used") {
		t.Errorf("deny after approve: got %d, want 400\n%s", status, body)
	}

	f.clock.Advance(16 * time.Second)
	code, tok := f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, "")
	if sub, err := f.tokens.Verify(tok.AccessToken); err != nil || sub != "u-alice" {
		t.Errorf("access token subject = %q, %v; want u-alice", sub, err)
	}
	if tok.TokenType != "Bearer" || tok.ExpiresIn <= 0 || !strings.HasPrefix(tok.RefreshToken, "hgr_") || tok.RefreshToken == aliceToken {
		t.Errorf("token response = %+v, want Bearer with a new hgr_ refresh token", tok)
	}
	if u, err := f.st.UseRefreshToken(t.Context(), tok.RefreshToken, f.clock.Now(), auth.RefreshMaxAge, auth.RefreshMaxIdle); err != nil || u.Name != "alice" {
		t.Errorf("new refresh token: user %+v, %v; want alice", u, err)
	}

	// Issued once.
	f.clock.Advance(16 * time.Second)
	code, _ = f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthInvalidGrant)
}

func TestDevice_Deny(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	dc := f.startLogin(t)
	b := f.browser(t)
	csrf := f.signIn(t, b, dc.UserCode)
	status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"deny"}, "user_code": {dc.UserCode}})
	if status != http.StatusOK || !strings.Contains(body, "Denied") {
		t.Fatalf("deny: got %d, want 200 Denied\n%s", status, body)
	}
	// The grant posted to /oauth/token, as RFC 8628 clients do, is the
	// same grant.
	code, _ := f.poll(t, "/oauth/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthAccessDenied)
}

func TestDevice_Expired(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	dc := f.startLogin(t)
	b := f.browser(t)
	csrf := f.signIn(t, b, dc.UserCode)
	f.clock.Advance(15*time.Minute + time.Second)
	status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"approve"}, "user_code": {dc.UserCode}})
	if status != http.StatusBadRequest || !strings.Contains(body, "unknown, expired or already used") {
		t.Errorf("approve an expired code: got %d, want 400\n%s", status, body)
	}
	code, _ := f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthExpiredToken)
}

func TestDevice_CSRF(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	dc := f.startLogin(t)
	b := f.browser(t)
	csrf := f.signIn(t, b, dc.UserCode)
	approve := url.Values{"action": {"approve"}, "user_code": {dc.UserCode}}

	t.Run("WrongToken", func(t *testing.T) {
		form := url.Values{"csrf": {strings.Repeat("x", 43)}}
		for k, v := range approve {
			form[k] = v
		}
		if status, body := f.post(t, b, form); status != http.StatusForbidden || !strings.Contains(body, "reload it") {
			t.Errorf("got %d, want 403\n%s", status, body)
		}
	})
	t.Run("NoToken", func(t *testing.T) {
		if status, _ := f.post(t, b, approve); status != http.StatusForbidden {
			t.Errorf("got %d, want 403", status)
		}
	})
	t.Run("OtherOrigin", func(t *testing.T) {
		form := url.Values{"csrf": {csrf}}
		for k, v := range approve {
			form[k] = v
		}
		req, _ := http.NewRequest("POST", f.srv.URL+"/device", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Origin", "https://evil-app.example")
		resp, err := b.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("got %d, want 403", resp.StatusCode)
		}
	})
	t.Run("NotSignedIn", func(t *testing.T) {
		other := f.browser(t)
		_, _, csrf := f.page(t, other, "")
		form := url.Values{"csrf": {csrf}}
		for k, v := range approve {
			form[k] = v
		}
		if status, body := f.post(t, other, form); status != http.StatusUnauthorized || !strings.Contains(body, "Sign in first") {
			t.Errorf("got %d, want 401\n%s", status, body)
		}
	})
	// None of these decided the code.
	code, _ := f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, apiclient.OAuthAuthorizationPending)
}

func TestDevice_RefreshGrantStillWorks(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	c := &apiclient.Client{BaseURL: f.srv.URL, HTTP: f.client()}
	tok, err := c.Exchange(t.Context(), aliceToken)
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := f.tokens.Verify(tok.AccessToken); err != nil || sub != "u-alice" {
		t.Errorf("subject = %q, %v; want u-alice", sub, err)
	}
}
