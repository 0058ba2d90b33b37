package accounts_test

import (
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/auth"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/hangar-oss/hangar/internal/store"
)

var _ accounts.OperatorStore = (*store.DB)(nil)

// TestOperator runs the operator's user commands on a real store and
// checks what each leaves behind: the users, their orgs, passwords and
// refresh tokens.
func TestOperator(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	o := accounts.NewOperator(accounts.OperatorConfig{Now: func() time.Time { return now }}, st)
	loginWith := func(t *testing.T, tok, want string) {
		t.Helper()
		u, err := st.UseRefreshToken(ctx, tok, now, auth.RefreshMaxAge, auth.RefreshMaxIdle)
		if err != nil || u.Name != want {
			t.Errorf("refresh token logs in %+v, %v; want %q", u, err, want)
		}
	}

	t.Run("AddUser", func(t *testing.T) {
		u, tok, err := o.AddUser(ctx, accounts.NewUser{Name: "alice", Email: "a@example.com", Password: "alice's long password"})
		if err != nil || u.Org != "alice" || u.Email != "a@example.com" {
			t.Fatalf("AddUser(alice) = %+v, %v; want alice in org alice", u, err)
		}
		loginWith(t, tok, "alice")
		l, err := st.LoginByName(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := auth.VerifyPassword(l.PasswordHash, "alice's long password"); !ok || err != nil {
			t.Errorf("alice's password does not verify: %v", err)
		}
		bob, _, err := o.AddUser(ctx, accounts.NewUser{Name: "bob", Org: "alice"})
		if err != nil || bob.Org != "alice" {
			t.Errorf("AddUser(bob, org alice) = %+v, %v; want bob in org alice", bob, err)
		}
		if _, _, err := o.AddUser(ctx, accounts.NewUser{Name: "alice"}); hangar.KindOf(err) != hangar.KindConflict {
			t.Errorf("AddUser(alice) again = %v, want %s", err, hangar.KindConflict)
		}
		for _, n := range []accounts.NewUser{{Name: "x"}, {Name: "dashboard"}, {Name: "carol", Org: "B@D"}, {Name: "carol", Password: "short"}} {
			if _, _, err := o.AddUser(ctx, n); hangar.KindOf(err) != hangar.KindInvalid {
				t.Errorf("AddUser(%+v) = %v, want %s", n, err, hangar.KindInvalid)
			}
		}
	})

	t.Run("Signup", func(t *testing.T) {
		id, tok, err := o.AddSignup(ctx)
		if err != nil || id == "" {
			t.Fatalf("AddSignup() = %q, %v", id, err)
		}
		if _, err := st.UseRefreshToken(ctx, tok, now, auth.RefreshMaxAge, auth.RefreshMaxIdle); err != nil {
			t.Errorf("the sign-up account's refresh token: %v", err)
		}
	})

	t.Run("TokenPasswordDisable", func(t *testing.T) {
		u, tok, err := o.NewToken(ctx, "bob")
		if err != nil || u.Name != "bob" {
			t.Fatalf("NewToken(bob) = %+v, %v", u, err)
		}
		loginWith(t, tok, "bob")
		if _, _, err := o.NewToken(ctx, "nobody"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("NewToken(nobody) = %v, want %s", err, hangar.KindNotFound)
		}
		if err := o.SetPassword(ctx, "alice", ""); err != nil {
			t.Fatal(err)
		}
		if l, _ := st.LoginByName(ctx, "alice"); l.PasswordHash != "" {
			t.Error("alice keeps a password after it was cleared")
		}
		if err := o.SetDisabled(ctx, "bob", true); err != nil {
			t.Fatal(err)
		}
		if _, err := st.UseRefreshToken(ctx, tok, now, auth.RefreshMaxAge, auth.RefreshMaxIdle); hangar.KindOf(err) != hangar.KindUnauthorized {
			t.Errorf("a disabled user's refresh token = %v, want %s", err, hangar.KindUnauthorized)
		}
	})

	t.Run("ListAndDelete", func(t *testing.T) {
		accs, err := o.Accounts(ctx)
		if err != nil || len(accs) != 3 || accs[0].Name != "alice" || !accs[0].Admin || !accs[1].Disabled || !accs[2].Pending {
			t.Fatalf("Accounts() = %+v, %v; want alice (admin), bob (disabled), a sign-up", accs, err)
		}
		if err := o.DeleteUser(ctx, "bob"); err != nil {
			t.Fatal(err)
		}
		if err := o.DeleteUser(ctx, "bob"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("DeleteUser(bob) again = %v, want %s", err, hangar.KindNotFound)
		}
	})
}
