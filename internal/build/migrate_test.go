package build

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

func TestBuilder_Migrate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		migrate  []string
		fail     map[string]error
		want     []Cmd
		wantKind hangar.Kind
		wantMsg  string
	}{
		{name: "None"},
		{
			name:    "InOrderWithEnvAndTimeout",
			migrate: []string{"npx knex migrate:latest", "node seed.js"},
			want: []Cmd{
				{Dir: "/app", Shell: "npx knex migrate:latest", Env: []string{"PATH=/app/node_modules/.bin:/bin", "HOME=/home", "DBOS_DATABASE_URL=postgres://x"}, Timeout: 10 * time.Minute},
				{Dir: "/app", Shell: "node seed.js", Env: []string{"PATH=/app/node_modules/.bin:/bin", "HOME=/home", "DBOS_DATABASE_URL=postgres://x"}, Timeout: 10 * time.Minute},
			},
		},
		{
			name:    "FailureNamesCommandAndCode",
			migrate: []string{"npx knex migrate:latest", "node seed.js"},
			fail:    map[string]error{"npx knex migrate:latest": hangar.Errorf(hangar.KindInvalid, `command "npx knex migrate:latest" exited with code 1`)},
			want: []Cmd{
				{Dir: "/app", Shell: "npx knex migrate:latest", Env: []string{"PATH=/app/node_modules/.bin:/bin", "HOME=/home", "DBOS_DATABASE_URL=postgres://x"}, Timeout: 10 * time.Minute},
			},
			wantKind: hangar.KindInvalid,
			wantMsg:  `migration: command "npx knex migrate:latest" exited with code 1`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &fakeRunner{fail: tt.fail}
			j := Job{Dir: "/app", Env: []string{"DBOS_DATABASE_URL=postgres://x"}}
			j.Config.Database.Migrate = tt.migrate
			err := NewBuilder(testOptions(), r).Migrate(t.Context(), j)
			checkErr(t, err, tt.wantKind, tt.wantMsg)
			for i := range r.cmds {
				r.cmds[i].Stdout = nil // the discarded log
			}
			if diff := cmp.Diff(tt.want, r.cmds); diff != "" {
				t.Errorf("commands (-want +got):\n%s", diff)
			}
		})
	}
}
