package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIsolation_Stores tries, as tenants, to poison the dependency cache
// (from a build's postinstall script and from a running executor), to get
// another org's cache entry, and to exceed the per-org limits; and checks
// that a failed deploy's archive is deleted. Each attempt logs its result.
func TestIsolation_Stores(t *testing.T) {
	t.Parallel()
	h := startHangar(t, "--org-max-apps", "1", "--org-max-db-instances", "1", "--org-max-executors", "2")
	alice, bob := h.AddUser(t, "alice"), h.AddUser(t, "bob")
	official := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code != 0 {
			t.Fatalf("official %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	refused := func(t *testing.T, dir, attempt, want string, args ...string) {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("attempt: %s -> exit %d, want a refusal naming the limit (%q)\n%s", attempt, code, want, out)
			return
		}
		t.Logf("attempt: %s -> denied (%q)", attempt, want)
	}
	login := func(t *testing.T, dir, refresh string) {
		t.Helper()
		if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
			t.Fatalf("dbos-cloud login: exit %d\n%s", code, out)
		}
	}
	// The app's postinstall reports what its node_modules held before it
	// ran, then poisons express in place. npm echoes the script, so the
	// markers it prints are computed: "$((40+2))" is echoed, "42" printed.
	const probe = "test -e node_modules/express/POISONED && echo CACHE-HELD-BUILD-POISON-$((40+2)); " +
		"test -e node_modules/express/EXECUTOR && echo CACHE-HELD-EXECUTOR-POISON-$((40+2)); " +
		"echo poisoned > node_modules/express/POISONED; echo postinstall-ran-$((40+2))"
	withProbe := func(name string) map[string]func(string) string {
		return map[string]func(string) string{
			"package.json": func(s string) string {
				return strings.Replace(s, `"start": "node app.mjs",`, `"start": "node app.mjs", "postinstall": "`+probe+`",`, 1)
			},
			"dbos-config.yaml": func(s string) string { return strings.Replace(s, "name: greeter", "name: "+name, 1) },
		}
	}
	archives := func(t *testing.T) []string {
		t.Helper()
		zips, err := filepath.Glob(filepath.Join(h.DataDir, "archives", "*.zip"))
		if err != nil {
			t.Fatal(err)
		}
		return zips
	}

	app := fixture(t, "greeter", withProbe("greeter"))
	login(t, app, alice)
	official(t, app, "db", "provision", "appdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	refused(t, app, "a second managed database instance over --org-max-db-instances 1",
		"limit reached: organization alice may have at most 1 managed database instances",
		"db", "provision", "second", "-U", "dbos_admin", "-W", "s3cret-pass")
	official(t, app, "app", "deploy")
	logs := official(t, app, "app", "logs")
	if !strings.Contains(logs, "dependencies not cached yet (cache ") || !strings.Contains(logs, "postinstall-ran-42") {
		t.Fatalf("the first deploy did not fill the cache and run postinstall:\n%s", lastLines(logs, 40))
	}
	kept := archives(t)
	if len(kept) != 1 {
		t.Fatalf("archives after one deploy: %v, want one", kept)
	}

	t.Run("Limits", func(t *testing.T) {
		refused(t, app, "min executors 3 over --org-max-executors 2",
			"limit reached: organization alice may have at most 2 executors", "app", "update", "--min-executors", "3")
		other := fixture(t, "greeter", withProbe("other"))
		login(t, other, alice)
		refused(t, other, "a second app over --org-max-apps 1",
			"limit reached: organization alice may have at most 1 applications", "app", "register", "-d", "appdb")
	})

	t.Run("CachePoisoning", func(t *testing.T) {
		// A running executor rewrites its node_modules in place.
		out, code := h.ours(t, app, "app", "cmd", "echo x > node_modules/express/EXECUTOR && echo wrote || echo refused")
		t.Logf("executor writing node_modules/express: exit %d, %s", code, strings.TrimSpace(out))

		// A deploy that fails (at its migration) after the cache served it.
		failing := fixture(t, "greeter", map[string]func(string) string{
			"package.json":     withProbe("greeter")["package.json"],
			"dbos-config.yaml": func(s string) string { return strings.Replace(s, "node migrate.mjs", "exit 3", 1) },
		})
		login(t, failing, alice)
		if out, code := h.official(t, failing, "app", "deploy"); code == 0 {
			t.Fatalf("a deploy whose migration exits 3 succeeded:\n%s", out)
		}
		if got := archives(t); len(got) != 1 || got[0] != kept[0] {
			t.Errorf("archives after a failed deploy: %v, want only %v", got, kept)
		} else {
			t.Logf("failed deploy's archive deleted: %d archive kept", len(got))
		}

		official(t, app, "app", "deploy")
		logs := official(t, app, "app", "logs")
		if strings.Count(logs, "dependencies unchanged (cache ") < 2 {
			t.Errorf("later deploys of alice did not reuse the cache:\n%s", lastLines(logs, 60))
		}
		for _, poison := range []string{"CACHE-HELD-BUILD-POISON-42", "CACHE-HELD-EXECUTOR-POISON-42"} {
			if strings.Contains(logs, poison) {
				t.Errorf("attempt: poison the cache -> a later deploy saw %s", poison)
			}
		}
		if !t.Failed() {
			t.Logf("attempt: postinstall script rewrites node_modules/express in place -> denied (the next deploys start from the clean install)")
			t.Logf("attempt: running executor rewrites node_modules/express in place -> denied (the next deploys start from the clean install)")
		}

		// Bob deploys the same lockfile: a miss, filled from his own install.
		bobApp := fixture(t, "greeter", withProbe("greeter"))
		login(t, bobApp, bob)
		official(t, bobApp, "db", "provision", "bobdb", "-U", "dbos_admin", "-W", "s3cret-pass")
		official(t, bobApp, "app", "deploy")
		bobLogs := official(t, bobApp, "app", "logs")
		if !strings.Contains(bobLogs, "dependencies not cached yet (cache ") || strings.Contains(bobLogs, "dependencies unchanged (cache ") ||
			strings.Contains(bobLogs, "POISON-42") {
			t.Errorf("attempt: another org deploys the same lockfile -> not a clean miss:\n%s", lastLines(bobLogs, 40))
		} else {
			t.Logf("attempt: another org deploys the same lockfile after alice's poisoning -> denied (a miss, filled from its own clean install)")
		}
		entries, _ := os.ReadDir(filepath.Join(h.DataDir, "cache", "deps", "node"))
		if len(entries) != 2 {
			t.Errorf("node cache partitions: %d, want one per org (2)", len(entries))
		}
	})
}
