package build

import (
	"context"
	"os"
	"path/filepath"
)

// installGo keeps the archive's executable ./main or builds one. With the
// cache, the builds of one org share Go's build cache, module cache and
// GOPATH below CacheDir/go/<org>: Go keys their content itself, but a
// build can write to them, so no other org's build ever reads them.
func (b *Builder) installGo(ctx context.Context, j Job) error {
	fi, err := os.Stat(filepath.Join(j.Dir, "main"))
	if err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
		logf(j, "using the prebuilt ./main")
		return nil
	}
	var extra []string
	if orgDir := b.orgCache("go", j); orgDir != "" {
		// Go's caches are per org, and per app within it in a sandbox.
		host, err := b.appCache(ctx, orgDir, j)
		if err != nil {
			return err
		}
		goDir, m := b.mount(host, "go", true)
		j.mounts = append(j.mounts, m)
		extra = append(extra,
			"GOCACHE="+filepath.Join(goDir, "build"),
			"GOMODCACHE="+filepath.Join(goDir, "mod"),
			"GOPATH="+filepath.Join(goDir, "path"),
		)
	}
	if b.opts.GoProxy != "" {
		extra = append(extra, "GOPROXY="+b.opts.GoProxy)
	}
	return b.run(ctx, j, "configuration", "go build -o main .", b.env(extra...), b.opts.CommandTimeout)
}
