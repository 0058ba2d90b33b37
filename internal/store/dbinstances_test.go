package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/hangar-oss/hangar/internal/secretbox"
)

func TestDB_DeleteDBInstance(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	a := seed(t, db) // app greeter on instance i1
	second := a
	second.ID, second.Name, second.AppDBName, second.DBRole = "a2", "bookings", "bookings", "bookings_role"
	if err := db.CreateApp(ctx, second, "i1", hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}

	err := db.DeleteDBInstance(ctx, "i1")
	if hangar.KindOf(err) != hangar.KindConflict || !strings.Contains(err.Error(), "used by applications bookings, greeter") {
		t.Errorf("DeleteDBInstance() with apps = %v, want a conflict naming both apps", err)
	}
	for _, id := range []string{"a1", "a2"} {
		if err := db.DeleteApp(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	failed := errors.New("server refused")
	if err := db.SetDBInstancePassword(ctx, "i1", "lost-pw", func(hangar.DBInstance) error { return failed }); !errors.Is(err, failed) {
		t.Errorf("SetDBInstancePassword() with a failing change = %v, want %v", err, failed)
	}
	var was string
	if err := db.SetDBInstancePassword(ctx, "i1", "new-pw", func(d hangar.DBInstance) error { was = d.AdminPassword; return nil }); err != nil || was != "pw" {
		t.Fatalf("SetDBInstancePassword() = %v, applied with password %q; want nil, pw", err, was)
	}
	if d, err := db.DBInstanceByID(ctx, "i1"); err != nil || d.AdminPassword != "new-pw" {
		t.Errorf("after SetDBInstancePassword: %q, %v; want new-pw", d.AdminPassword, err)
	}
	if err := db.DeleteDBInstance(ctx, "i1"); err != nil {
		t.Fatalf("DeleteDBInstance() without apps = %v", err)
	}
	if _, err := db.DBInstance(ctx, "acme", "db1"); hangar.KindOf(err) != hangar.KindNotFound {
		t.Errorf("deleted instance: %v, want not found", err)
	}
	if err := db.DeleteDBInstance(ctx, "i1"); hangar.KindOf(err) != hangar.KindNotFound {
		t.Errorf("DeleteDBInstance() again = %v, want not found", err)
	}
}

func TestDB_SealedPasswords(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	clear, err := Open(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	old := hangar.DBInstance{ID: "old", Org: "acme", Name: "olddb", Status: hangar.DBAvailable, AdminUser: "admin", AdminPassword: "clear-pw"}
	if err := clear.CreateUser(ctx, hangar.User{ID: "u1", Name: "alice", Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	if err := clear.CreateDBInstance(ctx, old, hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	app := func(id, password string) hangar.App {
		return hangar.App{ID: id, Org: "acme", Name: id, DBInstance: "olddb", AppDBName: id, Language: hangar.LanguageNode,
			Status: hangar.StatusRegistered, MemoryMiB: 512, MinVMs: 1, MaxVMs: 1, DBRole: id + "_role", DBPassword: password}
	}
	if err := clear.CreateApp(ctx, app("oldapp", "clear-app-pw"), "old", hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	clear.Close()

	box, err := secretbox.New(make([]byte, secretbox.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, url, WithSealer(box))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	linked := hangar.DBInstance{ID: "linked", Org: "acme", Name: "linkeddb", Status: hangar.DBAvailable, AdminUser: "admin", AdminPassword: "linked-pw", IsLinked: true, Host: "db.example.com", Port: 5432}
	if err := db.CreateDBInstance(ctx, linked, hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	raw := func(id string) string {
		var s string
		if err := db.pool.QueryRow(ctx, "SELECT admin_password FROM db_instances WHERE id=$1", id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for id, pw := range map[string]string{"old": "clear-pw", "linked": "linked-pw"} {
		if r := raw(id); !strings.HasPrefix(r, sealedPrefix) || strings.Contains(r, pw) {
			t.Errorf("stored password of %s = %q, want sealed", id, r)
		}
		if d, err := db.DBInstanceByID(ctx, id); err != nil || d.AdminPassword != pw {
			t.Errorf("DBInstanceByID(%s) password = %q, %v; want %q", id, d.AdminPassword, err, pw)
		}
	}
	// Apps' role passwords: one recorded in clear before, one new.
	if err := db.CreateApp(ctx, app("newapp", "new-app-pw"), "old", hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	rawApp := func(id string) string {
		var s string
		if err := db.pool.QueryRow(ctx, "SELECT db_password FROM apps WHERE id=$1", id).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	for id, pw := range map[string]string{"oldapp": "clear-app-pw", "newapp": "new-app-pw"} {
		if r := rawApp(id); !strings.HasPrefix(r, sealedPrefix) || strings.Contains(r, pw) {
			t.Errorf("stored role password of app %s = %q, want sealed", id, r)
		}
		if a, err := db.AppByID(ctx, id); err != nil || a.DBPassword != pw {
			t.Errorf("AppByID(%s) role password = %q, %v; want %q", id, a.DBPassword, err, pw)
		}
	}
	if apps, err := db.Apps(ctx, "acme"); err != nil || len(apps) != 2 || apps[0].DBPassword != "new-app-pw" {
		t.Errorf("Apps() = %+v, %v; want both, opened", apps, err)
	}
	if _, err := db.pool.Exec(ctx, "UPDATE apps SET db_password=$1 WHERE id='newapp'", rawApp("oldapp")); err != nil {
		t.Fatal(err)
	}
	if a, err := db.AppByID(ctx, "newapp"); err == nil {
		t.Errorf("a role password copied from another app opened: %q", a.DBPassword)
	}
	if err := db.SetDBInstancePassword(ctx, "old", "new-pw", func(hangar.DBInstance) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if r := raw("old"); !strings.HasPrefix(r, sealedPrefix) || strings.Contains(r, "new-pw") {
		t.Errorf("stored password after SetDBInstancePassword = %q, want sealed", r)
	}
	// A sealed password copied to another row does not open there.
	if _, err := db.pool.Exec(ctx, "UPDATE db_instances SET admin_password=$1 WHERE id='linked'", raw("old")); err != nil {
		t.Fatal(err)
	}
	if d, err := db.DBInstanceByID(ctx, "linked"); err == nil {
		t.Errorf("a password copied from another row opened: %q", d.AdminPassword)
	}
}
