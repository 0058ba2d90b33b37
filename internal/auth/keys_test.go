package auth

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// memStore is an in-memory KeyStore with the semantics of store.DB.
type memStore struct {
	mu sync.Mutex
	m  map[string]string
}

func (s *memStore) Setting(_ context.Context, key string, create func() (string, error)) (string, error) {
	s.mu.Lock()
	v, ok := s.m[key]
	s.mu.Unlock()
	if ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.m[key]; ok {
		return cur, nil
	}
	s.m[key] = v
	return v, nil
}

func (s *memStore) LookupSetting(_ context.Context, key string) (string, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[key]
	return v, ok, nil
}

func (s *memStore) SwapSetting(_ context.Context, key, old, new string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[key] != old {
		return false, nil
	}
	s.m[key] = new
	return true, nil
}

type clock struct{ now time.Time }

func (c *clock) Now() time.Time { return c.now }

func TestIssuer_Rotation(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := &memStore{m: map[string]string{}}
	clk := &clock{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	cfg := Config{Now: clk.Now, AccessTTL: time.Hour, ReloadInterval: time.Minute}
	server, err := Open(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	u := hangar.User{ID: "u1", Name: "alice"}
	before, _, err := server.Issue(u)
	if err != nil {
		t.Fatal(err)
	}
	if kid := kidOf(t, before); kid == "" || kid != server.Keys()[0].ID {
		t.Errorf("token kid = %q, want the current key %q", kid, server.Keys()[0].ID)
	}

	// Another process (hangar keys rotate) rotates; the server reloads.
	ks, err := RotateKeys(ctx, st, cfg)
	if err != nil || len(ks) != 2 {
		t.Fatalf("RotateKeys = %d keys, %v; want 2", len(ks), err)
	}
	if err := server.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	after, _, _ := server.Issue(u)
	if kidOf(t, after) != ks[0].ID || kidOf(t, after) == kidOf(t, before) {
		t.Errorf("after rotation the token kid is %q, want the new key %q", kidOf(t, after), ks[0].ID)
	}
	for name, tok := range map[string]string{"OldKey": before, "NewKey": after} {
		if sub, err := server.Verify(tok); err != nil || sub != "u1" {
			t.Errorf("%s: Verify = %q, %v; want u1", name, sub, err)
		}
	}

	// Once every token of the first key has expired, the next rotation drops it.
	clk.now = clk.now.Add(3 * time.Hour)
	if _, err := server.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(server.Keys()); n != 2 {
		t.Errorf("keys after the second rotation = %d, want 2 (the first dropped)", n)
	}
	clk.now = clk.now.Add(-3 * time.Hour) // the old token would still be unexpired
	if _, err := server.Verify(before); hangar.KindOf(err) != hangar.KindUnauthorized {
		t.Errorf("token of a dropped key: %v, want unauthorized", err)
	}

	// A fresh process loads the same set.
	other, err := Open(ctx, st, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if other.Keys()[0].ID != server.Keys()[0].ID {
		t.Errorf("a second process signs with %q, want %q", other.Keys()[0].ID, server.Keys()[0].ID)
	}
}

func TestOpen_AdoptsLegacyKey(t *testing.T) {
	t.Parallel()
	legacy := strings.Repeat("L", 64)
	st := &memStore{m: map[string]string{legacyKeySetting: legacy}}
	clk := &clock{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	old, err := New([]byte(legacy), Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, _ := old.Issue(hangar.User{ID: "u1"})
	if kid := kidOf(t, tok); kid != "" {
		t.Fatalf("legacy token has kid %q", kid)
	}
	iss, err := Open(t.Context(), st, Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := iss.Verify(tok); err != nil || sub != "u1" {
		t.Errorf("legacy token: Verify = %q, %v; want u1", sub, err)
	}
	if iss.Keys()[0].ID == "" {
		t.Errorf("the legacy key still signs")
	}
}

func TestIssuer_VerifyRefuses(t *testing.T) {
	t.Parallel()
	clk := &clock{time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	iss, err := NewWithKeys(NewKeySet(clk.now), Config{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	k := iss.Keys()[0]
	sign := func(method jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
		tok := jwt.NewWithClaims(method, c)
		if kid != "" {
			tok.Header["kid"] = kid
		}
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := jwt.MapClaims{"sub": "u1", "aud": Audience, "iss": "hangar", "exp": clk.now.Add(time.Hour).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		c := jwt.MapClaims{}
		for kk, vv := range good {
			c[kk] = vv
		}
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
		return c
	}
	if _, err := iss.Verify(sign(jwt.SigningMethodHS256, k.ID, k.Secret, good)); err != nil {
		t.Fatalf("a good token is refused: %v", err)
	}
	for name, tok := range map[string]string{
		"UnknownKid":  sign(jwt.SigningMethodHS256, "nope", k.Secret, good),
		"NoKid":       sign(jwt.SigningMethodHS256, "", k.Secret, good),
		"WrongKey":    sign(jwt.SigningMethodHS256, k.ID, []byte(strings.Repeat("w", 48)), good),
		"NoneAlg":     sign(jwt.SigningMethodNone, k.ID, jwt.UnsafeAllowNoneSignatureType, good),
		"HS512":       sign(jwt.SigningMethodHS512, k.ID, k.Secret, good),
		"Expired":     sign(jwt.SigningMethodHS256, k.ID, k.Secret, with("exp", clk.now.Add(-time.Second).Unix())),
		"NoExp":       sign(jwt.SigningMethodHS256, k.ID, k.Secret, with("exp", nil)),
		"WrongAud":    sign(jwt.SigningMethodHS256, k.ID, k.Secret, with("aud", "other")),
		"WrongIssuer": sign(jwt.SigningMethodHS256, k.ID, k.Secret, with("iss", "other")),
		"NoSubject":   sign(jwt.SigningMethodHS256, k.ID, k.Secret, with("sub", nil)),
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := iss.Verify(tok); hangar.KindOf(err) != hangar.KindUnauthorized {
				t.Errorf("Verify = %v, want unauthorized", err)
			}
		})
	}
}

func TestKeySet_Rotate(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	ks := NewKeySet(t0)
	ks = ks.Rotate(t0.Add(time.Hour), 2*time.Hour)
	ks = ks.Rotate(t0.Add(2*time.Hour), 2*time.Hour)
	if len(ks) != 3 || !ks[0].Retired.IsZero() || ks[1].Retired.IsZero() {
		t.Fatalf("after two rotations: %d keys, current retired %v", len(ks), ks[0].Retired)
	}
	ks = ks.Rotate(t0.Add(3*time.Hour+time.Minute), 2*time.Hour)
	if len(ks) != 3 {
		t.Errorf("keys = %d, want 3: the key retired over 2h ago is dropped", len(ks))
	}
	enc, err := ks.Encode()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeySet(enc)
	if err != nil || len(back) != 3 || back[0].ID != ks[0].ID || string(back[0].Secret) != string(ks[0].Secret) {
		t.Errorf("ParseKeySet(Encode) = %d keys, %v", len(back), err)
	}
}

func kidOf(t *testing.T, tok string) string {
	t.Helper()
	p, _, err := jwt.NewParser().ParseUnverified(tok, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := p.Header["kid"].(string)
	return kid
}
