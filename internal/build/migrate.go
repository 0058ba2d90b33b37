package build

import "context"

// Migrate runs the app's database.migrate commands in the app folder, in
// order, with the job's environment (the caller puts the app's database
// variables there), each bounded by Options.MigrateTimeout. It stops at the
// first failure, a KindInvalid error naming the command and its exit code;
// the command's output is already in the log.
func (b *Builder) Migrate(ctx context.Context, j Job) error {
	for _, c := range j.Config.Database.Migrate {
		if err := b.run(ctx, j, "migration", c, b.env(j.Env...), b.opts.MigrateTimeout); err != nil {
			return err
		}
	}
	return nil
}
