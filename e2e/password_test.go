package e2e

import (
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPassword_DeviceLogin drives passwords end to end against `hangar
// serve`: the operator sets one with `hangar users passwd` (stdin, while
// serve runs), the user signs in with it on the approval page of `dbos-cloud
// login`, changes it with `dbos-cloud user password`, and logs in again with
// the new one; `hangar users add --password-stdin` sets one at creation.
func TestPassword_DeviceLogin(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	h.AddUser(t, "pat")
	withStdin := func(t *testing.T, stdin, dir string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Stdin, cmd.Dir, cmd.Env = strings.NewReader(stdin), dir, h.Env()
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	hangar := filepath.Join(bin, "hangar")

	if out, err := withStdin(t, "too short\n", "", hangar, "users", "passwd", "pat", "--data-dir", h.DataDir); err == nil || !strings.Contains(out, "too short") {
		t.Errorf("users passwd with a short password: %v, want refused\n%s", err, out)
	}
	if out, err := withStdin(t, "pat's first password\n", "", hangar, "users", "passwd", "pat", "--data-dir", h.DataDir); err != nil || !strings.Contains(out, "Set the password of pat") {
		t.Fatalf("users passwd: %v\n%s", err, out)
	}

	dir := t.TempDir()
	out := deviceLogin(t, h, dir, url.Values{"username": {"pat"}, "password": {"pat's first password"}})
	if !strings.Contains(out, "Successfully logged in as pat!") {
		t.Fatalf("login output:\n%s", out)
	}

	// The user changes it: the new password, then the current one.
	ours := filepath.Join(bin, "dbos-cloud")
	if out, err := withStdin(t, "pat's second password\nnot the current one\n", dir, ours, "user", "password"); err == nil || !strings.Contains(out, "the current password is wrong") {
		t.Errorf("user password with a wrong current one: %v, want refused\n%s", err, out)
	}
	if out, err := withStdin(t, "pat's second password\npat's first password\n", dir, ours, "user", "password"); err != nil || !strings.Contains(out, "Password set for pat") {
		t.Fatalf("user password: %v\n%s", err, out)
	}
	if status := signInStatus(t, h, "pat", "pat's first password"); status != http.StatusUnauthorized {
		t.Errorf("sign in with the old password: got %d, want 401", status)
	}
	out = deviceLogin(t, h, t.TempDir(), url.Values{"username": {"pat"}, "password": {"pat's second password"}})
	if !strings.Contains(out, "Successfully logged in as pat!") {
		t.Errorf("login with the new password:\n%s", out)
	}

	if out, err := withStdin(t, "quinn's password\n", "", hangar, "users", "add", "quinn", "--password-stdin", "--data-dir", h.DataDir); err != nil {
		t.Fatalf("users add --password-stdin: %v\n%s", err, out)
	}
	if status := signInStatus(t, h, "quinn", "quinn's password"); status != http.StatusSeeOther {
		t.Errorf("sign in with the password of users add --password-stdin: got %d, want 303", status)
	}
}

// signInStatus posts the approval page's password sign-in form and returns
// the status: 303 signed in, 401 refused.
func signInStatus(t *testing.T, h *Hangar, name, password string) int {
	t.Helper()
	c := browser(t, h)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get("https://" + h.Domain + "/device")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfRE.FindStringSubmatch(string(b))
	if m == nil {
		t.Fatalf("the approval page has no CSRF field:\n%s", b)
	}
	resp, err = c.PostForm("https://"+h.Domain+"/device", url.Values{"csrf": {m[1]}, "action": {"signin"}, "username": {name}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
