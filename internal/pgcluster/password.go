package pgcluster

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// scramIterations is PostgreSQL's default scram_iterations.
const scramIterations = 4096

// PasswordLiteral returns the SQL literal to set password with, as in
// ALTER ROLE r PASSWORD <literal>. For printable ASCII it is a SCRAM-SHA-256
// verifier computed here, so that the clear password never reaches the
// server, where a failing statement would be logged with it. Other
// passwords, which the server normalizes with SASLprep first, are sent as
// an escaped string literal. The password must not contain NUL.
func PasswordLiteral(password string) string {
	for _, r := range password {
		if r < 0x20 || r > 0x7e {
			q := "'" + strings.ReplaceAll(password, "'", "''") + "'"
			if strings.Contains(password, `\`) {
				q = "E" + strings.ReplaceAll(q, `\`, `\\`)
			}
			return q
		}
	}
	return "'" + scramVerifier(password, nil) + "'"
}

// scramVerifier returns PostgreSQL's SCRAM-SHA-256 verifier of password
// with salt (16 random bytes when nil), as RFC 5802 and RFC 7677 define it.
func scramVerifier(password string, salt []byte) string {
	if salt == nil {
		salt = make([]byte, 16)
		rand.Read(salt)
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, scramIterations, sha256.Size)
	if err != nil {
		panic(err) // only for key lengths sha256 cannot produce
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	serverKey := mac(salted, "Server Key")
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", scramIterations, b64(salt), b64(storedKey[:]), b64(serverKey))
}
