package build

import "context"

// Setup runs the app's runtimeConfig.setup commands in the app folder, in
// order, with the job's environment. It stops at the first failure, a
// KindInvalid error naming the command and its exit code.
func (b *Builder) Setup(ctx context.Context, j Job) error {
	for _, c := range j.Config.Runtime.Setup {
		if err := b.run(ctx, j, "setup", c, b.env(j.Env...), b.opts.CommandTimeout); err != nil {
			return err
		}
	}
	return nil
}
