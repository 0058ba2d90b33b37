package runtime

import (
	"context"
	"io"
	"time"
)

// Image names the root filesystem a sandboxing driver runs a process on
// (docs/images.md): the base image with the layer that app AppID's setup
// wrote. Drivers that run on the host's root filesystem ignore it.
type Image struct {
	// AppID is the app the layer (and the uid range of its build steps)
	// belongs to.
	AppID string
	// Layer names the app's setup layer, a digest of its setup commands;
	// "" for none.
	Layer string
}

// Step is a build command that a StepRunner runs in a container of its own:
// root inside is the app's own uid range, it writes only its app folder
// (seen at AppDir) and, when WriteLayer, its image layer.
type Step struct {
	// ID names the step's container: 1 to 40 characters of a-z, 0-9 and -,
	// unique among the steps running at once.
	ID string
	// Image is what the step runs on.
	Image Image
	// WriteLayer makes the step's writes to its root filesystem land in
	// Image.Layer (setup).
	WriteLayer bool
	// Dir is the host path of the app folder.
	Dir string
	// Args is the argv; Env the complete environment, to which EnvFor's
	// result is added once the step's gateway is known.
	Args   []string
	Env    []string
	EnvFor func(gateway string) []string
	// Mounts are host directories bound into the step (caches). Their
	// targets must lie in /tmp, the only place besides AppDir where the
	// step's root has room for them.
	Mounts []Mount
	// Forwards are relays the step reaches on its gateway, as executors'.
	Forwards []Forward
	// Timeout bounds the step; zero means only ctx bounds it.
	Timeout time.Duration
	// Stdout receives its standard output and error; nil discards them.
	Stdout io.Writer
}

// AppDir is where steps and executors on an image see their app folder: a
// fixed path, because a Python venv embeds its absolute path.
const AppDir = "/app"

// StepRunner runs build steps in containers and keeps the apps' setup
// layers.
type StepRunner interface {
	// RunStep runs s and returns its exit code, 128+n when signal n killed
	// it. Every process of the step is killed when it ends. It returns
	// KindInvalid for a bad s and for a step killed for running past its
	// Timeout, ctx.Err() when ctx ends first, and an internal error when
	// the step cannot be started.
	RunStep(ctx context.Context, s Step) (exitCode int, err error)
	// LayerReady reports whether img's layer was committed.
	LayerReady(ctx context.Context, img Image) (bool, error)
	// ResetLayer empties img's layer before setup writes it.
	ResetLayer(ctx context.Context, img Image) error
	// CommitLayer marks img's layer complete: steps and executors on img
	// run on it from now on.
	CommitLayer(ctx context.Context, img Image) error
}

// Mount binds host directory Source at Target in a step.
type Mount struct {
	Source, Target string
	Writable       bool
}
