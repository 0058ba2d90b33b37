package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
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
