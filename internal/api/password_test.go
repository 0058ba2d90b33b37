package api_test

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
)

const alicePassword = "alice's long password"

// setPassword gives the user name the password pw, as hangar users passwd
// does.
func (f *deviceFixture) setPassword(t *testing.T, name, pw string) {
	t.Helper()
	h, err := auth.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.st.SetPasswordHash(t.Context(), name, h); err != nil {
		t.Fatal(err)
	}
}

// signInPassword posts the password sign-in form and returns status and body.
func (f *deviceFixture) signInPassword(t *testing.T, b *http.Client, name, pw, userCode string) (int, string) {
	t.Helper()
	_, _, csrf := f.page(t, b, "?user_code="+url.QueryEscape(userCode))
	return f.post(t, b, url.Values{"csrf": {csrf}, "action": {"signin"}, "username": {name}, "password": {pw}, "user_code": {userCode}})
}

func TestDevice_PasswordSignIn(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	f.setPassword(t, "alice", alicePassword)
	dc := f.startLogin(t)
	b := f.browser(t)

	_, body, _ := f.page(t, b, "?user_code="+dc.UserCode)
	for _, want := range []string{`name="username"`, `type="password" name="password"`, `name="refresh_token"`} {
		if !strings.Contains(body, want) {
			t.Errorf("sign-in page lacks %s:\n%s", want, body)
		}
	}

	// A wrong password and an unknown user get the same answer.
	for _, tc := range []struct{ name, pw string }{{"alice", "not the password"}, {"nobody", alicePassword}, {"", ""}} {
		status, body := f.signInPassword(t, b, tc.name, tc.pw, dc.UserCode)
		if status != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") || strings.Contains(body, "Signed in") {
			t.Errorf("sign in as %q with %q: got %d, want 401 with the one generic message\n%s", tc.name, tc.pw, status, body)
		}
		if tc.name != "" && !strings.Contains(body, `name="username" value="`+tc.name+`"`) {
			t.Errorf("sign in as %q: the form lost the name\n%s", tc.name, body)
		}
	}

	// The name as typed: any case, spaces around it.
	status, body := f.signInPassword(t, b, " Alice ", alicePassword, dc.UserCode)
	if status != http.StatusSeeOther {
		t.Fatalf("sign in with the password: got %d, want 303\n%s", status, body)
	}
	status, body, csrf := f.page(t, b, "?user_code="+url.QueryEscape(dc.UserCode))
	if status != http.StatusOK || !strings.Contains(body, "Signed in as <b>alice (organization alice)</b>") {
		t.Fatalf("page after the password sign-in: got %d, want alice signed in\n%s", status, body)
	}
	status, body = f.post(t, b, url.Values{"csrf": {csrf}, "action": {"approve"}, "user_code": {dc.UserCode}})
	if status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Fatalf("approve: got %d, want 200 Approved\n%s", status, body)
	}
	f.clock.Advance(6 * time.Second)
	code, tok := f.poll(t, "/oauth/device/token", dc.DeviceCode)
	wantPoll(t, code, "")
	if sub, err := f.tokens.Verify(tok.AccessToken); err != nil || sub != "u-alice" {
		t.Errorf("access token subject = %q, %v; want u-alice", sub, err)
	}

	// The refresh token still signs in, from the page's second form.
	other := f.browser(t)
	_, _, csrf = f.page(t, other, "")
	if status, body := f.post(t, other, url.Values{"csrf": {csrf}, "action": {"signin"}, "refresh_token": {aliceToken}}); status != http.StatusSeeOther {
		t.Errorf("sign in with the refresh token: got %d, want 303\n%s", status, body)
	}
}

func TestDevice_PasswordDisabledUser(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	f.setPassword(t, "alice", alicePassword)
	if err := f.st.SetUserDisabled(t.Context(), "alice", true, f.clock.Now()); err != nil {
		t.Fatal(err)
	}
	b := f.browser(t)
	if status, body := f.signInPassword(t, b, "alice", "not the password", ""); status != http.StatusUnauthorized || !strings.Contains(body, "Wrong user name or password.") {
		t.Errorf("disabled user, wrong password: got %d, want 401 with the generic message\n%s", status, body)
	}
	status, body := f.signInPassword(t, b, "alice", alicePassword, "")
	if status != http.StatusUnauthorized || !strings.Contains(body, "User alice is disabled") || strings.Contains(body, "Signed in") {
		t.Errorf("disabled user, right password: got %d, want 401 saying it is disabled\n%s", status, body)
	}
}

func TestDevice_PasswordLimiter(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	f.setPassword(t, "alice", alicePassword)
	b := f.browser(t)

	// A success forgets earlier failures.
	for range accounts.MaxFailures - 1 {
		if status, _ := f.signInPassword(t, b, "alice", "guess", ""); status != http.StatusUnauthorized {
			t.Fatalf("wrong password: got %d, want 401", status)
		}
	}
	if status, body := f.signInPassword(t, b, "alice", alicePassword, ""); status != http.StatusSeeOther {
		t.Fatalf("right password after %d failures: got %d, want 303\n%s", accounts.MaxFailures-1, status, body)
	}

	start := f.clock.Now()
	for i := range accounts.MaxFailures {
		if status, _ := f.signInPassword(t, b, "ALICE", "guess", ""); status != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: got %d, want 401", i+1, status)
		}
		f.clock.Advance(time.Minute)
	}
	// Refused, even with the right password, until 15 minutes after the
	// first failure.
	for _, pw := range []string{"guess", alicePassword} {
		_, _, csrf := f.page(t, b, "")
		resp, err := b.PostForm(f.srv.URL+"/device", url.Values{"csrf": {csrf}, "action": {"signin"}, "username": {"alice"}, "password": {pw}})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		page := string(raw)
		want := fmt.Sprintf("Too many wrong passwords: try again in 10 minutes (at %s UTC).", start.Add(accounts.FailureWindow).UTC().Format(time.TimeOnly))
		if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "600" || !strings.Contains(page, want) {
			t.Errorf("password %q after %d failures: got %d (Retry-After %q), want 429, Retry-After 600, saying %q\n%s", pw, accounts.MaxFailures, resp.StatusCode, resp.Header.Get("Retry-After"), want, page)
		}
	}
	// Other names are not refused.
	if status, body := f.signInPassword(t, b, "bob", "guess", ""); status != http.StatusUnauthorized {
		t.Errorf("another name: got %d, want 401\n%s", status, body)
	}
	f.clock.Advance(10 * time.Minute)
	if status, body := f.signInPassword(t, b, "alice", alicePassword, ""); status != http.StatusSeeOther {
		t.Errorf("right password after the window: got %d, want 303\n%s", status, body)
	}
}

// TestDevice_ConcurrentWrongPasswords sends 30 wrong passwords for one user
// at once: each failure is counted before its hash is checked, so no more
// than accounts.MaxFailures are checked and the rest are refused.
func TestDevice_ConcurrentWrongPasswords(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	f.setPassword(t, "alice", alicePassword)
	b := f.browser(t)
	_, _, csrf := f.page(t, b, "")
	statuses := make([]int, 30)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			resp, err := b.PostForm(f.srv.URL+"/device", url.Values{"csrf": {csrf}, "action": {"signin"}, "username": {"alice"}, "password": {fmt.Sprintf("guess number %d", i)}})
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if got := f.hasher.checks.Load(); got > accounts.MaxFailures {
		t.Errorf("%d passwords checked, want at most %d", got, accounts.MaxFailures)
	}
	if counts[http.StatusUnauthorized] > accounts.MaxFailures || counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != len(statuses) {
		t.Errorf("statuses %v, want at most %d of 401 and the rest 429", counts, accounts.MaxFailures)
	}
}

// TestDevice_SignInFlood sends 60 sign-ins with unknown names at once, each
// an argon2 hash of 19 MiB: they take turns, so the heap stays far below
// the 1.1 GiB the 60 would take together, and each is answered 401, or 429
// with Retry-After when its turn did not come in time.
func TestDevice_SignInFlood(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	b := f.browser(t)
	_, _, csrf := f.page(t, b, "")
	runtime.GC()
	stop := make(chan struct{})
	heap := heapPeak(stop)
	statuses := make([]int, 60)
	var wg sync.WaitGroup
	for i := range statuses {
		wg.Go(func() {
			resp, err := b.PostForm(f.srv.URL+"/device", url.Values{"csrf": {csrf}, "action": {"signin"}, "username": {fmt.Sprintf("nobody%d", i)}, "password": {"a guessed password"}})
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			statuses[i] = resp.StatusCode
			if resp.StatusCode == http.StatusTooManyRequests && resp.Header.Get("Retry-After") == "" {
				t.Error("429 without Retry-After")
			}
		})
	}
	wg.Wait()
	close(stop)
	peak := <-heap
	counts := map[int]int{}
	for _, s := range statuses {
		counts[s]++
	}
	if counts[http.StatusUnauthorized]+counts[http.StatusTooManyRequests] != len(statuses) {
		t.Errorf("statuses %v, want only 401 and 429", counts)
	}
	// 2 × CPUs hashes at once, 19 MiB each, doubled by the garbage
	// collector's pacing, plus room for the server and other tests.
	if bound := uint64(2*runtime.NumCPU()*19<<20)*2 + 128<<20; peak > bound {
		t.Errorf("heap peaked at %d MiB, want at most %d MiB", peak>>20, bound>>20)
	}
	t.Logf("heap peak %d MiB over %d concurrent sign-ins; statuses %v", peak>>20, len(statuses), counts)
}

// heapPeak samples the heap's objects until stop is closed and returns the
// largest sample, without stopping the world.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return out
}

func TestDevice_DecisionsLimited(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	b := f.browser(t)
	_, _, csrf := f.page(t, b, "")
	if status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"signin"}, "refresh_token": {aliceToken}}); status != http.StatusSeeOther {
		t.Fatalf("sign in: got %d\n%s", status, body)
	}
	// Codes guessed in bulk: unknown ones, then the limit.
	for i := range auth.MaxDecisions {
		if status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"deny"}, "user_code": {fmt.Sprintf("BCDF%04d", i)[:4] + "GHJK"}}); status != http.StatusBadRequest {
			t.Fatalf("guess %d: got %d, want 400 (unknown code)\n%s", i+1, status, body)
		}
	}
	dc := f.startLogin(t)
	status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"approve"}, "user_code": {dc.UserCode}})
	if status != http.StatusTooManyRequests || !strings.Contains(body, "Too many codes tried from your address: try again in 60 seconds.") {
		t.Errorf("decision past the limit: got %d, want 429 saying when to retry\n%s", status, body)
	}
	f.clock.Advance(auth.DecisionWindow)
	if status, body := f.post(t, b, url.Values{"csrf": {csrf}, "action": {"approve"}, "user_code": {dc.UserCode}}); status != http.StatusOK || !strings.Contains(body, "Approved") {
		t.Errorf("decision after the window: got %d, want 200 Approved\n%s", status, body)
	}
}

func TestSetPassword(t *testing.T) {
	t.Parallel()
	f := newDeviceFixture(t)
	tok, _, err := f.tokens.Issue(hangar.User{ID: "u-alice"})
	if err != nil {
		t.Fatal(err)
	}
	c := &apiclient.Client{BaseURL: f.srv.URL, HTTP: f.client(), Token: tok}
	ctx := t.Context()
	wantErr := func(what string, err error, status int, msg string) {
		t.Helper()
		var ae *apiclient.Error
		if !errors.As(err, &ae) || ae.StatusCode != status || !strings.Contains(ae.Message, msg) {
			t.Errorf("%s: got %v, want %d with %q", what, err, status, msg)
		}
	}
	verifies := func(pw string) bool {
		t.Helper()
		l, err := f.st.LoginByName(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		ok, err := auth.VerifyPassword(l.PasswordHash, pw)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}

	wantErr("too short", c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "short"}), 400, "too short (5 characters): use at least 10")
	// The first password needs no current one.
	if err := c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: alicePassword}); err != nil {
		t.Fatal(err)
	}
	if !verifies(alicePassword) {
		t.Fatal("the password set does not verify")
	}
	wantErr("no current password", c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "a new long password"}), 400, "give the current one")
	wantErr("wrong current password", c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "a new long password", CurrentPassword: "wrong guess"}), 403, "the current password is wrong")
	if err := c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "a new long password", CurrentPassword: alicePassword}); err != nil {
		t.Fatal(err)
	}
	if !verifies("a new long password") || verifies(alicePassword) {
		t.Error("after the change: the new password does not verify, or the old one still does")
	}
	// Guessing the current password is limited like signing in.
	for range accounts.MaxFailures {
		wantErr("guess", c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "a third password", CurrentPassword: "guess"}), 403, "wrong")
	}
	wantErr("too many guesses", c.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "a third password", CurrentPassword: "a new long password"}), 429, "too many wrong passwords")

	anon := &apiclient.Client{BaseURL: f.srv.URL, HTTP: f.client()}
	wantErr("not logged in", anon.SetPassword(ctx, apiclient.SetPasswordRequest{Password: "a third password"}), 401, "log in")
}
