package build

import (
	"context"
	"path/filepath"
	"strings"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// Migrate runs the app's database.migrate commands in the app folder, in
// order, with the job's environment and database (Job.DB), each bounded by
// Options.MigrateTimeout. They run with everything the build had,
// development dependencies included (Prune comes after), and with the
// folder's node_modules/.bin in PATH, as DBOS Cloud runs them: a migration
// may be "tsx setup-db.mts" or "knex migrate:latest". It stops at the
// first failure, a KindInvalid error naming the command and its exit code;
// the command's output is already in the log.
func (b *Builder) Migrate(ctx context.Context, j Job) error {
	dir := j.Dir
	if b.layers != nil {
		dir = runtime.AppDir
	}
	env := b.env(j.Env...)
	for i, kv := range env {
		if path, ok := strings.CutPrefix(kv, "PATH="); ok {
			env[i] = "PATH=" + filepath.Join(dir, "node_modules", ".bin") + ":" + path
		}
	}
	for _, c := range j.Config.Database.Migrate {
		cmd := Cmd{Shell: c, Env: env, Timeout: b.opts.MigrateTimeout, DB: j.DB}
		if err := b.runCmd(ctx, j, "migration", cmd); err != nil {
			return err
		}
	}
	return nil
}
