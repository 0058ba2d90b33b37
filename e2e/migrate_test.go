package e2e

import (
	"strings"
	"testing"
)

// TestDeploy_MigrateWithDevDependencies deploys an app whose migration runs
// tsx from its devDependencies, as DBOS demo apps do: migrations get the
// whole build, and executors get it without development dependencies.
func TestDeploy_MigrateWithDevDependencies(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "tess")
	dir := fixture(t, "tsxmigrate", nil)
	must := func(args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	must("login", "--with-refresh-token", refresh)
	must("db", "provision", "tessdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	must("app", "deploy")
	if logs := must("app", "logs"); !strings.Contains(logs, "migrated with tsx") {
		t.Errorf("the migration's output is missing from the logs:\n%s", logs)
	}
	if out := must("app", "cmd", "--", "test -e node_modules/tsx && echo present || echo pruned"); !strings.Contains(out, "pruned") {
		t.Errorf("the executor has the development dependencies: %q", out)
	}
}
