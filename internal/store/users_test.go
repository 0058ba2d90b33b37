package store

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func mustOK(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantKind(t *testing.T, what string, err error, kind hangar.Kind, msg string) {
	t.Helper()
	if hangar.KindOf(err) != kind || !strings.Contains(hangar.MessageOf(err), msg) {
		t.Errorf("%s: got %v (kind %s), want kind %s with %q", what, err, hangar.KindOf(err), kind, msg)
	}
}

func TestDB_CreateUserWithOrg(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "alice"}))
	if admin, err := db.OrgAdmin(ctx, "alice"); err != nil || admin != "u1" {
		t.Errorf("OrgAdmin = %q, %v; want u1", admin, err)
	}
	wantKind(t, "same user", db.CreateUserWithOrg(ctx, hangar.User{ID: "u2", Name: "alice", Org: "other"}), hangar.KindConflict, "user alice already exists")
	wantKind(t, "org taken", db.CreateUserWithOrg(ctx, hangar.User{ID: "u3", Name: "bob", Org: "alice"}), hangar.KindConflict, "organization alice already exists")
	// --org: bob joins alice's org as a member, not admin.
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u4", Name: "bob", Org: "alice"}))
	if admin, _ := db.OrgAdmin(ctx, "alice"); admin != "u1" {
		t.Errorf("admin after a member joined = %q, want u1", admin)
	}
	// --org naming a new org: its creator is admin.
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u5", Name: "carol", Org: "acme"}))
	if admin, _ := db.OrgAdmin(ctx, "acme"); admin != "u5" {
		t.Errorf("admin of a new org = %q, want u5", admin)
	}
	members, err := db.OrgMembers(ctx, "alice")
	if diff := cmp.Diff([]string{"alice", "bob"}, members); err != nil || diff != "" {
		t.Errorf("OrgMembers (-want +got): %v\n%s", err, diff)
	}
}

func TestDB_Signup(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "alice"}))
	mustOK(t, db.CreateSignup(ctx, "s1"))
	mustOK(t, db.AddRefreshToken(ctx, "t1", "s1", "signup-token"))

	u, err := db.UseRefreshToken(ctx, "signup-token", now, time.Hour, time.Hour)
	if err != nil || u.ID != "s1" || u.Name != "" {
		t.Fatalf("UseRefreshToken = %+v, %v; want the unregistered account s1", u, err)
	}
	_, err = db.UserByID(ctx, "s1")
	wantKind(t, "unregistered UserByID", err, hangar.KindNotFound, "user not found in DBOS Cloud")

	_, err = db.RegisterUser(ctx, "s1", "alice", nil, now)
	wantKind(t, "taken username", err, hangar.KindConflict, "exists already")
	_, err = db.RegisterUser(ctx, "nobody", "dave", nil, now)
	wantKind(t, "unknown account", err, hangar.KindUnauthorized, "no longer exists")

	u, err = db.RegisterUser(ctx, "s1", "dave", nil, now)
	if err != nil || u.Name != "dave" || u.Org != "dave" {
		t.Fatalf("RegisterUser = %+v, %v; want dave in org dave", u, err)
	}
	if admin, _ := db.OrgAdmin(ctx, "dave"); admin != "s1" {
		t.Errorf("admin of the registered user's org = %q, want s1", admin)
	}
	_, err = db.RegisterUser(ctx, "s1", "dave2", nil, now)
	wantKind(t, "registered twice", err, hangar.KindConflict, "registered already, as dave")
	if u, err := db.UseRefreshToken(ctx, "signup-token", now, time.Hour, time.Hour); err != nil || u.Name != "dave" {
		t.Errorf("refresh after registration = %+v, %v; want dave", u, err)
	}
}

func TestDB_SignupWithInvite(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "acme"}))
	mustOK(t, db.CreateInvite(ctx, "acme", []byte("h1"), "u1", now, now.Add(time.Hour)))
	mustOK(t, db.CreateSignup(ctx, "s1"))
	_, err := db.RegisterUser(ctx, "s1", "erin", []byte("wrong"), now)
	wantKind(t, "bad invite", err, hangar.KindForbidden, "invalid invite secret")
	u, err := db.RegisterUser(ctx, "s1", "erin", []byte("h1"), now)
	if err != nil || u.Org != "acme" {
		t.Fatalf("RegisterUser with invite = %+v, %v; want a member of acme", u, err)
	}
	if admin, _ := db.OrgAdmin(ctx, "acme"); admin != "u1" {
		t.Errorf("admin = %q, want u1", admin)
	}
	if _, err := db.OrgAdmin(ctx, "erin"); hangar.KindOf(err) != hangar.KindNotFound {
		t.Errorf("an org erin was created: %v", err)
	}
}

func TestDB_DisableUser(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "alice"}))
	mustOK(t, db.AddRefreshToken(ctx, "t1", "u1", "tok"))
	mustOK(t, db.SetUserDisabled(ctx, "alice", true, now))
	_, err := db.UserByID(ctx, "u1")
	wantKind(t, "disabled UserByID", err, hangar.KindUnauthorized, "alice is disabled")
	_, err = db.UseRefreshToken(ctx, "tok", now, time.Hour, time.Hour)
	wantKind(t, "disabled refresh", err, hangar.KindUnauthorized, "refresh token")
	wantKind(t, "unknown user", db.SetUserDisabled(ctx, "nobody", true, now), hangar.KindNotFound, "user nobody not found")

	mustOK(t, db.SetUserDisabled(ctx, "alice", false, now))
	if _, err := db.UserByID(ctx, "u1"); err != nil {
		t.Errorf("enabled UserByID: %v", err)
	}
	if _, err := db.UseRefreshToken(ctx, "tok", now, time.Hour, time.Hour); err == nil {
		t.Errorf("a refresh token revoked by disable works again after enable")
	}
}

func TestDB_PasswordHash(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "alice", Email: "a@example.com"}))
	mustOK(t, db.CreateSignup(ctx, "s1"))
	login := func(want hangar.Login) {
		t.Helper()
		l, err := db.LoginByName(ctx, "alice")
		if err != nil {
			t.Fatal(err)
		}
		l.CreatedAt = time.Time{}
		if diff := cmp.Diff(want, l); diff != "" {
			t.Errorf("LoginByName (-want +got):\n%s", diff)
		}
	}
	alice := hangar.User{ID: "u1", Name: "alice", Org: "alice", Email: "a@example.com"}
	login(hangar.Login{User: alice}) // no password yet

	mustOK(t, db.SetPasswordHash(ctx, "alice", "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"))
	login(hangar.Login{User: alice, PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"})

	// A disabled user still comes back, marked: the caller decides.
	mustOK(t, db.SetUserDisabled(ctx, "alice", true, time.Now()))
	login(hangar.Login{User: alice, PasswordHash: "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA", Disabled: true})
	mustOK(t, db.SetUserDisabled(ctx, "alice", false, time.Now()))

	mustOK(t, db.SetPasswordHash(ctx, "alice", "")) // removes it
	login(hangar.Login{User: alice})

	_, err := db.LoginByName(ctx, "nobody")
	wantKind(t, "unknown LoginByName", err, hangar.KindNotFound, "user nobody not found")
	wantKind(t, "unknown SetPasswordHash", db.SetPasswordHash(ctx, "nobody", "x"), hangar.KindNotFound, "user nobody not found")
	// A sign-up account has no name to sign in with, so no password.
	wantKind(t, "sign-up SetPasswordHash", db.SetPasswordHash(ctx, "s1", "x"), hangar.KindNotFound, "user s1 not found")
}

func TestDB_DeleteUser(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	a := seed(t, db) // alice (u1), admin of acme, which has app greeter and instance db1
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u2", Name: "bob", Org: "acme"}))
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u3", Name: "carol", Org: "carol"}))
	mustOK(t, db.AddRefreshToken(ctx, "t3", "u3", "carol-token"))

	t.Run("AdminPassesOn", func(t *testing.T) {
		mustOK(t, db.DeleteUser(ctx, "alice"))
		if admin, _ := db.OrgAdmin(ctx, "acme"); admin != "u2" {
			t.Errorf("admin after deleting alice = %q, want u2 (bob)", admin)
		}
	})
	t.Run("LastMemberWithApps", func(t *testing.T) {
		wantKind(t, "delete bob", db.DeleteUser(ctx, "bob"), hangar.KindConflict, "applications (greeter) and databases (db1)")
		mustOK(t, db.DeleteApp(ctx, a.ID))
		wantKind(t, "delete bob", db.DeleteUser(ctx, "bob"), hangar.KindConflict, "databases (db1)")
	})
	t.Run("LastMemberEmptyOrg", func(t *testing.T) {
		mustOK(t, db.DeleteUser(ctx, "carol"))
		if _, err := db.OrgAdmin(ctx, "carol"); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("carol's empty org is left: %v", err)
		}
		if _, err := db.UseRefreshToken(ctx, "carol-token", time.Now(), time.Hour, time.Hour); err == nil {
			t.Errorf("a deleted user's refresh token works")
		}
		// The name is free again, for a new user and its org.
		mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u4", Name: "carol", Org: "carol"}))
	})
	wantKind(t, "unknown", db.DeleteUser(ctx, "nobody"), hangar.KindNotFound, "user nobody not found")
}

func TestDB_Accounts(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "acme"}))
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u2", Name: "bob", Org: "acme"}))
	mustOK(t, db.CreateSignup(ctx, "s1"))
	mustOK(t, db.SetUserDisabled(ctx, "bob", true, now))
	got, err := db.Accounts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Name, Org                string
		Admin, Disabled, Pending bool
	}
	var rows []row
	for _, a := range got {
		rows = append(rows, row{a.Name, a.Org, a.Admin, a.Disabled, a.Pending})
	}
	want := []row{{"alice", "acme", true, false, false}, {"bob", "acme", false, true, false}, {"", "", false, false, true}}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Errorf("Accounts (-want +got):\n%s", diff)
	}
}

func TestDB_SwapSetting(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	if _, ok, err := db.LookupSetting(ctx, "k"); ok || err != nil {
		t.Errorf("LookupSetting of a missing key = %v, %v", ok, err)
	}
	if _, err := db.Setting(ctx, "k", func() (string, error) { return "one", nil }); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.SwapSetting(ctx, "k", "stale", "two"); ok || err != nil {
		t.Errorf("SwapSetting from a stale value = %v, %v; want false", ok, err)
	}
	if ok, err := db.SwapSetting(ctx, "k", "one", "two"); !ok || err != nil {
		t.Errorf("SwapSetting = %v, %v; want true", ok, err)
	}
	if v, ok, err := db.LookupSetting(ctx, "k"); v != "two" || !ok || err != nil {
		t.Errorf("LookupSetting = %q, %v, %v; want two", v, ok, err)
	}
}
