package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

func TestUserPassword_Stdin(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		stdin  string
		want   *apiclient.SetPasswordRequest // nil: nothing sent
		status int                           // the fake's answer
		out    string                        // on stdout, or stderr when the command fails
	}{
		"First": {
			stdin: "a long new password\n", want: &apiclient.SetPasswordRequest{Password: "a long new password"},
			out: "Password set for u",
		},
		"Change": {
			stdin: "a long new password\r\nthe current one\r\n", want: &apiclient.SetPasswordRequest{Password: "a long new password", CurrentPassword: "the current one"},
			out: "Password set for u",
		},
		"NoNewline": {
			stdin: "a long new password", want: &apiclient.SetPasswordRequest{Password: "a long new password"},
			out: "Password set for u",
		},
		"Empty": {stdin: "", out: "no new password on stdin"},
		"Refused": {
			stdin: "a long new password\nwrong\n", want: &apiclient.SetPasswordRequest{Password: "a long new password", CurrentPassword: "wrong"},
			status: 403, out: "[req-1] Failed to set the password: the current password is wrong.",
		},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			api := newFakeAPI(t)
			var got *apiclient.SetPasswordRequest
			api.mux.HandleFunc("PUT "+apiclient.PasswordPath, func(w http.ResponseWriter, r *http.Request) {
				got = new(apiclient.SetPasswordRequest)
				if err := json.NewDecoder(r.Body).Decode(got); err != nil {
					t.Error(err)
				}
				if tc.status != 0 {
					apiError(w, tc.status, "the current password is wrong")
					return
				}
				w.WriteHeader(http.StatusNoContent)
			})
			dir := t.TempDir()
			writeTestCredentials(t, dir, unsignedJWT, "")
			var out, errOut bytes.Buffer
			vars := map[string]string{"DBOS_DOMAIN": api.domain(), "SSL_CERT_FILE": api.caFile}
			e := &env{
				stdin: strings.NewReader(tc.stdin), stdout: &out, stderr: &errOut, dir: dir,
				getenv: func(k string) string { return vars[k] },
				sleep:  func(ctx context.Context, _ time.Duration) error { return ctx.Err() },
			}
			code := e.run(t.Context(), []string{"user", "password"})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("request (-want +got):\n%s", diff)
			}
			wantCode, where := 0, out.String()
			if tc.status != 0 || tc.want == nil {
				wantCode, where = 1, errOut.String()
			}
			if code != wantCode || !strings.Contains(where, tc.out) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", code, wantCode, tc.out, out.String(), errOut.String())
			}
		})
	}
}
