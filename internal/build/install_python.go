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

	"github.com/hangar-oss/hangar/internal/runtime"
)

// installPython creates the venv and installs requirements.txt into it.
// With the cache, a miss builds every wheel the requirements need into a
// new cache entry ("pip wheel") and installs from there, and a hit
// installs from that entry without touching the index. Wheels rather than
// the venv are cached because a venv embeds its absolute path (scripts'
// shebangs, pyvenv.cfg) and cannot be copied to another app folder.
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
	key := b.pythonCacheKey(ctx, j)
	if key == "" {
		return b.run(ctx, j, "configuration", install, index, b.opts.CommandTimeout)
	}
	fromCache := func(dir string) string {
		return ".venv/bin/pip install --no-index --find-links " + shellQuote(dir) + " -r requirements.txt"
	}

	if entry, ok := b.cacheEntry("python", key); ok {
		touch(entry)
		logf(j, "dependencies unchanged (cache %s): reusing the wheels built before", shortKey(key))
		dir, m := b.mount(entry, "wheels", false)
		err := b.runCmd(ctx, j, "configuration", Cmd{Shell: fromCache(dir), Env: local, Timeout: b.opts.CommandTimeout, Mounts: []runtime.Mount{m}})
		if err == nil || ctx.Err() != nil {
			return err
		}
		// The same requirements installed from these wheels before: the entry
		// is damaged. Fill it again.
		b.cacheFailed(ctx, j, "install from the cache", err)
		b.dropEntry("python", key)
	} else {
		logf(j, "dependencies not cached yet (cache %s): installing them", shortKey(key))
	}
	staged, err := b.stageEntry("python", key)
	if err != nil {
		b.cacheFailed(ctx, j, "create the cache entry", err)
		return b.run(ctx, j, "configuration", install, index, b.opts.CommandTimeout)
	}
	dir, m := b.mount(staged, "wheels", true)
	for _, c := range []struct {
		shell string
		env   []string
	}{
		{".venv/bin/pip wheel --wheel-dir " + shellQuote(dir) + " -r requirements.txt", index},
		{fromCache(dir), local},
	} {
		if err := b.runCmd(ctx, j, "configuration", Cmd{Shell: c.shell, Env: c.env, Timeout: b.opts.CommandTimeout, Mounts: []runtime.Mount{m}}); err != nil {
			_ = removeTree(staged)
			return err
		}
	}
	if err := b.commitEntry("python", key, staged); err != nil {
		b.cacheFailed(ctx, j, "save the wheels", err)
		return nil
	}
	logf(j, "cached the wheels for the next deploys (cache %s)", shortKey(key))
	return nil
}

// pythonCacheKey returns the cache key of the wheels requirements.txt
// needs, or "" when the cache is disabled or cannot serve these
// requirements. The key covers the requirements and the files they
// include, the venv's Python version, and where pip looks for packages.
func (b *Builder) pythonCacheKey(ctx context.Context, j Job) string {
	if b.opts.CacheDir == "" {
		return ""
	}
	cfg, err := os.ReadFile(filepath.Join(j.Dir, ".venv", "pyvenv.cfg"))
	if err != nil {
		b.cacheFailed(ctx, j, "read .venv/pyvenv.cfg", err)
		return ""
	}
	version := pyvenvVersion(cfg)
	var reqs bytes.Buffer
	reason, err := readRequirements(j.Dir, "requirements.txt", 0, &reqs)
	if err != nil {
		b.cacheFailed(ctx, j, "read requirements.txt", err)
		return ""
	}
	if reason != "" {
		logf(j, "dependency cache not used: %s", reason)
		return ""
	}
	where := strings.Join(append([]string{b.opts.PipIndexURL, b.opts.PipFindLinks}, envWithPrefix(b.opts.Env, "PIP_")...), "\n")
	return cacheKey([]byte("python"), []byte(version), reqs.Bytes(), []byte(where))
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

// readRequirements appends the requirements file name (relative to dir)
// and the files it includes with -r and -c to out. It returns why caching
// would be wrong for them, or "": requirements whose meaning depends on
// files the cache key does not cover (local paths, editable installs), or
// pinned by hashes that wheels built here from source would not match.
func readRequirements(dir, name string, depth int, out *bytes.Buffer) (string, error) {
	if depth > 8 {
		return "requirements files include each other too deeply", nil
	}
	if !filepath.IsLocal(name) {
		return "requirements included from outside the app folder (" + name + ")", nil
	}
	fi, err := os.Lstat(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) && depth > 0 {
		return "", nil // pip will say it is missing
	}
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() || fi.Size() > maxRequirementsSize {
		return "requirements in " + name + ", which is not a small regular file", nil
	}
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
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
				reason, err := readRequirements(dir, filepath.Join(filepath.Dir(name), arg), depth+1, out)
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
