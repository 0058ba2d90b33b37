package build

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg := func(name string, lang hangar.Language, start ...string) Config {
		var c Config
		c.Name, c.Language, c.Runtime.Start = name, lang, start
		return c
	}
	full := cfg("shop", hangar.LanguageNode, "node dist/main.js")
	full.Runtime.Setup = []string{"./build.sh"}
	full.Database.Migrate = []string{"npx knex migrate:latest", "node seed.js"}
	full.Database.AppDBName = "shop_db"
	full.Env = map[string]string{"PORT": "3000", "MODE": "prod"}

	tests := []struct {
		name     string
		yaml     string
		want     Config
		wantKind hangar.Kind
		wantMsg  string
	}{
		{
			name: "Full",
			yaml: `# a typical file
name: shop
language: node
database:
  hostname: localhost        # connection fields are ignored
  port: 5432
  password: ${PGPASSWORD}
  app_db_name: shop_db
  migrate:
    - npx knex migrate:latest
    - node seed.js
runtimeConfig:
  setup: ["./build.sh"]
  start:
    - node dist/main.js
  admin_port: 3001
telemetry:
  OTLPExporter:
    logsEndpoint: http://otel
env:
  PORT: 3000
  MODE: prod
`,
			want: full,
		},
		{name: "StartAsString", yaml: "name: api\nlanguage: python\nruntimeConfig:\n  start: fastapi run\n", want: cfg("api", hangar.LanguagePython, "fastapi run")},
		{name: "DefaultNode", yaml: "name: app\n", want: cfg("app", hangar.LanguageNode, "npm start")},
		{name: "DefaultPython", yaml: "name: app\nlanguage: python\nruntimeConfig:\n  start:\n", want: cfg("app", hangar.LanguagePython, "python3 main.py")},
		{name: "DefaultGo", yaml: "name: app\nlanguage: go\n", want: cfg("app", hangar.LanguageGo, "./main")},
		{
			name:     "Malformed",
			yaml:     "name: app\nlanguage: node\nruntimeConfig: start: npm start\n",
			wantKind: hangar.KindInvalid,
			wantMsg:  "dbos-config.yaml: yaml: line 3: mapping values are not allowed in this context",
		},
		{
			name:     "WrongType",
			yaml:     "name: app\nruntimeConfig:\n  start:\n    run: x\n",
			wantKind: hangar.KindInvalid,
			wantMsg:  "dbos-config.yaml: yaml: line 4: expected a command or a list of commands",
		},
		{
			name:     "WrongTypeInList",
			yaml:     "name: app\ndatabase:\n  migrate:\n    - [a, b]\n",
			wantKind: hangar.KindInvalid,
			wantMsg:  "dbos-config.yaml: yaml: unmarshal errors: line 4: cannot unmarshal !!seq into string",
		},
		{
			name:     "NotAMapping",
			yaml:     "- name: app\n",
			wantKind: hangar.KindInvalid,
			wantMsg:  "dbos-config.yaml: line 1: expected a mapping of fields such as name and language",
		},
		{name: "MissingName", yaml: "language: node\n", wantKind: hangar.KindInvalid, wantMsg: "dbos-config.yaml: name is required: set it to the application's name"},
		{name: "Empty", yaml: "", wantKind: hangar.KindInvalid, wantMsg: "dbos-config.yaml: name is required: set it to the application's name"},
		{name: "BadLanguage", yaml: "name: app\nlanguage: java\n", wantKind: hangar.KindInvalid, wantMsg: `dbos-config.yaml: unsupported language "java": use node, python or go`},
		{
			name:     "BadAppDBName",
			yaml:     "name: app\ndatabase:\n  app_db_name: \"x; drop\"\n",
			wantKind: hangar.KindInvalid,
			wantMsg:  `dbos-config.yaml: invalid database.app_db_name "x; drop": use a-z, 0-9 and _, starting with a letter or _`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseConfig([]byte(tt.yaml))
			checkErr(t, err, tt.wantKind, tt.wantMsg)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseConfig (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	t.Run("Present", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "dbos-config.yaml"), []byte("name: app\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := LoadConfig(dir)
		if err != nil || c.Name != "app" {
			t.Errorf("LoadConfig = %+v, %v; want name app", c, err)
		}
	})
	t.Run("Missing", func(t *testing.T) {
		t.Parallel()
		_, err := LoadConfig(t.TempDir())
		checkErr(t, err, hangar.KindInvalid, "dbos-config.yaml not found at the root of the archive: deploy from the folder that holds it")
	})
}
