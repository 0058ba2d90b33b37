package auth

import (
	"crypto/rand"
	"strings"
)

// User codes, which a person confirms on the approval page.
const (
	// userCodeAlphabet has no vowels (no words) and no look-alike letters,
	// as RFC 8628 §6.1 suggests: 20^8 codes.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	// UserCodeLen is the length of a normalized user code.
	UserCodeLen = 8
)

// newUserCode draws a user code: UserCodeLen letters of userCodeAlphabet.
func newUserCode() string {
	b := make([]byte, UserCodeLen)
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

// FormatUserCode shows a code as ABCD-EFGH.
func FormatUserCode(c string) string {
	if len(c) != UserCodeLen {
		return c
	}
	return c[:4] + "-" + c[4:]
}

// NormalizeUserCode accepts what a person types: any case, dashes and
// spaces.
func NormalizeUserCode(s string) string {
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
