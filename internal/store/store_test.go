package store

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open returns a store on a fresh database.
func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(t.Context(), pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	return db
}

// seed creates a user, an instance and an app, and returns the app.
func seed(t *testing.T, db *DB) hangar.App {
	t.Helper()
	ctx := t.Context()
	if err := db.CreateUser(ctx, hangar.User{ID: "u1", Name: "alice", Org: "acme"}); err != nil {
		t.Fatal(err)
	}
	inst := hangar.DBInstance{ID: "i1", Org: "acme", Name: "db1", Status: hangar.DBAvailable, AdminUser: "admin", AdminPassword: "pw"}
	if err := db.CreateDBInstance(ctx, inst, hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	a := hangar.App{ID: "a1", Org: "acme", Name: "greeter", DBInstance: "db1", AppDBName: "greeter", Language: hangar.LanguageNode,
		Status: hangar.StatusRegistered, MemoryMiB: 512, MinVMs: 1, MaxVMs: 1, DBRole: "greeter_role", DBPassword: "x"}
	if err := db.CreateApp(ctx, a, inst.ID, hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	orgID, err := db.OrgID(ctx, a.Org)
	if err != nil {
		t.Fatal(err)
	}
	a.OrgID, a.InstanceID = orgID, inst.ID
	return a
}

func TestOpen_MigratesOnce(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	for range 2 {
		db, err := Open(t.Context(), url)
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		db.Close()
	}
}

func TestDB_Apps(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	a := seed(t, db)
	got, err := db.App(ctx, "acme", "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(a, got, cmpIgnoreTimes); diff != "" {
		t.Errorf("App mismatch (-want +got):\n%s", diff)
	}
	if err := db.CreateApp(ctx, a, "i1", hangar.OrgLimits{}); hangar.KindOf(err) != hangar.KindConflict {
		t.Errorf("duplicate app: %v, want conflict", err)
	}
	if _, err := db.App(ctx, "other", "greeter"); hangar.MessageOf(err) != "application greeter not found" {
		t.Errorf("other org's app: %v, want the CLI's not-found message", err)
	}
	for label, want := range map[string]bool{"acme-greeter": true, "ACME-Greeter": true, "acme-other": false, "acme": false} {
		if got, err := db.AppHostExists(ctx, label); err != nil || got != want {
			t.Errorf("AppHostExists(%q) = %v, %v; want %v", label, got, err, want)
		}
	}
	if err := db.DeleteApp(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if got, err := db.AppHostExists(ctx, "acme-greeter"); err != nil || got {
		t.Errorf("AppHostExists of a deleted app = %v, %v; want false", got, err)
	}
}

var cmpIgnoreTimes = cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".CreatedAt" }, cmp.Ignore())

func TestDB_Operations(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	a := seed(t, db)
	if err := db.BeginOperation(ctx, a.ID, "deploy-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.BeginOperation(ctx, a.ID, "deploy-1"); err != nil {
		t.Errorf("the holder taking the app again (a resumed workflow): %v", err)
	}
	err := db.BeginOperation(ctx, a.ID, "update-2")
	if hangar.KindOf(err) != hangar.KindConflict || !containsAll(hangar.MessageOf(err), "greeter is busy", "deploy") {
		t.Errorf("second operation: %v, want a busy conflict naming the deploy", err)
	}
	ops, err := db.Operations(ctx)
	if err != nil || ops[a.ID] != "deploy-1" {
		t.Errorf("Operations = %v, %v", ops, err)
	}
	if err := db.EndOperation(ctx, a.ID, "update-2"); err != nil {
		t.Fatal(err)
	}
	if err := db.BeginOperation(ctx, a.ID, "update-2"); err == nil {
		t.Errorf("a non-holder released the app")
	}
	if err := db.EndOperation(ctx, a.ID, "deploy-1"); err != nil {
		t.Fatal(err)
	}
	if err := db.BeginOperation(ctx, a.ID, "update-2"); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestDB_Versions(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	a := seed(t, db)
	for _, id := range []string{"v1", "v2"} {
		if err := db.CreateVersion(ctx, hangar.Version{ID: id, AppID: a.ID, ArchiveDigest: "d", Status: hangar.VersionDeploying}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * time.Millisecond) // distinct creation times
	}
	for _, st := range []hangar.StepRecord{{Name: "upload", DurationMS: 3}, {Name: "configuration", DurationMS: 40, Error: "boom"}} {
		if err := db.RecordStep(ctx, "v2", st); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetAppServing(ctx, a.ID, "v1"); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishVersion(ctx, "v1", hangar.VersionActive, ""); err != nil {
		t.Fatal(err)
	}
	if err := db.SetAppServing(ctx, a.ID, "v2"); err != nil {
		t.Fatal(err)
	}
	vs, err := db.Versions(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].ID != "v2" || vs[1].ID != "v1" {
		t.Fatalf("Versions = %+v, want v2 then v1", vs)
	}
	if vs[1].Status != hangar.VersionRetired || vs[1].AppVersion != "v1" {
		t.Errorf("v1 = %s/%s, want RETIRED with app version v1", vs[1].Status, vs[1].AppVersion)
	}
	want := []hangar.StepRecord{{Name: "upload", DurationMS: 3}, {Name: "configuration", DurationMS: 40, Error: "boom"}}
	if diff := cmp.Diff(want, vs[0].Steps, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".StartedAt" }, cmp.Ignore())); diff != "" {
		t.Errorf("steps (-want +got):\n%s", diff)
	}
	if err := db.CreateVersion(ctx, hangar.Version{ID: "v3", AppID: a.ID, ArchiveDigest: "failed", Status: hangar.VersionDeploying}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishVersion(ctx, "v3", hangar.VersionFailed, "boom"); err != nil {
		t.Fatal(err)
	}
	if kept, err := db.KeptArchives(ctx); err != nil || !cmp.Equal(kept, map[string]bool{"d": true}) {
		t.Errorf("KeptArchives = %v, %v; want d alone (v3 failed)", kept, err)
	}
	if err := db.DeleteApp(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if kept, _ := db.KeptArchives(ctx); len(kept) != 0 {
		t.Errorf("versions survive their app: archives %v kept", kept)
	}
}

func TestDB_RefreshTokens(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := context.Background()
	seed(t, db)
	if err := db.AddRefreshToken(ctx, "t1", "u1", "secret-token"); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for name, tc := range map[string]struct {
		token   string
		at      time.Time
		wantErr bool
	}{
		"Valid":   {"secret-token", now, false},
		"Unknown": {"other", now, true},
		"TooOld":  {"secret-token", now.Add(400 * 24 * time.Hour), true},
	} {
		t.Run(name, func(t *testing.T) {
			u, err := db.UseRefreshToken(ctx, tc.token, tc.at, 365*24*time.Hour, 365*24*time.Hour)
			if (err != nil) != tc.wantErr {
				t.Fatalf("UseRefreshToken = %v, %v; wantErr %v", u, err, tc.wantErr)
			}
			if err != nil && hangar.KindOf(err) != hangar.KindUnauthorized {
				t.Errorf("kind = %v, want unauthorized", hangar.KindOf(err))
			}
			if err == nil && u.Name != "alice" {
				t.Errorf("user = %q, want alice", u.Name)
			}
		})
	}
	if err := db.RevokeRefreshToken(ctx, "secret-token", now); err != nil {
		t.Fatal(err)
	}
	if _, err := db.UseRefreshToken(ctx, "secret-token", now, time.Hour, time.Hour); err == nil {
		t.Errorf("a revoked token still works")
	}
}

func TestDB_Setting(t *testing.T) {
	t.Parallel()
	db := open(t)
	ctx := t.Context()
	first, err := db.Setting(ctx, "k", func() (string, error) { return "one", nil })
	if err != nil {
		t.Fatal(err)
	}
	second, err := db.Setting(ctx, "k", func() (string, error) { return "two", nil })
	if err != nil || first != "one" || second != "one" {
		t.Errorf("Setting = %q then %q (%v), want the first value twice", first, second, err)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
