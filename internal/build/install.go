package build

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// InstallDeps installs the app's dependencies the way its language expects
// (SPEC §3), then measures the app folder: over Options.MaxInstalledBytes is
// a KindTooLarge error naming the measured size. A failing command is a
// KindInvalid error naming it and its exit code.
//
//   - node: "npm ci" when package-lock.json or npm-shrinkwrap.json exists,
//     else "npm install"; "npm run build" when package.json has a build
//     script; then "npm prune --omit=dev".
//   - python: a venv in .venv, then "pip install -r requirements.txt" when
//     the file exists.
//   - go: the archive's ./main when it is an executable file, else
//     "go build -o main .".
func (b *Builder) InstallDeps(ctx context.Context, j Job) error {
	var err error
	switch j.Config.Language {
	case hangar.LanguagePython:
		err = b.installPython(ctx, j)
	case hangar.LanguageGo:
		err = b.installGo(ctx, j)
	default:
		err = b.installNode(ctx, j)
	}
	if err != nil {
		return err
	}
	size, err := dirSize(j.Dir)
	if err != nil {
		return fmt.Errorf("measure %s: %w", j.Dir, err)
	}
	if size > b.opts.MaxInstalledBytes {
		return hangar.Errorf(hangar.KindTooLarge, "the application is %s once its dependencies are installed, over the %s limit", formatBytes(size), formatBytes(b.opts.MaxInstalledBytes))
	}
	return nil
}

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

	var env []string
	if b.opts.NPMCacheDir != "" {
		env = b.env("npm_config_cache=" + b.opts.NPMCacheDir)
	} else {
		env = b.env()
	}
	install := "npm install"
	if exists(filepath.Join(j.Dir, "package-lock.json")) || exists(filepath.Join(j.Dir, "npm-shrinkwrap.json")) {
		install = "npm ci"
	}
	cmds := []string{install}
	if s, ok := pkg.Scripts["build"].(string); ok && s != "" {
		cmds = append(cmds, "npm run build")
	}
	cmds = append(cmds, "npm prune --omit=dev")
	for _, c := range cmds {
		if err := b.run(ctx, j, "configuration", c, env, b.opts.CommandTimeout); err != nil {
			return err
		}
	}
	return nil
}

func (b *Builder) installPython(ctx context.Context, j Job) error {
	if err := b.run(ctx, j, "configuration", "python3 -m venv .venv", b.env(), b.opts.CommandTimeout); err != nil {
		return err
	}
	if !exists(filepath.Join(j.Dir, "requirements.txt")) {
		fmt.Fprintln(j.log(), "==> configuration: no requirements.txt, no dependencies to install")
		return nil
	}
	// Environment variables rather than flags: nothing to quote for the shell.
	env := b.env("PIP_DISABLE_PIP_VERSION_CHECK=1")
	if b.opts.PipIndexURL != "" {
		env = append(env, "PIP_INDEX_URL="+b.opts.PipIndexURL)
	}
	if b.opts.PipFindLinks != "" {
		env = append(env, "PIP_FIND_LINKS="+b.opts.PipFindLinks)
	}
	return b.run(ctx, j, "configuration", ".venv/bin/pip install -r requirements.txt", env, b.opts.CommandTimeout)
}

func (b *Builder) installGo(ctx context.Context, j Job) error {
	fi, err := os.Stat(filepath.Join(j.Dir, "main"))
	if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		fmt.Fprintln(j.log(), "==> configuration: using the prebuilt ./main")
		return nil
	}
	return b.run(ctx, j, "configuration", "go build -o main .", b.env(), b.opts.CommandTimeout)
}

func exists(name string) bool {
	_, err := os.Stat(name)
	return err == nil
}

// dirSize sums the sizes of the regular files below dir, without following
// symbolic links.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n += fi.Size()
		return nil
	})
	return n, err
}
