package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// rootInstallScripts are the app's own package.json scripts that "npm ci"
// runs once node_modules is installed, in npm's order. A cache hit skips
// "npm ci", so it runs them itself: they often generate code from files
// the lockfile does not cover (prisma generate).
var rootInstallScripts = []string{"preinstall", "install", "postinstall", "prepublish", "preprepare", "prepare", "postprepare"}

func (b *Builder) installNode(ctx context.Context, j Job) error {
	data, err := os.ReadFile(filepath.Join(j.Dir, "package.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return hangar.Errorf(hangar.KindInvalid, "configuration: package.json not found: a node app needs one at the root of its folder")
	}
	if err != nil {
		return fmt.Errorf("read package.json: %w", err)
	}
	var pkg struct {
		Scripts map[string]any `json:"scripts"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return hangar.Errorf(hangar.KindInvalid, "configuration: package.json is not valid JSON: %v", err)
	}
	script := func(name string) string {
		s, _ := pkg.Scripts[name].(string)
		return s
	}

	env, err := b.npmEnv(&j)
	if err != nil {
		return err
	}
	// npm prefers npm-shrinkwrap.json when both exist.
	var lockfile string
	for _, name := range []string{"npm-shrinkwrap.json", "package-lock.json"} {
		if exists(filepath.Join(j.Dir, name)) {
			lockfile = name
			break
		}
	}

	switch {
	case lockfile == "":
		// npm install resolves versions afresh: nothing to key a cache on.
		if err := b.run(ctx, j, "configuration", "npm install", env, b.opts.CommandTimeout); err != nil {
			return err
		}
	default:
		key := b.nodeCacheKey(ctx, j, env, lockfile, script)
		if key != "" && b.restoreNodeModules(ctx, j, key) {
			for _, s := range rootInstallScripts {
				if script(s) == "" {
					continue
				}
				// --ignore-scripts: run s alone, as npm ci does, not its pre and
				// post scripts, which the loop runs in their turn.
				if err := b.run(ctx, j, "configuration", "npm run --ignore-scripts "+s, env, b.opts.CommandTimeout); err != nil {
					return err
				}
			}
			break
		}
		if err := b.run(ctx, j, "configuration", "npm ci", env, b.opts.CommandTimeout); err != nil {
			return err
		}
		if key != "" {
			b.saveNodeModules(ctx, j, key)
		}
	}
	if script("build") != "" {
		if err := b.run(ctx, j, "configuration", "npm run build", env, b.opts.CommandTimeout); err != nil {
			return err
		}
	}
	return nil
}

// npmEnv returns the environment of npm commands and adds the npm cache's
// mount to j.
func (b *Builder) npmEnv(j *Job) ([]string, error) {
	if b.opts.NPMCacheDir == "" {
		return b.env(), nil
	}
	host := b.appCache(b.opts.NPMCacheDir, *j)
	if err := os.MkdirAll(host, 0o755); err != nil {
		return nil, err
	}
	dir, m := b.mount(host, "npm", true)
	j.mounts = append(j.mounts, m)
	return b.env("npm_config_cache=" + dir), nil
}

// Prune removes what only the build and the migrations needed from the
// app folder, before executors run it: a node app's development
// dependencies ("npm prune --omit=dev"), when package.json declares any.
// Other languages have nothing to prune. A failing command is a
// KindInvalid error naming it.
func (b *Builder) Prune(ctx context.Context, j Job) error {
	if j.Config.Language != hangar.LanguageNode && j.Config.Language != "" {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(j.Dir, "package.json"))
	if err != nil {
		return fmt.Errorf("read package.json: %w", err)
	}
	var pkg struct {
		DevDependencies map[string]any `json:"devDependencies"`
	}
	if json.Unmarshal(data, &pkg) == nil && len(pkg.DevDependencies) == 0 {
		logf(j, "no devDependencies: nothing to prune")
		return nil
	}
	env, err := b.npmEnv(&j)
	if err != nil {
		return err
	}
	return b.run(ctx, j, "configuration", "npm prune --omit=dev", env, b.opts.CommandTimeout)
}

// nodeCacheKey returns the cache key of the node_modules that "npm ci"
// installs for the app, or "" when the cache is disabled or the key cannot
// be computed. The key covers what decides that tree: the lockfile (which
// npm ci requires to match package.json), the app's .npmrc, the app's own
// install scripts, the node and npm major versions (native addons are
// built for one node ABI) and the operator's npm settings in Options.Env.
func (b *Builder) nodeCacheKey(ctx context.Context, j Job, env []string, lockfile string, script func(string) string) string {
	if b.opts.CacheDir == "" {
		return ""
	}
	lock, err := os.ReadFile(filepath.Join(j.Dir, lockfile))
	if err != nil {
		b.cacheFailed(ctx, j, "read "+lockfile, err)
		return ""
	}
	npmrc, err := os.ReadFile(filepath.Join(j.Dir, ".npmrc"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.cacheFailed(ctx, j, "read .npmrc", err)
		return ""
	}
	var scripts strings.Builder
	for _, s := range rootInstallScripts {
		fmt.Fprintf(&scripts, "%s=%q\n", s, script(s))
	}
	var versions []string
	for _, tool := range []string{"node", "npm"} {
		v, err := b.toolVersion(ctx, j, env, tool)
		if err != nil {
			// npm ci will fail the same way, and say why in the log.
			b.cacheFailed(ctx, j, tool+" --version", err)
			return ""
		}
		versions = append(versions, tool+" "+v)
	}
	versions = append(versions, envWithPrefix(b.opts.Env, "npm_config_", "NPM_CONFIG_")...)
	return cacheKey([]byte("node"), lock, npmrc, []byte(scripts.String()), []byte(strings.Join(versions, "\n")))
}

// restoreNodeModules replaces the app's node_modules with the cached one
// and reports whether it did. On a miss or a failed copy, the app folder
// is left without node_modules, as npm ci leaves it.
func (b *Builder) restoreNodeModules(ctx context.Context, j Job, key string) bool {
	entry, ok := b.cacheEntry("node", key)
	if !ok {
		logf(j, "dependencies not cached yet (cache %s): installing them", shortKey(key))
		return false
	}
	nm := filepath.Join(j.Dir, "node_modules")
	err := removeTree(nm)
	if err == nil && exists(filepath.Join(entry, "node_modules")) {
		err = copyTree(nm, filepath.Join(entry, "node_modules"))
	}
	if err != nil {
		b.cacheFailed(ctx, j, "restore node_modules", err)
		_ = removeTree(nm)
		b.dropEntry("node", key)
		return false
	}
	touch(entry)
	logf(j, "dependencies unchanged (cache %s): reusing node_modules", shortKey(key))
	return true
}

// saveNodeModules caches the app's freshly installed node_modules under
// key.
func (b *Builder) saveNodeModules(ctx context.Context, j Job, key string) {
	staged, err := b.stageEntry("node", key)
	if err != nil {
		b.cacheFailed(ctx, j, "save node_modules", err)
		return
	}
	nm := filepath.Join(j.Dir, "node_modules")
	if exists(nm) {
		err = copyTree(filepath.Join(staged, "node_modules"), nm)
	}
	if err == nil {
		err = b.commitEntry("node", key, staged)
	}
	if err != nil {
		_ = removeTree(staged)
		b.cacheFailed(ctx, j, "save node_modules", err)
		return
	}
	logf(j, "cached node_modules for the next deploys (cache %s)", shortKey(key))
}

// cacheFailed reports a cache failure: the details to the operator's log,
// a mention to the deploy log, which users read. The install goes on
// without the cache.
func (b *Builder) cacheFailed(ctx context.Context, j Job, action string, err error) {
	b.opts.Logger.WarnContext(ctx, "dependency cache", "action", action, "dir", j.Dir, "err", err)
	logf(j, "dependency cache not used (%s failed)", action)
}

// toolVersion returns the major version of tool (node, npm) that j's
// commands run. On images, the toolchain is the image cache's, the same
// for every app and first in PATH: it is asked once, not at every deploy.
func (b *Builder) toolVersion(ctx context.Context, j Job, env []string, tool string) (string, error) {
	if b.layers != nil {
		b.mu.Lock()
		v, ok := b.versions[tool]
		b.mu.Unlock()
		if ok {
			return v, nil
		}
	}
	var out strings.Builder
	err := b.runner.Run(ctx, Cmd{Dir: j.Dir, Shell: tool + " --version", Env: env, Stdout: &out, Timeout: b.opts.CommandTimeout, Image: j.image(), Mounts: j.mounts})
	if err != nil {
		return "", err
	}
	v := majorVersion(out.String())
	if b.layers != nil {
		b.mu.Lock()
		b.versions[tool] = v
		b.mu.Unlock()
	}
	return v, nil
}
