package build

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// installPython creates the venv and installs requirements.txt into it.
// With the cache, a miss builds every wheel the requirements need in a
// fresh tree with its own venv, holding only the requirements files, into
// a new entry of the org's cache ("pip wheel"); the app then installs from
// a verified copy of that entry, without touching the index. Wheels rather
// than the venv are cached because a venv embeds its absolute path
// (scripts' shebangs, pyvenv.cfg) and cannot be copied to another folder.
func (b *Builder) installPython(ctx context.Context, j Job) error {
	if err := b.run(ctx, j, "configuration", "python3 -m venv .venv", b.env(), b.opts.CommandTimeout); err != nil {
		return err
	}
	if !exists(filepath.Join(j.Dir, "requirements.txt")) {
		logf(j, "no requirements.txt, no dependencies to install")
		return nil
	}
	// Environment variables rather than flags: nothing to quote for the shell.
	local := b.env("PIP_DISABLE_PIP_VERSION_CHECK=1")
	index := local
	if b.opts.PipIndexURL != "" {
		index = append(index, "PIP_INDEX_URL="+b.opts.PipIndexURL)
	}
	if b.opts.PipFindLinks != "" {
		index = append(index, "PIP_FIND_LINKS="+b.opts.PipFindLinks)
	}
	const install = ".venv/bin/pip install -r requirements.txt"
	cache := b.orgCache("python", j)
	if cache == "" {
		return b.run(ctx, j, "configuration", install, index, b.opts.CommandTimeout)
	}
	key, files := b.pythonCacheKey(ctx, j)
	if key == "" {
		return b.run(ctx, j, "configuration", install, index, b.opts.CommandTimeout)
	}
	// The wheels' copy sits in the app folder only while pip reads it.
	wheels := filepath.Join(j.Dir, wheelsDir)
	defer removeTree(wheels) //nolint:errcheck // a leftover only costs space
	const fromCopy = ".venv/bin/pip install --no-index --find-links " + wheelsDir + " -r requirements.txt"
	for attempt := 0; ; attempt++ {
		if err := removeTree(wheels); err != nil {
			return fmt.Errorf("remove %s: %w", wheelsDir, err)
		}
		entry, hit := cacheEntry(cache, key)
		if !hit {
			logf(j, "dependencies not cached yet (cache %s): building them in a clean tree", shortKey(key))
			filled, err := b.fillWheels(ctx, j, index, cache, key, files)
			if err != nil {
				return err
			}
			if !filled {
				return b.run(ctx, j, "configuration", install, index, b.opts.CommandTimeout)
			}
			logf(j, "cached the wheels for the next deploys (cache %s)", shortKey(key))
		}
		if err := restoreEntry(wheels, entry, "wheels"); err != nil {
			b.cacheFailed(ctx, j, "restore the wheels", err)
			dropEntry(cache, key)
			if hit && attempt == 0 {
				continue
			}
			return b.run(ctx, j, "configuration", install, index, b.opts.CommandTimeout)
		}
		if hit {
			touch(entry)
			logf(j, "dependencies unchanged (cache %s): reusing the wheels built before", shortKey(key))
		}
		err := b.run(ctx, j, "configuration", fromCopy, local, b.opts.CommandTimeout)
		if err == nil || ctx.Err() != nil || !hit || attempt > 0 {
			return err
		}
		// The same requirements installed from these wheels before: the
		// entry no longer suits them. Fill it again.
		b.cacheFailed(ctx, j, "install from the cache", err)
		dropEntry(cache, key)
	}
}

// wheelsDir is the app folder's copy of a cache entry's wheels while pip
// installs them.
const wheelsDir = ".hangar-wheels"

// fillWheels builds the wheels of the requirements files (name → content)
// in a fresh tree with its own venv and commits them as the entry key of
// cache. A failing pip is the install's error; it returns false without
// error when the cache itself failed, and the caller installs without it.
func (b *Builder) fillWheels(ctx context.Context, j Job, env []string, cache, key string, files map[string][]byte) (bool, error) {
	staged, err := stageEntry(cache, key)
	if err != nil {
		b.cacheFailed(ctx, j, "create the cache entry", err)
		return false, nil
	}
	tree := filepath.Join(staged, "tree")
	for name, data := range files {
		if err == nil {
			err = os.MkdirAll(filepath.Dir(filepath.Join(tree, name)), 0o755)
		}
		if err == nil {
			err = os.WriteFile(filepath.Join(tree, name), data, 0o644)
		}
	}
	if err != nil {
		_ = removeTree(staged)
		b.cacheFailed(ctx, j, "prepare the clean install", err)
		return false, nil
	}
	clean := j.in(tree)
	for _, c := range []string{"python3 -m venv .venv", ".venv/bin/pip wheel --wheel-dir wheels -r requirements.txt"} {
		if err := b.run(ctx, clean, "configuration", c, env, b.opts.CommandTimeout); err != nil {
			_ = removeTree(staged)
			return false, err
		}
	}
	err = os.Rename(filepath.Join(tree, "wheels"), filepath.Join(staged, "wheels"))
	if errors.Is(err, fs.ErrNotExist) { // nothing to build
		err = os.Mkdir(filepath.Join(staged, "wheels"), 0o755)
	}
	if err == nil {
		err = removeTree(tree)
	}
	if err == nil {
		err = sealEntry(staged, "wheels")
	}
	if err == nil {
		err = commitEntry(cache, key, staged)
	}
	if err != nil {
		_ = removeTree(staged)
		b.cacheFailed(ctx, j, "save the wheels", err)
		return false, nil
	}
	return true, nil
}

// pythonCacheKey returns the cache key of the wheels requirements.txt
// needs and the requirements files it read, or "" when the cache cannot
// serve these requirements. The key covers the org, the requirements and
// the files they include, the venv's Python version, and where pip looks
// for packages.
func (b *Builder) pythonCacheKey(ctx context.Context, j Job) (string, map[string][]byte) {
	cfg, err := os.ReadFile(filepath.Join(j.Dir, ".venv", "pyvenv.cfg"))
	if err != nil {
		b.cacheFailed(ctx, j, "read .venv/pyvenv.cfg", err)
		return "", nil
	}
	version := pyvenvVersion(cfg)
	root, err := os.OpenRoot(j.Dir)
	if err != nil {
		b.cacheFailed(ctx, j, "read requirements.txt", err)
		return "", nil
	}
	defer root.Close()
	var reqs bytes.Buffer
	files := map[string][]byte{}
	reason, err := readRequirements(root, "requirements.txt", 0, &reqs, files)
	if err != nil {
		b.cacheFailed(ctx, j, "read requirements.txt", err)
		return "", nil
	}
	if reason != "" {
		logf(j, "dependency cache not used: %s", reason)
		return "", nil
	}
	where := strings.Join(append([]string{b.opts.PipIndexURL, b.opts.PipFindLinks}, envWithPrefix(b.opts.Env, "PIP_")...), "\n")
	return cacheKey([]byte("python"), []byte(j.OrgID), []byte(version), reqs.Bytes(), []byte(where)), files
}

// pyvenvVersion returns the Python version a venv's pyvenv.cfg names.
func pyvenvVersion(cfg []byte) string {
	for line := range strings.Lines(string(cfg)) {
		k, v, ok := strings.Cut(line, "=")
		if k = strings.TrimSpace(k); ok && (k == "version" || k == "version_info") {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// maxRequirementsSize bounds the requirements files the cache key reads.
const maxRequirementsSize = 1 << 20

// readRequirements appends the requirements file name (relative to root)
// and the files it includes with -r and -c to out, and records each in
// files. A path out of root, even through a symbolic link, is an error. It returns why caching
// would be wrong for them, or "": requirements whose meaning depends on
// files the cache key does not cover (local paths, editable installs), or
// pinned by hashes that wheels built here from source would not match.
func readRequirements(root *os.Root, name string, depth int, out *bytes.Buffer, files map[string][]byte) (string, error) {
	if depth > 8 {
		return "requirements files include each other too deeply", nil
	}
	if !filepath.IsLocal(name) {
		return "requirements included from outside the app folder (" + name + ")", nil
	}
	fi, err := root.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) && depth > 0 {
		return "", nil // pip will say it is missing
	}
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxRequirementsSize {
		return "requirements in " + name + ", which is not a small regular file", nil
	}
	data, err := root.ReadFile(name)
	if err != nil {
		return "", err
	}
	files[name] = data
	fmt.Fprintf(out, "%d:%s%d:", len(name), name, len(data))
	out.Write(data)
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if slices.ContainsFunc(fields, func(f string) bool { return strings.HasPrefix(f, "--hash") }) {
			return "requirements pinned with --hash (wheels built here from source would not match)", nil
		}
		first := fields[0]
		if opt, arg, ok := requirementsOption(fields); ok {
			switch opt {
			case "-e", "--editable":
				return "an editable requirement (" + arg + ")", nil
			case "-r", "--requirement", "-c", "--constraint":
				if strings.Contains(arg, "://") {
					return "requirements included from a URL (" + arg + ")", nil
				}
				reason, err := readRequirements(root, filepath.Join(filepath.Dir(name), arg), depth+1, out, files)
				if reason != "" || err != nil {
					return reason, err
				}
			}
			continue
		}
		if strings.HasPrefix(first, ".") || strings.HasPrefix(first, "/") || strings.HasPrefix(first, "~") ||
			strings.HasPrefix(first, "file:") || strings.Contains(line, "@ file:") {
			return "a requirement on a local path (" + first + ")", nil
		}
	}
	return "", sc.Err()
}

// requirementsOption splits a requirements line that is an option into
// the option and its argument: "-r x", "-rx", "--requirement=x".
func requirementsOption(fields []string) (opt, arg string, ok bool) {
	f := fields[0]
	if !strings.HasPrefix(f, "-") {
		return "", "", false
	}
	if opt, arg, ok := strings.Cut(f, "="); ok {
		return opt, arg, true
	}
	if len(fields) > 1 {
		return f, fields[1], true
	}
	if !strings.HasPrefix(f, "--") && len(f) > 2 {
		return f[:2], f[2:], true
	}
	return f, "", true
}

// envWithPrefix returns the entries of env whose names start with one of
// prefixes, sorted.
func envWithPrefix(env []string, prefixes ...string) []string {
	var out []string
	for _, e := range env {
		for _, p := range prefixes {
			if strings.HasPrefix(e, p) {
				out = append(out, e)
				break
			}
		}
	}
	slices.Sort(out)
	return out
}
