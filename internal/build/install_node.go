package build

import (
	"bytes"
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
// runs once node_modules is installed, in npm's order. With the cache,
// node_modules comes from "npm ci --ignore-scripts", so Hangar runs them
// itself, after "npm rebuild" has run the dependencies' install scripts.
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
		Scripts    map[string]any `json:"scripts"`
		Workspaces any            `json:"workspaces"`
	}
	if err := json.Unmarshal(data, &pkg); err != nil {
		return hangar.Errorf(hangar.KindInvalid, "configuration: package.json is not valid JSON: %v", err)
	}
	script := func(name string) string {
		s, _ := pkg.Scripts[name].(string)
		return s
	}

	env, err := b.npmEnv(ctx, &j)
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
		cached, err := b.cachedNodeModules(ctx, j, env, lockfile, pkg.Workspaces != nil, script)
		if err != nil {
			return err
		}
		if !cached {
			if err := b.run(ctx, j, "configuration", "npm ci", env, b.opts.CommandTimeout); err != nil {
				return err
			}
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
func (b *Builder) npmEnv(ctx context.Context, j *Job) ([]string, error) {
	if b.opts.NPMCacheDir == "" {
		return b.env(), nil
	}
	// npm's own cache is per org (its index is not verified), and per app
	// within it in a sandbox.
	base := b.opts.NPMCacheDir
	if validOrgID(j.OrgID) {
		base = filepath.Join(base, j.OrgID)
	}
	host, err := b.appCache(ctx, base, *j)
	if err != nil {
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
	prunes, err := Prunes(j)
	if err != nil || !prunes {
		if err == nil && j.Config.Language == hangar.LanguageNode {
			logf(j, "no devDependencies: nothing to prune")
		}
		return err
	}
	env, err := b.npmEnv(ctx, &j)
	if err != nil {
		return err
	}
	return b.run(ctx, j, "configuration", "npm prune --omit=dev", env, b.opts.CommandTimeout)
}

// Prunes reports whether Prune would change the job's app folder: a node
// app whose package.json declares development dependencies (or cannot be
// parsed, so that npm says what is wrong).
func Prunes(j Job) (bool, error) {
	if j.Config.Language != hangar.LanguageNode && j.Config.Language != "" {
		return false, nil
	}
	data, err := os.ReadFile(filepath.Join(j.Dir, "package.json"))
	if err != nil {
		return false, fmt.Errorf("read package.json: %w", err)
	}
	var pkg struct {
		DevDependencies map[string]any `json:"devDependencies"`
	}
	if json.Unmarshal(data, &pkg) == nil && len(pkg.DevDependencies) == 0 {
		return false, nil
	}
	return true, nil
}

// cachedNodeModules installs node_modules from the org's cache, filling it
// on a miss, then runs the install scripts of the dependencies and of the
// app on the app's copy. It returns false, having changed nothing, when
// the cache cannot serve the app: the caller runs "npm ci".
func (b *Builder) cachedNodeModules(ctx context.Context, j Job, env []string, lockfile string, workspaces bool, script func(string) string) (bool, error) {
	cache := b.orgCache("node", j)
	if cache == "" {
		return false, nil
	}
	lock, err := readInDir(j.Dir, lockfile)
	if err != nil {
		b.cacheFailed(ctx, j, "read "+lockfile, err)
		return false, nil
	}
	rebuild, reason := lockInfo(lock)
	if workspaces {
		reason = "package.json declares workspaces"
	}
	if reason != "" {
		logf(j, "dependency cache not used: %s", reason)
		return false, nil
	}
	key := b.nodeCacheKey(ctx, j, env, lock)
	if key == "" {
		return false, nil
	}
	nm := filepath.Join(j.Dir, "node_modules")
	if err := removeTree(nm); err != nil {
		b.cacheFailed(ctx, j, "remove node_modules", err)
		return false, nil
	}
	entry, hit := cacheEntry(cache, key)
	if hit {
		err := restoreEntry(nm, entry, "node_modules")
		if err == nil {
			touch(entry)
			logf(j, "dependencies unchanged (cache %s): reusing node_modules", shortKey(key))
		} else {
			b.cacheFailed(ctx, j, "restore node_modules", err)
			dropEntry(cache, key)
			hit = false
		}
	}
	if !hit {
		logf(j, "dependencies not cached yet (cache %s): installing them into a clean tree", shortKey(key))
		filled, err := b.fillNodeModules(ctx, j, env, cache, key, lockfile)
		if err != nil || !filled {
			return false, err
		}
		entry, _ = cacheEntry(cache, key)
		if err := restoreEntry(nm, entry, "node_modules"); err != nil {
			b.cacheFailed(ctx, j, "restore node_modules", err)
			return false, nil
		}
		logf(j, "cached node_modules for the next deploys (cache %s)", shortKey(key))
	}
	// The scripts "npm ci --ignore-scripts" skipped, on the app's own copy.
	scripts := rootInstallScripts
	if rebuild {
		if err := b.run(ctx, j, "configuration", "npm rebuild --foreground-scripts", env, b.opts.CommandTimeout); err != nil {
			return true, err
		}
		// npm rebuild ran the app's preinstall, install and postinstall too
		// (--foreground-scripts: with their output in the deploy log, as
		// npm ci shows it).
		scripts = scripts[3:]
	}
	for _, s := range scripts {
		if script(s) == "" {
			continue
		}
		// --ignore-scripts: run s alone, as npm ci does, not its pre and
		// post scripts, which the loop runs in their turn.
		if err := b.run(ctx, j, "configuration", "npm run --ignore-scripts "+s, env, b.opts.CommandTimeout); err != nil {
			return true, err
		}
	}
	return true, nil
}

// fillNodeModules runs "npm ci --ignore-scripts" in a fresh tree that holds
// only package.json, the lockfile and .npmrc, so no code of the app or its
// dependencies has run in what it caches, and commits the result as the
// entry key of cache. A failing npm is the install's error; it returns
// false without error when the cache itself failed, and the caller
// installs without it.
func (b *Builder) fillNodeModules(ctx context.Context, j Job, env []string, cache, key, lockfile string) (bool, error) {
	staged, err := stageEntry(cache, key)
	if err != nil {
		b.cacheFailed(ctx, j, "create the cache entry", err)
		return false, nil
	}
	tree := filepath.Join(staged, "tree")
	err = os.Mkdir(tree, 0o755)
	for _, name := range []string{"package.json", lockfile, ".npmrc"} {
		if err == nil && exists(filepath.Join(j.Dir, name)) {
			err = copyRegular(filepath.Join(tree, name), j.Dir, name)
		}
	}
	if err != nil {
		_ = removeTree(staged)
		b.cacheFailed(ctx, j, "prepare the clean install", err)
		return false, nil
	}
	clean := j.in(tree)
	if err := b.run(ctx, clean, "configuration", "npm ci --ignore-scripts", env, b.opts.CommandTimeout); err != nil {
		_ = removeTree(staged)
		return false, err
	}
	nm := filepath.Join(staged, "node_modules")
	err = os.Rename(filepath.Join(tree, "node_modules"), nm)
	if errors.Is(err, fs.ErrNotExist) { // no dependencies
		err = os.Mkdir(nm, 0o755)
	}
	if err == nil {
		err = removeTree(tree)
	}
	if err == nil {
		err = sealEntry(staged, "node_modules")
	}
	if err == nil {
		err = commitEntry(cache, key, staged)
	}
	if err != nil {
		_ = removeTree(staged)
		b.cacheFailed(ctx, j, "save node_modules", err)
		return false, nil
	}
	return true, nil
}

// lockInfo reads a lockfile: whether a dependency has install scripts
// (which "npm rebuild" runs; unknown, so true, before lockfile version 2),
// and why its tree cannot be installed apart from the app folder, or "".
func lockInfo(lock []byte) (rebuild bool, reason string) {
	var l struct {
		Version  int `json:"lockfileVersion"`
		Packages map[string]struct {
			HasInstallScript bool `json:"hasInstallScript"`
			Link             bool `json:"link"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(lock, &l); err != nil {
		return true, "the lockfile is not valid JSON"
	}
	if bytes.Contains(lock, []byte(`"file:`)) {
		return true, "the lockfile names local packages (file:)"
	}
	rebuild = l.Version < 2
	for _, p := range l.Packages {
		if p.Link {
			return true, "the lockfile links local packages"
		}
		rebuild = rebuild || p.HasInstallScript
	}
	return rebuild, ""
}

// nodeCacheKey returns the cache key of the node_modules that "npm ci
// --ignore-scripts" installs for the app, or "" when it cannot be
// computed. The key covers what decides that tree: the org, the lockfile
// (which npm ci requires to match package.json), the app's .npmrc, the
// node and npm major versions (native addons are built for one node ABI)
// and the operator's npm settings in Options.Env.
func (b *Builder) nodeCacheKey(ctx context.Context, j Job, env []string, lock []byte) string {
	npmrc, err := os.ReadFile(filepath.Join(j.Dir, ".npmrc"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		b.cacheFailed(ctx, j, "read .npmrc", err)
		return ""
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
	return cacheKey([]byte("node"), []byte(j.OrgID), lock, npmrc, []byte(strings.Join(versions, "\n")))
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
