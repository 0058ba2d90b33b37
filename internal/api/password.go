package api

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
)

// Passwords is the password sign-in policy; *accounts.SignIn satisfies
// it. Its refusals that may be tried again later are auth.RetryErrors.
type Passwords interface {
	// CheckPassword signs in the user name with password from the client
	// address client. Errors: KindUnauthorized, KindTooMany.
	CheckPassword(ctx context.Context, name, password, client string) (hangar.User, error)
	// SetPassword sets u's own password, which takes the current one if
	// it has one. Errors: KindInvalid, KindForbidden, KindTooMany.
	SetPassword(ctx context.Context, u hangar.User, current, password, client string) error
}

// setRetryAfter sets the Retry-After header (RFC 9110 §10.2.3) of an
// answer to err when err says when to try again.
func setRetryAfter(w http.ResponseWriter, err error) {
	if after, ok := auth.RetryAfter(err); ok {
		w.Header().Set("Retry-After", strconv.Itoa(int((after+time.Second-1)/time.Second)))
	}
}

// setPassword is PUT /hangar/v1/user/password: users set their own
// password; replacing one takes the current one.
func (s *loginsAPI) setPassword(w http.ResponseWriter, r *http.Request) error {
	var req apiclient.SetPasswordRequest
	if err := decode(r, &req); err != nil {
		return err
	}
	err := s.passwords.SetPassword(r.Context(), principal(r).User, req.CurrentPassword, req.Password, clientAddr(r))
	setRetryAfter(w, err)
	if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// clientAddr is the network a request comes from, which limits count per
// client: its IPv4 address, or the /64 of its IPv6 address, since one
// host commonly holds a whole /64. Hangar terminates TLS itself, so the
// peer is the client.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Unmap().Is4() {
		return host
	}
	p, _ := ip.Prefix(64)
	return p.String()
}

// normalizeUserName accepts a name as typed: user names are lower case.
func normalizeUserName(s string) string { return strings.ToLower(strings.TrimSpace(s)) }
