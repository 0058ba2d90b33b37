package accounts_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/accounts"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/hangar-oss/hangar/internal/secretbox"
	"github.com/hangar-oss/hangar/internal/store"
)

var (
	_ accounts.Store  = (*store.DB)(nil)
	_ accounts.Sealer = (*secretbox.Box)(nil)
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	svc    *accounts.Service
	st     *store.DB
	now    time.Time
	routes *routes
	alice  hangar.User // admin of acme, which has app greeter
	bob    hangar.User // admin of bob
}

type routes struct {
	mu      sync.Mutex
	renamed []string
}

func (r *routes) OrgRenamed(_ context.Context, oldName, newName string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.renamed = append(r.renamed, oldName+"->"+newName)
	return nil
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := t.Context()
	st, err := store.Open(ctx, pgtest.URL(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	box, err := secretbox.Open(filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{st: st, now: time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC), routes: &routes{}}
	f.svc = accounts.New(accounts.Config{Now: func() time.Time { return f.now }}, st, box, f.routes)
	f.alice = hangar.User{ID: "u-alice", Name: "alice", Org: "acme"}
	f.bob = hangar.User{ID: "u-bob", Name: "bob", Org: "bob"}
	for _, u := range []hangar.User{f.alice, f.bob} {
		if err := st.CreateUserWithOrg(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	inst := hangar.DBInstance{ID: "i1", Org: "acme", Name: "db1", Status: hangar.DBAvailable, AdminUser: "a", AdminPassword: "p"}
	if err := st.CreateDBInstance(ctx, inst, hangar.OrgLimits{}); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"greeter", "other"} {
		a := hangar.App{ID: "app-" + name, Org: "acme", Name: name, AppDBName: name, Language: hangar.LanguageNode,
			Status: hangar.StatusRegistered, MemoryMiB: 512, MinVMs: 1, MaxVMs: 1, DBRole: name, DBPassword: "x"}
		if err := st.CreateApp(ctx, a, inst.ID, hangar.OrgLimits{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func wantKind(t *testing.T, what string, err error, kind hangar.Kind, msg string) {
	t.Helper()
	if hangar.KindOf(err) != kind || !strings.Contains(hangar.MessageOf(err), msg) {
		t.Errorf("%s: got %v (kind %s), want kind %s with %q", what, err, hangar.KindOf(err), kind, msg)
	}
}

func TestService_Secrets(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	const value = "sk_live_very-secret-value"
	if err := f.svc.PutSecret(ctx, f.alice, "acme", "greeter", "API_KEY", value); err != nil {
		t.Fatal(err)
	}
	if err := f.svc.PutSecret(ctx, f.alice, "acme", "greeter", "API_KEY", value+"2"); err != nil {
		t.Fatalf("update: %v", err)
	}
	if err := f.svc.PutSecret(ctx, f.alice, "acme", "greeter", "lower_case1", ""); err != nil {
		t.Fatalf("empty value: %v", err)
	}
	names, err := f.svc.SecretNames(ctx, f.alice, "acme", "greeter")
	if diff := cmp.Diff([]string{"API_KEY", "lower_case1"}, names); err != nil || diff != "" {
		t.Errorf("SecretNames (-want +got): %v\n%s", err, diff)
	}
	got, err := f.svc.Secrets(ctx, "app-greeter")
	if diff := cmp.Diff(map[string]string{"API_KEY": value + "2", "lower_case1": ""}, got); err != nil || diff != "" {
		t.Errorf("Secrets (-want +got): %v\n%s", err, diff)
	}

	t.Run("NotInClearInTheDatabase", func(t *testing.T) {
		var n int
		err := f.st.Pool().QueryRow(ctx, "SELECT count(*) FROM app_secrets WHERE position($1::bytea in sealed) > 0", []byte(value)).Scan(&n)
		if err != nil || n != 0 {
			t.Errorf("%d rows hold the value in clear (%v)", n, err)
		}
	})

	t.Run("SwappedCiphertextRefused", func(t *testing.T) {
		if err := f.svc.PutSecret(ctx, f.alice, "acme", "other", "API_KEY", "other's"); err != nil {
			t.Fatal(err)
		}
		// Someone with write access to the database copies greeter's
		// ciphertext to app other: it must not open there.
		_, err := f.st.Pool().Exec(ctx, `UPDATE app_secrets SET sealed = (SELECT sealed FROM app_secrets WHERE app_id='app-greeter' AND name='API_KEY')
			WHERE app_id='app-other' AND name='API_KEY'`)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := f.svc.Secrets(ctx, "app-other"); err == nil {
			t.Errorf("Secrets of app other = %v, want an error: a ciphertext moved between apps opened", got)
		}
	})

	t.Run("Invalid", func(t *testing.T) {
		for _, tc := range []struct{ name, value, msg string }{
			{"DBOS_DATABASE_URL", "x", "reserved"},
			{"DBOS_APP_HOSTNAME", "x", "reserved"},
			{"DBOS__VMID", "x", "reserved"},
			{"dbos_database_url", "x", "reserved"},
			{"PGPASSWORD", "x", "reserved"},
			{"PGSSLMODE", "x", "reserved"},
			{"PATH", "x", "reserved"},
			{"HOME", "x", "reserved"},
			{"1ABC", "x", "invalid secret name"},
			{"A-B", "x", "invalid secret name"},
			{"A B", "x", "invalid secret name"},
			{"", "x", "empty"},
			{strings.Repeat("A", 129), "x", "too long"},
			{"BIG", strings.Repeat("v", accounts.MaxSecretValueLen+1), "at most"},
		} {
			err := f.svc.PutSecret(ctx, f.alice, "acme", "greeter", tc.name, tc.value)
			wantKind(t, "PutSecret "+tc.name[:min(len(tc.name), 20)], err, hangar.KindInvalid, tc.msg)
		}
		wantKind(t, "unknown app", f.svc.PutSecret(ctx, f.alice, "acme", "nope", "K", "v"), hangar.KindNotFound, "application nope not found")
	})

	t.Run("OtherOrg", func(t *testing.T) {
		wantKind(t, "put", f.svc.PutSecret(ctx, f.bob, "acme", "greeter", "K", "v"), hangar.KindForbidden, "not a member of organization acme")
		_, err := f.svc.SecretNames(ctx, f.bob, "acme", "greeter")
		wantKind(t, "list", err, hangar.KindForbidden, "not a member")
		wantKind(t, "delete", f.svc.DeleteSecret(ctx, f.bob, "acme", "greeter", "API_KEY"), hangar.KindForbidden, "not a member")
		// Bob naming his own org finds no app greeter there.
		wantKind(t, "own org", f.svc.PutSecret(ctx, f.bob, "bob", "greeter", "K", "v"), hangar.KindNotFound, "application greeter not found")
		if names, _ := f.svc.SecretNames(ctx, f.alice, "acme", "greeter"); len(names) != 2 {
			t.Errorf("secrets changed by another org's user: %v", names)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		if err := f.svc.DeleteSecret(ctx, f.alice, "acme", "greeter", "lower_case1"); err != nil {
			t.Fatal(err)
		}
		wantKind(t, "again", f.svc.DeleteSecret(ctx, f.alice, "acme", "greeter", "lower_case1"), hangar.KindNotFound, "secret lower_case1 not found for application greeter")
	})
}

func TestService_SecretLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	big := strings.Repeat("v", accounts.MaxSecretValueLen)
	n := accounts.MaxSecretsTotalLen / accounts.MaxSecretValueLen
	for i := range n - 1 {
		if err := f.svc.PutSecret(ctx, f.alice, "acme", "greeter", "K"+strings.Repeat("X", i), big); err != nil {
			t.Fatal(err)
		}
	}
	wantKind(t, "over the total", f.svc.PutSecret(ctx, f.alice, "acme", "greeter", "LAST", big), hangar.KindInvalid, "would total")
	// Replacing a value does not count the old one.
	if err := f.svc.PutSecret(ctx, f.alice, "acme", "greeter", "K", "small"); err != nil {
		t.Fatal(err)
	}
	for i := range accounts.MaxSecretsPerApp {
		if err := f.svc.PutSecret(ctx, f.alice, "acme", "other", fmt.Sprintf("S%d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	wantKind(t, "over the count", f.svc.PutSecret(ctx, f.alice, "acme", "other", "ONE_MORE", "v"), hangar.KindInvalid, "delete one first")
	if err := f.svc.PutSecret(ctx, f.alice, "acme", "other", "S0", "replaced"); err != nil {
		t.Errorf("replacing a secret at the count limit: %v", err)
	}
}

func TestService_Orgs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	carol := hangar.User{ID: "u-carol", Name: "carol", Org: "carol"}
	if err := f.st.CreateUserWithOrg(ctx, carol); err != nil {
		t.Fatal(err)
	}
	_, err := f.svc.Invite(ctx, f.bob, "acme")
	wantKind(t, "invite another org", err, hangar.KindForbidden, "not a member")
	secret, err := f.svc.Invite(ctx, f.alice, "acme")
	if err != nil || !strings.HasPrefix(secret, "hgi_") {
		t.Fatalf("Invite = %q, %v", secret, err)
	}
	var n int
	if err := f.st.Pool().QueryRow(ctx, "SELECT count(*) FROM org_invites WHERE position($1::bytea in secret_hash) > 0", []byte(secret)).Scan(&n); err != nil || n != 0 {
		t.Errorf("the invite secret is stored in clear (%v)", err)
	}
	wantKind(t, "no secret", f.svc.Join(ctx, carol, "acme", ""), hangar.KindInvalid, "invite secret is required")
	wantKind(t, "wrong org", f.svc.Join(ctx, carol, "bob", secret), hangar.KindForbidden, "invalid invite secret")
	if err := f.svc.Join(ctx, carol, "acme", secret); err != nil {
		t.Fatal(err)
	}
	carol.Org = "acme"
	names, err := f.svc.OrgUsers(ctx, carol, "acme")
	if diff := cmp.Diff([]string{"alice", "carol"}, names); err != nil || diff != "" {
		t.Errorf("OrgUsers (-want +got): %v\n%s", err, diff)
	}
	_, err = f.svc.OrgUsers(ctx, f.bob, "acme")
	wantKind(t, "OrgUsers of another org", err, hangar.KindForbidden, "not a member")
	if admin, _ := f.svc.IsOrgAdmin(ctx, carol); admin {
		t.Errorf("carol is admin after joining")
	}
	if admin, _ := f.svc.IsOrgAdmin(ctx, f.alice); !admin {
		t.Errorf("alice is not admin of her org")
	}

	t.Run("MemberIsNotAdmin", func(t *testing.T) {
		_, err := f.svc.Invite(ctx, carol, "acme")
		wantKind(t, "invite", err, hangar.KindForbidden, "only the admin of organization acme can invite users")
		wantKind(t, "rename", f.svc.RenameOrg(ctx, carol, "acme", "carolco"), hangar.KindForbidden, "only the admin")
		wantKind(t, "remove", f.svc.RemoveMember(ctx, carol, "acme", "alice"), hangar.KindForbidden, "only the admin")
	})

	t.Run("InviteExpires", func(t *testing.T) {
		s, err := f.svc.Invite(ctx, f.alice, "acme")
		if err != nil {
			t.Fatal(err)
		}
		f.now = f.now.Add(24*time.Hour + time.Second)
		defer func() { f.now = f.now.Add(-24*time.Hour - time.Second) }()
		wantKind(t, "expired", f.svc.Join(ctx, f.bob, "acme", s), hangar.KindForbidden, "expired")
	})

	t.Run("Rename", func(t *testing.T) {
		wantKind(t, "reserved", f.svc.RenameOrg(ctx, f.alice, "acme", "user"), hangar.KindInvalid, "reserved")
		wantKind(t, "invalid", f.svc.RenameOrg(ctx, f.alice, "acme", "Acme-Co"), hangar.KindInvalid, "invalid name")
		wantKind(t, "taken", f.svc.RenameOrg(ctx, f.alice, "acme", "bob"), hangar.KindConflict, "already exists")
		if err := f.svc.RenameOrg(ctx, f.alice, "acme", "acmeco"); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"acme->acmeco"}, f.routes.renamed); diff != "" {
			t.Errorf("routes told (-want +got):\n%s", diff)
		}
		f.alice.Org, carol.Org = "acmeco", "acmeco"
		if _, err := f.st.App(ctx, "acmeco", "greeter"); err != nil {
			t.Errorf("app after rename: %v", err)
		}
	})

	t.Run("Remove", func(t *testing.T) {
		wantKind(t, "self", f.svc.RemoveMember(ctx, f.alice, "acmeco", "alice"), hangar.KindInvalid, "cannot remove yourself")
		wantKind(t, "non-member", f.svc.RemoveMember(ctx, f.alice, "acmeco", "bob"), hangar.KindNotFound, "not a member")
		if err := f.svc.RemoveMember(ctx, f.alice, "acmeco", "carol"); err != nil {
			t.Fatal(err)
		}
		u, err := f.st.UserByID(ctx, carol.ID)
		if err != nil || u.Org != "carol" {
			t.Errorf("removed carol is in %q (%v), want her own org carol", u.Org, err)
		}
	})
}

func TestService_Register(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	for _, id := range []string{"s1", "s2", "s3"} {
		if err := f.st.CreateSignup(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	wantKind(t, "invalid", f.svc.Register(ctx, "s1", "Dave", ""), hangar.KindInvalid, "invalid name")
	wantKind(t, "reserved", f.svc.Register(ctx, "s1", "dashboard", ""), hangar.KindInvalid, "reserved")
	wantKind(t, "taken", f.svc.Register(ctx, "s1", "alice", ""), hangar.KindConflict, "taken")
	wantKind(t, "org taken", f.svc.Register(ctx, "s1", "acme", ""), hangar.KindConflict, "organization named acme exists")
	wantKind(t, "deleted account", f.svc.Register(ctx, "gone", "dave", ""), hangar.KindUnauthorized, "no longer exists")
	if err := f.svc.Register(ctx, "s1", "dave", ""); err != nil {
		t.Fatal(err)
	}
	dave, err := f.st.UserByID(ctx, "s1")
	if err != nil || dave.Org != "dave" {
		t.Fatalf("dave = %+v, %v; want org dave", dave, err)
	}
	if admin, _ := f.svc.IsOrgAdmin(ctx, dave); !admin {
		t.Errorf("a registered user is not the admin of its own org")
	}
	if err := f.svc.Register(ctx, "s1", "dave", ""); err != nil {
		t.Errorf("registering again under the same name: %v", err)
	}
	wantKind(t, "other name", f.svc.Register(ctx, "s1", "dave2", ""), hangar.KindConflict, "registered already, as dave")

	secret, err := f.svc.Invite(ctx, f.alice, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.svc.Register(ctx, "s2", "erin", secret); err != nil {
		t.Fatal(err)
	}
	if erin, _ := f.st.UserByID(ctx, "s2"); erin.Org != "acme" {
		t.Errorf("erin registered with an invite is in %q, want acme", erin.Org)
	}
	wantKind(t, "used secret", f.svc.Register(ctx, "s3", "frank", secret), hangar.KindForbidden, "invalid invite secret")
	// A registered user that registers again with a secret joins that org.
	secret2, _ := f.svc.Invite(ctx, f.alice, "acme")
	if err := f.svc.Register(ctx, "s1", "dave", secret2); err != nil {
		t.Fatal(err)
	}
	if d, _ := f.st.UserByID(ctx, "s1"); d.Org != "acme" {
		t.Errorf("dave is in %q after registering with a secret, want acme", d.Org)
	}
}

func TestService_RevokeRefreshToken(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := t.Context()
	if err := f.st.AddRefreshToken(ctx, "t1", f.alice.ID, "hgr_tok"); err != nil {
		t.Fatal(err)
	}
	wantKind(t, "empty", f.svc.RevokeRefreshToken(ctx, ""), hangar.KindInvalid, "no token")
	if err := f.svc.RevokeRefreshToken(ctx, "unknown"); err != nil {
		t.Errorf("revoking an unknown token: %v", err)
	}
	if err := f.svc.RevokeRefreshToken(ctx, "hgr_tok"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.UseRefreshToken(ctx, "hgr_tok", f.now, time.Hour, time.Hour); hangar.KindOf(err) != hangar.KindUnauthorized {
		t.Errorf("revoked token: %v, want unauthorized", err)
	}
}

func TestValidateSecretName(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"API_KEY", "_x", "a1", "STRIPE_SECRET", "NODE_ENV", "DBOS", "PATHS", "P_G"} {
		if err := accounts.ValidateSecretName(ok); err != nil {
			t.Errorf("ValidateSecretName(%q) = %v, want ok", ok, err)
		}
	}
	err := accounts.ValidateSecretName("DBOS_DATABASE_URL")
	if msg := hangar.MessageOf(err); !strings.Contains(msg, "reserved") || !strings.Contains(msg, "DBOS_*") || !strings.Contains(msg, "PG*") {
		t.Errorf("reserved-name error %q does not state the rule", msg)
	}
}
