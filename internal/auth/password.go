package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Password length limits, in characters. The upper bound only keeps
// requests small: argon2 hashes any length in the same time.
const (
	MinPasswordLen = 10
	MaxPasswordLen = 256
)

// passwordParams are argon2id's cost parameters, kept in each hash so that
// raising them later leaves older hashes verifiable.
type passwordParams struct {
	memory  uint32 // KiB
	time    uint32 // passes
	threads uint8
}

// defaultParams are OWASP's recommendation for argon2id (19 MiB, 2
// passes, 1 lane): about 30 ms per hash here, little memory per sign-in.
func defaultParams() passwordParams { return passwordParams{memory: 19 * 1024, time: 2, threads: 1} }

const (
	saltLen = 16
	keyLen  = 32
	// maxMemory bounds the memory a stored hash may ask for (1 GiB), so a
	// corrupt or planted hash cannot exhaust the server.
	maxMemory = 1 << 20
	maxTime   = 64
)

// ValidatePassword checks a new password's length. Errors: KindInvalid
// with a message for the user.
func ValidatePassword(pw string) error {
	switch n := utf8.RuneCountInString(pw); {
	case n < MinPasswordLen:
		return hangar.Errorf(hangar.KindInvalid, "the password is too short (%d characters): use at least %d", n, MinPasswordLen)
	case n > MaxPasswordLen:
		return hangar.Errorf(hangar.KindInvalid, "the password is too long (%d characters): use at most %d", n, MaxPasswordLen)
	}
	return nil
}

// HashPassword validates pw (see ValidatePassword) and returns its argon2id
// hash in the PHC string format,
// $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, with a random
// salt.
func HashPassword(pw string) (string, error) {
	if err := ValidatePassword(pw); err != nil {
		return "", err
	}
	return hashPassword(pw, defaultParams()), nil
}

func hashPassword(pw string, p passwordParams) string {
	salt := make([]byte, saltLen)
	rand.Read(salt) //nolint:errcheck // crypto/rand never fails
	key := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads, b64.EncodeToString(salt), b64.EncodeToString(key))
}

// VerifyPassword reports whether pw matches the hash encoded (from
// HashPassword), comparing in constant time. An empty encoded stands for
// an unknown user or one without a password: pw is hashed all the same,
// with the current parameters, and does not match, so that the time taken
// does not tell which names exist. A malformed hash is an error.
func VerifyPassword(encoded, pw string) (bool, error) {
	if encoded == "" {
		p := defaultParams()
		argon2.IDKey([]byte(pw), make([]byte, saltLen), p.time, p.memory, p.threads, keyLen)
		return false, nil
	}
	p, salt, key, err := parsePasswordHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(pw), salt, p.time, p.memory, p.threads, uint32(len(key)))
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// parsePasswordHash reads a PHC string of argon2id, strictly: any other
// spelling of the same parameters is refused.
func parsePasswordHash(encoded string) (p passwordParams, salt, key []byte, err error) {
	bad := func(why string) error { return fmt.Errorf("malformed password hash: %s", why) }
	f := strings.Split(encoded, "$")
	if len(f) != 6 || f[0] != "" || f[1] != "argon2id" {
		return p, nil, nil, bad("not $argon2id$v=…$m=…,t=…,p=…$salt$hash")
	}
	if f[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return p, nil, nil, bad("unsupported version " + f[2])
	}
	if _, err := fmt.Sscanf(f[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		f[3] != fmt.Sprintf("m=%d,t=%d,p=%d", p.memory, p.time, p.threads) {
		return p, nil, nil, bad("parameters " + f[3])
	}
	if p.memory < 8*uint32(p.threads) || p.memory > maxMemory || p.time < 1 || p.time > maxTime || p.threads < 1 {
		return p, nil, nil, bad("parameters out of range " + f[3])
	}
	b64 := base64.RawStdEncoding.Strict()
	if salt, err = b64.DecodeString(f[4]); err != nil || len(salt) < 8 {
		return p, nil, nil, errors.Join(bad("salt"), err)
	}
	if key, err = b64.DecodeString(f[5]); err != nil || len(key) < 16 || len(key) > 64 {
		return p, nil, nil, errors.Join(bad("hash"), err)
	}
	return p, salt, key, nil
}
