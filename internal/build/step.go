package build

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// StepRunner runs build commands as steps of a runtime.StepRunner (the
// sandbox): each in a container of its own on the app's image, never on
// the host. It also keeps the apps' setup layers, which makes a Builder
// reuse a layer whose setup commands are unchanged.
type StepRunner struct {
	Steps runtime.StepRunner
}

var (
	_ Runner     = StepRunner{}
	_ layerStore = StepRunner{}
)

// dbPort is where a step reaches its database relay, on its gateway, as
// executors do.
const dbPort = 5432

// Run implements Runner.
func (r StepRunner) Run(ctx context.Context, c Cmd) error {
	var id [6]byte
	_, _ = rand.Read(id[:])
	s := runtime.Step{
		ID: "b" + hex.EncodeToString(id[:]), Image: c.Image, WriteLayer: c.WriteLayer, Dir: c.Dir,
		Args: []string{"/bin/sh", "-c", c.Shell}, Env: c.Env, Mounts: c.Mounts, Timeout: c.Timeout, Stdout: c.Stdout,
	}
	if c.DB != nil {
		s.Forwards = []runtime.Forward{{ListenPort: dbPort, Target: c.DB.Target}}
		s.EnvFor = func(gateway string) []string { return c.DB.Env(gateway, dbPort) }
	}
	code, err := r.Steps.RunStep(ctx, s)
	switch {
	case err != nil:
		return err
	case code > 128 && code < 128+65:
		// 9 is also what the kernel sends past the memory limit.
		return hangar.Errorf(hangar.KindInvalid, "command %q was killed by signal %d", c.Shell, code-128)
	case code != 0:
		return hangar.Errorf(hangar.KindInvalid, "command %q exited with code %d", c.Shell, code)
	}
	return nil
}

// LayerReady reports whether img's setup layer is complete.
func (r StepRunner) LayerReady(ctx context.Context, img runtime.Image) (bool, error) {
	return r.Steps.LayerReady(ctx, img)
}

// ResetLayer empties img's setup layer.
func (r StepRunner) ResetLayer(ctx context.Context, img runtime.Image) error {
	return r.Steps.ResetLayer(ctx, img)
}

// CommitLayer marks img's setup layer complete.
func (r StepRunner) CommitLayer(ctx context.Context, img runtime.Image) error {
	return r.Steps.CommitLayer(ctx, img)
}

// layerStore is what a Runner that runs commands on images offers: the
// apps' setup layers.
type layerStore interface {
	LayerReady(ctx context.Context, img runtime.Image) (bool, error)
	ResetLayer(ctx context.Context, img runtime.Image) error
	CommitLayer(ctx context.Context, img runtime.Image) error
}
