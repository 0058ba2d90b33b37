package store

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// TestDB_OrgLimits fills an org to each of its limits, concurrently for
// apps, and checks that the next one is refused with a KindForbidden error
// naming the limit, while another org is untouched.
func TestDB_OrgLimits(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	seed(t, db) // acme: instance i1, app greeter with 1 minimum executor
	if err := db.CreateUser(ctx, hangar.User{ID: "u2", Name: "bob", Org: "other"}); err != nil {
		t.Fatal(err)
	}
	lim := hangar.OrgLimits{Apps: 3, DBInstances: 2, Executors: 4}
	wantLimit := func(t *testing.T, err error, msg string) {
		t.Helper()
		if hangar.KindOf(err) != hangar.KindForbidden || !strings.Contains(err.Error(), msg) {
			t.Errorf("got %v (%s), want a forbidden error containing %q", err, hangar.KindOf(err), msg)
		}
	}
	app := func(org string, i int) hangar.App {
		name := fmt.Sprintf("app%d", i)
		return hangar.App{ID: org + name, Org: org, Name: name, AppDBName: name, Language: hangar.LanguageNode,
			Status: hangar.StatusRegistered, MemoryMiB: 512, MinVMs: 1, MaxVMs: 1, DBRole: name + "_role"}
	}

	t.Run("Apps", func(t *testing.T) {
		// 8 at once for 2 free places: exactly 2 pass.
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for i := range errs {
			wg.Go(func() { errs[i] = db.CreateApp(ctx, app("acme", i), "i1", lim) })
		}
		wg.Wait()
		created := 0
		for _, err := range errs {
			if err == nil {
				created++
			} else {
				wantLimit(t, err, "limit reached: organization acme may have at most 3 applications")
			}
		}
		if created != 2 {
			t.Errorf("created %d apps concurrently with 2 places left, want 2", created)
		}
		if err := db.CreateApp(ctx, app("other", 1), "i1", lim); err != nil {
			t.Errorf("another org's app: %v", err)
		}
	})
	t.Run("Executors", func(t *testing.T) {
		apps, err := db.Apps(ctx, "acme")
		if err != nil || len(apps) != 3 {
			t.Fatalf("Apps = %d, %v; want 3", len(apps), err)
		}
		a := apps[0]
		// 3 apps × 1; raising one to 3 makes 5 > 4.
		wantLimit(t, db.UpdateApp(ctx, a.ID, 512, 3, 3, lim), "at most 4 executors")
		if err := db.UpdateApp(ctx, a.ID, 512, 2, 3, lim); err != nil {
			t.Errorf("raising to the limit: %v", err)
		}
		if err := db.CheckOrgExecutors(ctx, "acme", lim); err != nil {
			t.Errorf("CheckOrgExecutors at the limit: %v", err)
		}
		lower := lim
		lower.Executors = 3
		wantLimit(t, db.CheckOrgExecutors(ctx, "acme", lower), "at most 3 executors")
		if err := db.UpdateApp(ctx, a.ID, 1024, 1, 1, lower); err != nil {
			t.Errorf("lowering over a lowered limit: %v", err)
		}
	})
	t.Run("DBInstances", func(t *testing.T) {
		inst := func(org, id string, linked bool) hangar.DBInstance {
			return hangar.DBInstance{ID: id, Org: org, Name: id, Status: hangar.DBAvailable, AdminUser: "admin", IsLinked: linked}
		}
		if err := db.CreateDBInstance(ctx, inst("acme", "i2", false), lim); err != nil {
			t.Fatal(err)
		}
		wantLimit(t, db.CreateDBInstance(ctx, inst("acme", "i3", false), lim), "at most 2 managed database instances")
		if err := db.CreateDBInstance(ctx, inst("acme", "l1", true), lim); err != nil {
			t.Errorf("a linked instance over the managed limit: %v", err)
		}
		if err := db.CreateDBInstance(ctx, inst("other", "o1", false), lim); err != nil {
			t.Errorf("another org's instance: %v", err)
		}
	})
}

func TestDB_OrgID(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	seed(t, db)
	id, err := db.OrgID(ctx, "acme")
	if err != nil || id == "" {
		t.Fatalf("OrgID = %q, %v", id, err)
	}
	// A rename keeps the ID; a new org under the old name gets another.
	if err := db.RenameOrg(ctx, "acme", "acme2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.OrgID(ctx, "acme2"); got != id {
		t.Errorf("renamed org's ID = %q, want %q", got, id)
	}
	if err := db.CreateUser(ctx, hangar.User{ID: "u2", Name: "acme", Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.OrgID(ctx, "acme"); err != nil || got == id {
		t.Errorf("new org acme's ID = %q, %v; want a new one", got, err)
	}
	if _, err := db.OrgID(ctx, "nope"); hangar.KindOf(err) != hangar.KindNotFound {
		t.Errorf("OrgID of a missing org: %v, want not found", err)
	}
}
