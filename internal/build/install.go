package build

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// InstallDeps installs the app's dependencies the way its language expects
// (SPEC §3), then, unless Options.DiskBounded, measures the app folder:
// over Options.MaxInstalledBytes is a KindTooLarge error naming the
// measured size. A failing command is a KindInvalid error naming it and
// its exit code.
//
//   - node: "npm ci" when package-lock.json or npm-shrinkwrap.json exists,
//     else "npm install"; "npm run build" when package.json has a build
//     script. Development dependencies stay for the migrations; Prune
//     removes them afterwards.
//   - python: a venv in .venv, then "pip install -r requirements.txt" when
//     the file exists.
//   - go: the archive's ./main when it is an executable file, else
//     "go build -o main .".
//
// With Options.CacheDir set, a node app with a lockfile and a python app
// with a requirements.txt whose dependencies are unchanged since an earlier
// build reuse that build's dependencies instead of installing them, and
// the log says so; go builds share Go's build and module caches. Failing to
// read or fill the cache is logged and never fails the install.
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
	if err != nil || b.opts.DiskBounded {
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

// logf writes one line of the configuration step to the deploy log.
func logf(j Job, format string, args ...any) {
	fmt.Fprintf(j.log(), "==> configuration: "+format+"\n", args...)
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
