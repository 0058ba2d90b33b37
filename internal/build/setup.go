package build

import (
	"context"
	"fmt"
)

// Setup runs the app's runtimeConfig.setup commands in the app folder, in
// order, with the job's environment. It stops at the first failure, a
// KindInvalid error naming the command and its exit code. With a Runner
// that runs commands on images, their writes outside the app folder land
// in the app's setup layer, and a layer that the same commands already
// wrote on the same base is reused without running them again.
func (b *Builder) Setup(ctx context.Context, j Job) error {
	if len(j.Config.Runtime.Setup) == 0 {
		return nil
	}
	if b.layers == nil {
		for _, c := range j.Config.Runtime.Setup {
			if err := b.run(ctx, j, "setup", c, b.env(j.Env...), b.opts.CommandTimeout); err != nil {
				return err
			}
		}
		return nil
	}
	img := j.image()
	ready, err := b.layers.LayerReady(ctx, img)
	if err != nil {
		return fmt.Errorf("setup layer: %w", err)
	}
	if ready {
		fmt.Fprintf(j.log(), "==> setup: commands unchanged (layer %s): reusing the image they built\n", img.Layer)
		return nil
	}
	if err := b.layers.ResetLayer(ctx, img); err != nil {
		return fmt.Errorf("setup layer: %w", err)
	}
	for _, c := range j.Config.Runtime.Setup {
		cmd := Cmd{Shell: c, Env: b.env(append([]string{"DEBIAN_FRONTEND=noninteractive"}, j.Env...)...), Timeout: b.opts.CommandTimeout, WriteLayer: true}
		if err := b.runCmd(ctx, j, "setup", cmd); err != nil {
			return err
		}
	}
	return b.layers.CommitLayer(ctx, img)
}
