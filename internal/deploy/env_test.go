package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestStartScript(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"node app.mjs"}, "exec node app.mjs"},
		{[]string{"npm run prep", "node dist/main.js"}, "npm run prep && exec node dist/main.js"},
		{nil, "exit 1"},
	} {
		if got := startScript(tc.in); got != tc.want {
			t.Errorf("startScript(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestCloudModeWorks(t *testing.T) {
	t.Parallel()
	write := func(t *testing.T, dir, rel string) {
		t.Helper()
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sdk5 := "node_modules/@dbos-inc/dbos-sdk/dist/src/enterprise.js"
	for name, tc := range map[string]struct {
		lang  hangar.Language
		files []string
		want  bool
	}{
		"Go":                {hangar.LanguageGo, nil, true},
		"NodeOldSDK":        {hangar.LanguageNode, []string{"node_modules/@dbos-inc/dbos-sdk/package.json"}, true},
		"NodeSDK5":          {hangar.LanguageNode, []string{sdk5}, false},
		"NodeSDK5Conductor": {hangar.LanguageNode, []string{sdk5, "node_modules/@dbos-inc/dbos-enterprise/package.json"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tc.files {
				write(t, dir, f)
			}
			if got := cloudModeWorks(dir, tc.lang); got != tc.want {
				t.Errorf("cloudModeWorks = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDBEnv(t *testing.T) {
	t.Parallel()
	a := hangar.App{AppDBName: "greeter", DBRole: "greeter_role", DBPassword: "p@ss/word"}
	env := strings.Join(dbEnv(a, "10.0.0.1", 5432, ""), "\n")
	for _, want := range []string{
		"DBOS_DATABASE_URL=postgresql://greeter_role:p%40ss%2Fword@10.0.0.1:5432/greeter?sslmode=disable",
		"DBOS_SYSTEM_DATABASE_URL=postgresql://greeter_role:p%40ss%2Fword@10.0.0.1:5432/greeter_dbos_sys?sslmode=disable",
		"PGHOST=10.0.0.1", "PGPORT=5432", "PGUSER=greeter_role", "PGPASSWORD=p@ss/word", "PGDATABASE=greeter",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
	if strings.Contains(env, "PGSSL") {
		t.Errorf("env without TLS names PGSSL* variables:\n%s", env)
	}

	// Over TLS: the host the certificate names, verified against the CA.
	env = strings.Join(dbEnv(a, "db.example.com", 5432, "/etc/hangar/ca.crt"), "\n")
	for _, want := range []string{
		"DBOS_DATABASE_URL=postgresql://greeter_role:p%40ss%2Fword@db.example.com:5432/greeter?sslmode=verify-full&sslrootcert=/etc/hangar/ca.crt",
		"DBOS_SYSTEM_DATABASE_URL=postgresql://greeter_role:p%40ss%2Fword@db.example.com:5432/greeter_dbos_sys?sslmode=verify-full&sslrootcert=/etc/hangar/ca.crt",
		"PGHOST=db.example.com", "PGSSLMODE=verify-full", "PGSSLROOTCERT=/etc/hangar/ca.crt",
	} {
		if !strings.Contains(env, want) {
			t.Errorf("env lacks %q:\n%s", want, env)
		}
	}
}
