package auth

import (
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestPassword_RoundTrip(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=19456,t=2,p=1$") {
		t.Errorf("hash %q, want the PHC string of argon2id with the default parameters", h)
	}
	if ok, err := VerifyPassword(h, "correct horse battery"); !ok || err != nil {
		t.Errorf("VerifyPassword(right) = %t, %v; want true", ok, err)
	}
	if ok, err := VerifyPassword(h, "correct horse battery "); ok || err != nil {
		t.Errorf("VerifyPassword(wrong) = %t, %v; want false, nil", ok, err)
	}
	if h2, _ := HashPassword("correct horse battery"); h2 == h {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

// TestPassword_ReferenceVector checks a hash made by the argon2 reference
// implementation's command (Debian's argon2 package):
//
//	echo -n "correct horse battery" | argon2 saltsaltsaltsalt -id -t 2 -k 1024 -p 1 -l 32 -e
//
// Its parameters differ from ours: they are read from the string.
func TestPassword_ReferenceVector(t *testing.T) {
	t.Parallel()
	const ref = "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$JxBBsCIczbj0w06ojA6U8tpSY1ZOv8uKRtXhMg2EIFc"
	p, salt, key, err := parsePasswordHash(ref)
	if err != nil {
		t.Fatal(err)
	}
	if want := (passwordParams{memory: 1024, time: 2, threads: 1}); p != want || string(salt) != "saltsaltsaltsalt" || len(key) != 32 {
		t.Errorf("parsed %+v, salt %q, %d-byte key; want %+v, saltsaltsaltsalt, 32", p, salt, len(key), want)
	}
	if ok, err := VerifyPassword(ref, "correct horse battery"); !ok || err != nil {
		t.Errorf("VerifyPassword(reference) = %t, %v; want true", ok, err)
	}
	// Our own hash with other parameters carries them too.
	h := hashPassword("another password", passwordParams{memory: 2048, time: 3, threads: 2})
	if p, _, _, err := parsePasswordHash(h); err != nil || p != (passwordParams{memory: 2048, time: 3, threads: 2}) {
		t.Errorf("parse %s = %+v, %v; want m=2048,t=3,p=2", h, p, err)
	}
	if ok, err := VerifyPassword(h, "another password"); !ok || err != nil {
		t.Errorf("VerifyPassword(m=2048,t=3,p=2) = %t, %v; want true", ok, err)
	}
}

func TestPassword_Tampered(t *testing.T) {
	t.Parallel()
	good := hashPassword("correct horse battery", passwordParams{memory: 1024, time: 1, threads: 1})
	f := strings.Split(good, "$")
	set := func(i int, v string) string {
		g := append([]string(nil), f...)
		g[i] = v
		return strings.Join(g, "$")
	}
	// A changed hash or salt verifies as a wrong password; changed
	// parameters give another key, so they do too.
	flip := func(s string) string {
		if s[0] == 'A' {
			return "B" + s[1:]
		}
		return "A" + s[1:]
	}
	for name, h := range map[string]string{
		"Hash":   set(5, flip(f[5])),
		"Salt":   set(4, flip(f[4])),
		"Params": set(3, "m=1024,t=2,p=1"),
	} {
		if ok, err := VerifyPassword(h, "correct horse battery"); ok || err != nil {
			t.Errorf("%s changed: VerifyPassword = %t, %v; want false, nil", name, ok, err)
		}
	}
	// Malformed strings are errors.
	for name, h := range map[string]string{
		"Argon2i":     set(1, "argon2i"),
		"Version":     set(2, "v=16"),
		"Spelling":    set(3, "m=1024,t=1,p=01"),
		"Order":       set(3, "t=1,m=1024,p=1"),
		"NoThreads":   set(3, "m=1024,t=1,p=0"),
		"HugeMemory":  set(3, "m=4194304,t=1,p=1"),
		"ShortHash":   set(5, "AAAA"),
		"Base64":      set(4, "not base64!"),
		"Padded":      set(5, f[5]+"="),
		"MissingPart": strings.Join(f[:5], "$"),
		"Bcrypt":      "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
	} {
		if ok, err := VerifyPassword(h, "correct horse battery"); ok || err == nil {
			t.Errorf("%s: VerifyPassword(%s) = %t, %v; want an error", name, h, ok, err)
		}
	}
}

func TestPassword_UnknownUser(t *testing.T) {
	t.Parallel()
	// An empty hash (no such user, or no password) never matches, not even
	// an empty password.
	for _, pw := range []string{"", "correct horse battery"} {
		if ok, err := VerifyPassword("", pw); ok || err != nil {
			t.Errorf("VerifyPassword(\"\", %q) = %t, %v; want false, nil", pw, ok, err)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		pw, msg string
	}{
		"Short":         {"123456789", "too short (9 characters): use at least 10"},
		"Empty":         {"", "too short (0 characters)"},
		"Long":          {strings.Repeat("x", 257), "too long (257 characters): use at most 256"},
		"Min":           {"0123456789", ""},
		"Max":           {strings.Repeat("x", 256), ""},
		"RunesNotBytes": {"ééééééééé", "too short (9 characters)"},
	} {
		err := ValidatePassword(tc.pw)
		if tc.msg == "" {
			if err != nil {
				t.Errorf("%s: got %v, want nil", name, err)
			}
			continue
		}
		if hangar.KindOf(err) != hangar.KindInvalid || !strings.Contains(hangar.MessageOf(err), tc.msg) {
			t.Errorf("%s: got %v, want KindInvalid with %q", name, err, tc.msg)
		}
		if _, herr := HashPassword(tc.pw); hangar.KindOf(herr) != hangar.KindInvalid {
			t.Errorf("%s: HashPassword = %v, want the same refusal", name, herr)
		}
	}
}
