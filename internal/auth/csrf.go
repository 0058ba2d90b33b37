package auth

import "crypto/subtle"

// The approval page's forms carry a CSRF token equal to one in a cookie of
// the page (double submit), and come from the page's own origin when the
// browser says where they come from.

// csrfMinLen is the shortest CSRF token accepted: NewCSRFToken's are 43.
const csrfMinLen = 32

// NewCSRFToken returns a new CSRF token.
func NewCSRFToken() string { return NewSecret(32) }

// ReuseCSRF reports whether a CSRF cookie's token may serve the next form.
func ReuseCSRF(cookie string) bool { return len(cookie) >= csrfMinLen }

// ValidCSRF checks a form post: its field equals the cookie's token, and
// origin, when the browser sent one, is https://host.
func ValidCSRF(cookie, field, origin, host string) bool {
	if origin != "" && origin != "https://"+host {
		return false
	}
	if len(cookie) < csrfMinLen {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(cookie), []byte(field)) == 1
}
