// Package build is the build half of Hangar's deploy pipeline: it unpacks an
// uploaded archive safely, reads the app's dbos-config.yaml, runs the app's
// setup commands, installs its dependencies and runs its migrations. Each
// step is a separate function with its own file and test, so the deploy
// orchestrator can record each one as a durable step. Dependency installs
// reuse a cache keyed by the lockfile (depcache.go), so a redeploy with
// unchanged dependencies does not install them again.
//
// It imports only internal/hangar; internal/deploy and the composition roots
// import it.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// Options configures a Builder. The zero value is usable: every field's zero
// value means its documented default.
type Options struct {
	// Env is the base environment of every build command (PATH, HOME, …).
	// Build commands never inherit Hangar's own environment, which holds its
	// secrets. Default: PATH with the usual system directories,
	// /opt/hangar/node/bin and /usr/local/go/bin, HOME=os.TempDir(),
	// LANG=C.UTF-8, and NODE_EXTRA_CA_CERTS and PIP_CERT naming the
	// system's CA bundle.
	Env []string
	// NPMCacheDir holds npm's cache (npm_config_cache), one folder per
	// organization, so that installing unchanged dependencies again is fast.
	// Default "": npm's own default under $HOME.
	NPMCacheDir string
	// PipIndexURL is the Python package index pip installs from
	// (PIP_INDEX_URL). Default "": pip's default, PyPI.
	PipIndexURL string
	// PipFindLinks is a space-separated list of URLs or directories pip
	// searches for packages (PIP_FIND_LINKS). Default "": none.
	PipFindLinks string
	// CacheDir holds the dependency cache, one partition per organization:
	// node_modules keyed by the lockfile, Python wheels keyed by
	// requirements.txt, and Go's build and module caches, so that a
	// redeploy with unchanged dependencies does not install them again
	// (SPEC §3; depcache.go). Hangar must be the only writer: build
	// commands get verified copies, never the cache itself. Default "": no
	// cache.
	CacheDir string
	// GoProxy is the Go module proxy of go builds (GOPROXY). Default "":
	// Go's default, proxy.golang.org.
	GoProxy string
	// Logger receives what the deploy log only mentions, such as why the
	// dependency cache could not be used. Default: discard.
	Logger *slog.Logger
	// CommandTimeout bounds each setup and install command. Default 30
	// minutes.
	CommandTimeout time.Duration
	// MigrateTimeout bounds each migration command. Default 10 minutes.
	MigrateTimeout time.Duration
	// MaxInstalledBytes caps the size of the app folder once its
	// dependencies are installed. Default 2 GiB (SPEC §3).
	MaxInstalledBytes int64
	// DiskBounded says that each app folder is a filesystem of its own
	// with MaxInstalledBytes of room while it is built (docs/disk.md): the
	// kernel holds the build to the limit as it writes, so InstallDeps
	// does not walk the folder afterwards to measure it. Default false:
	// it does.
	DiskBounded bool
	// CacheDisks, when set, keeps each app's npm and Go caches in a
	// sandbox on a disk of its own, bounded like the installed app; a full
	// one starts over at the next build (image.Disks). Default nil: plain
	// folders.
	CacheDisks CacheDisks
}

// CacheDisks keeps cache folders on disks (image.Disks).
type CacheDisks interface {
	// Ensure makes dir a mounted disk, a new one when it is not one yet
	// or when it is full.
	Ensure(ctx context.Context, dir string) error
	// Remove removes dir and its disk.
	Remove(ctx context.Context, dir string) error
}

// Builder runs the configuration and migration steps of a deploy. Create it
// with NewBuilder; it is safe for concurrent use by several jobs.
type Builder struct {
	opts   Options
	runner Runner
	layers layerStore // nil when commands run on the host

	mu       sync.Mutex
	versions map[string]string // toolVersion's answers on images
}

// NewBuilder returns a Builder that runs commands through r (ExecRunner in
// production).
func NewBuilder(opts Options, r Runner) *Builder {
	if opts.Env == nil {
		opts.Env = []string{
			// /opt/hangar/node/bin holds the image's Node.js.
			"PATH=/opt/hangar/node/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			"HOME=" + os.TempDir(),
			"LANG=C.UTF-8",
			// Node and pip bring their own CA lists: make them trust the
			// system's, where the operator's own CAs are.
			"NODE_EXTRA_CA_CERTS=" + systemCAs,
			"PIP_CERT=" + systemCAs,
		}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.CommandTimeout == 0 {
		opts.CommandTimeout = 30 * time.Minute
	}
	if opts.MigrateTimeout == 0 {
		opts.MigrateTimeout = 10 * time.Minute
	}
	if opts.MaxInstalledBytes == 0 {
		opts.MaxInstalledBytes = 2 << 30
	}
	b := &Builder{opts: opts, runner: r, versions: map[string]string{}}
	b.layers, _ = r.(layerStore)
	return b
}

// systemCAs is Debian's CA bundle, in the images as on the host.
const systemCAs = "/etc/ssl/certs/ca-certificates.crt"

// Job is one build: an unpacked app and where its output goes.
type Job struct {
	// Dir is the app folder: the unpacked archive.
	Dir string
	// Config is the app's parsed dbos-config.yaml.
	Config Config
	// OrgID is the stable ID of the app's organization: the dependency
	// cache is partitioned by it. Empty means no dependency cache.
	OrgID string
	// Env is added to the environment of the app's own commands
	// (runtimeConfig.setup and database.migrate): the caller passes the app's
	// database variables (DBOS_DATABASE_URL, …). Dependency installs do not
	// get it: they run third-party code from package registries.
	Env []string
	// Log receives a header line per command and the commands' output (the
	// deploy log). Nil discards it.
	Log io.Writer
	// App is the app's ID: a sandboxing Runner runs its commands on its
	// image, in its uid range.
	App string
	// DB is how migrations reach the app's database.
	DB *DB

	mounts []runtime.Mount // given to each command (the install's caches)
	layer  string          // the setup layer, when Dir is not the app folder
}

// image is the image the job's commands run on.
func (j Job) image() runtime.Image {
	if j.layer != "" {
		return runtime.Image{AppID: j.App, Layer: j.layer}
	}
	return runtime.Image{AppID: j.App, Layer: SetupLayer(j.Dir, j.Config)}
}

// in returns j run in folder dir (a clean install's), on j's image.
func (j Job) in(dir string) Job {
	j.layer = j.image().Layer
	j.Dir = dir
	return j
}

func (j Job) log() io.Writer {
	if j.Log == nil {
		return io.Discard
	}
	return j.Log
}

// run runs one shell command of step in the app folder, after writing its
// header to the log.
func (b *Builder) run(ctx context.Context, j Job, step, shell string, env []string, timeout time.Duration) error {
	return b.runCmd(ctx, j, step, Cmd{Shell: shell, Env: env, Timeout: timeout})
}

// runCmd runs c in the app folder on the job's image, after writing its
// header to the log.
func (b *Builder) runCmd(ctx context.Context, j Job, step string, c Cmd) error {
	fmt.Fprintf(j.log(), "==> %s: %s\n", step, c.Shell)
	c.Dir, c.Stdout, c.Image = j.Dir, j.log(), j.image()
	c.Mounts = append(c.Mounts, j.mounts...)
	err := b.runner.Run(ctx, c)
	if err == nil {
		return nil
	}
	if diskFull(j.Dir) {
		return hangar.Errorf(hangar.KindTooLarge,
			"%s: command %q filled the app's disk: an app may install at most %s (its files, dependencies and build output); make the archive or its dependencies smaller, e.g. leave build artifacts and unused packages out",
			step, c.Shell, formatBytes(b.opts.MaxInstalledBytes))
	}
	var e *hangar.Error
	if errors.As(err, &e) {
		return &hangar.Error{Kind: e.Kind, Message: step + ": " + e.Message, Detail: e.Detail}
	}
	return fmt.Errorf("%s: %w", step, err)
}

// mount returns the path under which a command sees host directory dir,
// and the mount that puts it there: dir itself on the host, below
// /tmp/hangar in a sandbox.
func (b *Builder) mount(dir, name string, writable bool) (string, runtime.Mount) {
	target := dir
	if b.layers != nil {
		target = "/tmp/hangar/" + name
	}
	return target, runtime.Mount{Source: dir, Target: target, Writable: writable}
}

// appCache returns, created, the part of a shared, writable cache
// directory that j's commands may write. In a sandbox, that is a
// directory of the app's own: another app's build may run at the same
// time, and Hangar hands a writable mount to the step's uid range first,
// which must never race with another tenant's writes. With CacheDisks, it
// is a disk, bounded.
func (b *Builder) appCache(ctx context.Context, dir string, j Job) (string, error) {
	if b.layers == nil || j.App == "" {
		return dir, os.MkdirAll(dir, 0o755)
	}
	host := filepath.Join(dir, "apps", j.App)
	if b.opts.CacheDisks != nil {
		return host, b.opts.CacheDisks.Ensure(ctx, host)
	}
	return host, os.MkdirAll(host, 0o755)
}

// env returns the base environment followed by extra; later entries win.
func (b *Builder) env(extra ...string) []string {
	return append(append(make([]string, 0, len(b.opts.Env)+len(extra)), b.opts.Env...), extra...)
}

// formatBytes renders a byte count for users: "500 MiB", "1.5 GiB".
func formatBytes(n int64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i, unit := 0, int64(1)
	for i < len(units)-1 && n >= unit<<10 {
		i, unit = i+1, unit<<10
	}
	if n%unit == 0 {
		return fmt.Sprintf("%d %s", n/unit, units[i])
	}
	return fmt.Sprintf("%.1f %s", float64(n)/float64(unit), units[i])
}

// RemoveApp removes the caches that app's builds wrote (npm's, Go's): a
// deleted app leaves nothing behind.
func (b *Builder) RemoveApp(ctx context.Context, app string) error {
	if !validOrgID(app) {
		return nil
	}
	var patterns, dirs []string
	if b.opts.NPMCacheDir != "" {
		patterns = append(patterns, filepath.Join(b.opts.NPMCacheDir, "apps", app), filepath.Join(b.opts.NPMCacheDir, "*", "apps", app))
	}
	if b.opts.CacheDir != "" {
		patterns = append(patterns, filepath.Join(b.opts.CacheDir, "go", "*", "apps", app))
	}
	for _, pattern := range patterns {
		m, err := filepath.Glob(pattern)
		if err != nil {
			return err
		}
		dirs = append(dirs, m...)
	}
	remove := func(_ context.Context, dir string) error { return removeTree(dir) }
	if b.opts.CacheDisks != nil {
		remove = b.opts.CacheDisks.Remove
	}
	for _, d := range dirs {
		if err := remove(ctx, d); err != nil {
			return fmt.Errorf("remove cache %s: %w", d, err)
		}
	}
	return nil
}
