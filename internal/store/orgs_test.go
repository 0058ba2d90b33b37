package store

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestDB_JoinOrg(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	seed(t, db) // alice (u1) admin of acme, with app greeter and instance db1
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u2", Name: "bob", Org: "bob"}))
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u3", Name: "carol", Org: "carol"}))
	mustOK(t, db.CreateInvite(ctx, "carol", []byte("to-carol"), "u3", now, now.Add(time.Hour)))
	mustOK(t, db.CreateInvite(ctx, "acme", []byte("expired"), "u1", now.Add(-2*time.Hour), now.Add(-time.Hour)))
	mustOK(t, db.CreateInvite(ctx, "acme", []byte("live"), "u1", now, now.Add(24*time.Hour)))

	for name, tc := range map[string]struct {
		hash []byte
		org  string
	}{
		"Unknown":   {[]byte("nope"), "acme"},
		"Expired":   {[]byte("expired"), "acme"},
		"OtherOrgs": {[]byte("to-carol"), "acme"},
		"WrongOrg":  {[]byte("live"), "carol"},
	} {
		t.Run(name, func(t *testing.T) {
			wantKind(t, "JoinOrg", db.JoinOrg(ctx, "u2", tc.org, tc.hash, now), hangar.KindForbidden, "invalid invite secret")
		})
	}
	mustOK(t, db.JoinOrg(ctx, "u2", "acme", []byte("live"), now))
	if u, _ := db.UserByID(ctx, "u2"); u.Org != "acme" {
		t.Errorf("bob's org = %q, want acme", u.Org)
	}
	if _, err := db.OrgAdmin(ctx, "bob"); hangar.KindOf(err) != hangar.KindNotFound {
		t.Errorf("bob's empty org was kept: %v", err)
	}
	if admin, _ := db.OrgAdmin(ctx, "acme"); admin != "u1" {
		t.Errorf("acme admin = %q, want u1", admin)
	}
	wantKind(t, "reuse", db.JoinOrg(ctx, "u3", "acme", []byte("live"), now), hangar.KindForbidden, "invalid invite secret")

	mustOK(t, db.CreateInvite(ctx, "acme", []byte("again"), "u1", now, now.Add(time.Hour)))
	wantKind(t, "member already", db.JoinOrg(ctx, "u2", "acme", []byte("again"), now), hangar.KindConflict, "member of organization acme already")
	// The refused join did not use the invite up.
	mustOK(t, db.JoinOrg(ctx, "u3", "acme", []byte("again"), now))
	got, _ := db.OrgMembers(ctx, "acme")
	if diff := cmp.Diff([]string{"alice", "bob", "carol"}, got); diff != "" {
		t.Errorf("acme members (-want +got):\n%s", diff)
	}
}

func TestDB_JoinOrg_LeavesNothingBehind(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	seed(t, db) // alice (u1), the only member of acme, which has greeter and db1
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u2", Name: "bob", Org: "bob"}))
	mustOK(t, db.CreateInvite(ctx, "bob", []byte("to-bob"), "u2", now, now.Add(time.Hour)))
	wantKind(t, "last member with apps", db.JoinOrg(ctx, "u1", "bob", []byte("to-bob"), now),
		hangar.KindConflict, "delete your applications (greeter) and databases (db1) before joining organization bob")

	// With another member in acme, alice may go: dave keeps acme's apps and
	// becomes its admin.
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u3", Name: "dave", Org: "acme"}))
	mustOK(t, db.JoinOrg(ctx, "u1", "bob", []byte("to-bob"), now))
	if admin, _ := db.OrgAdmin(ctx, "acme"); admin != "u3" {
		t.Errorf("acme admin after alice left = %q, want u3 (dave)", admin)
	}
}

func TestDB_RemoveMember(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u1", Name: "alice", Org: "acme"}))
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u2", Name: "bob", Org: "acme"}))
	mustOK(t, db.CreateUser(ctx, hangar.User{ID: "u3", Name: "carol", Org: "acme"}))
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u4", Name: "zed", Org: "carol"})) // takes the name carol

	_, err := db.RemoveMember(ctx, "acme", "zed", now)
	wantKind(t, "non-member", err, hangar.KindNotFound, "user zed is not a member of organization acme")
	_, err = db.RemoveMember(ctx, "acme", "alice", now)
	wantKind(t, "admin", err, hangar.KindInvalid, "admin of organization acme")

	for _, tc := range []struct{ name, wantOrg string }{{"bob", "bob"}, {"carol", "carol_2"}} {
		org, err := db.RemoveMember(ctx, "acme", tc.name, now)
		if err != nil || org != tc.wantOrg {
			t.Errorf("RemoveMember(%s) = %q, %v; want %q", tc.name, org, err, tc.wantOrg)
		}
		u, _ := db.UserByName(ctx, tc.name)
		if admin, _ := db.OrgAdmin(ctx, tc.wantOrg); u.Org != tc.wantOrg || admin != u.ID {
			t.Errorf("%s is in %q (admin %q), want the admin of %q", tc.name, u.Org, admin, tc.wantOrg)
		}
	}
	got, _ := db.OrgMembers(ctx, "acme")
	if diff := cmp.Diff([]string{"alice"}, got); diff != "" {
		t.Errorf("acme members (-want +got):\n%s", diff)
	}
}

func TestDB_RenameOrg(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	now := time.Now()
	a := seed(t, db)
	mustOK(t, db.CreateInvite(ctx, "acme", []byte("inv"), "u1", now, now.Add(time.Hour)))
	mustOK(t, db.PutSecret(ctx, a.ID, "K", []byte("sealed"), now))
	mustOK(t, db.CreateUserWithOrg(ctx, hangar.User{ID: "u2", Name: "bob", Org: "bob"}))

	wantKind(t, "taken", db.RenameOrg(ctx, "acme", "bob"), hangar.KindConflict, "organization bob already exists")
	wantKind(t, "missing", db.RenameOrg(ctx, "nope", "nope2"), hangar.KindNotFound, "organization nope not found")
	mustOK(t, db.RenameOrg(ctx, "acme", "newco"))

	if u, _ := db.UserByID(ctx, "u1"); u.Org != "newco" {
		t.Errorf("alice's org = %q, want newco", u.Org)
	}
	if got, err := db.App(ctx, "newco", "greeter"); err != nil || got.Org != "newco" {
		t.Errorf("app after rename = %+v, %v", got, err)
	}
	if _, err := db.DBInstance(ctx, "newco", "db1"); err != nil {
		t.Errorf("instance after rename: %v", err)
	}
	if admin, _ := db.OrgAdmin(ctx, "newco"); admin != "u1" {
		t.Errorf("admin after rename = %q, want u1", admin)
	}
	if names, _ := db.SecretNames(ctx, a.ID); len(names) != 1 {
		t.Errorf("secrets after rename = %v", names)
	}
	// The invite follows the org.
	mustOK(t, db.JoinOrg(ctx, "u2", "newco", []byte("inv"), now))
}
