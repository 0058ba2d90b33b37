package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestIssuer_Verify(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	key := []byte(strings.Repeat("k", 32))
	iss, err := New(key, Config{Now: clock, AccessTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	tok, exp, err := iss.Issue(hangar.User{ID: "u1", Name: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if want := now.Add(time.Hour); !exp.Equal(want) {
		t.Errorf("exp = %v, want %v", exp, want)
	}
	if sub, err := iss.Verify(tok); err != nil || sub != "u1" {
		t.Errorf("Verify = %q, %v; want u1, nil", sub, err)
	}

	other, _ := New([]byte(strings.Repeat("x", 32)), Config{Now: clock})
	forged, _, _ := other.Issue(hangar.User{ID: "u1"})
	later, _ := New(key, Config{Now: func() time.Time { return now.Add(2 * time.Hour) }})
	for name, tc := range map[string]struct {
		iss *Issuer
		tok string
	}{
		"Forged":  {iss, forged},
		"Expired": {later, tok},
		"Garbage": {iss, "not.a.jwt"},
		"Empty":   {iss, ""},
		"NoneAlg": {iss, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1MSJ9."},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := tc.iss.Verify(tc.tok); hangar.KindOf(err) != hangar.KindUnauthorized {
				t.Errorf("Verify kind = %v (%v), want unauthorized", hangar.KindOf(err), err)
			}
		})
	}
}

func TestPrincipal_CheckOrg(t *testing.T) {
	t.Parallel()
	p := Principal{User: hangar.User{Org: "acme"}}
	if err := p.CheckOrg("acme"); err != nil {
		t.Errorf("own org: %v", err)
	}
	if err := p.CheckOrg("other"); hangar.KindOf(err) != hangar.KindForbidden {
		t.Errorf("other org: kind %v, want forbidden", hangar.KindOf(err))
	}
}
