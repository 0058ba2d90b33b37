package deploy

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// This file keeps an app's files: its version folders, on disks of their
// own when Config.Disks is set, and what the runtime and the builder keep
// for it elsewhere, released when the app is deleted.

// Disks gives directories a size the kernel enforces (image.Disks).
type Disks interface {
	// Create makes dir an empty folder that holds at most the installed
	// app's size, replacing whatever dir was.
	Create(ctx context.Context, dir string) error
	// Open leaves the executors' room free in dir beyond what it holds
	// now; only the first call on a folder does anything.
	Open(ctx context.Context, dir string) error
	// Remove removes the disk of dir, made by Create, and dir.
	Remove(ctx context.Context, dir string) error
	// RemoveAll removes dir and every disk below it.
	RemoveAll(ctx context.Context, dir string) error
}

// appReleaser is a fleet whose runtime driver keeps files for an app
// outside its folder (the sandbox: setup layers, a uid range).
type appReleaser interface {
	ReleaseApp(ctx context.Context, appID string) error
}

// newVersionDir makes dir an empty folder for a version's build.
func (s *Service) newVersionDir(ctx context.Context, dir string) error {
	if s.cfg.Disks != nil {
		return s.cfg.Disks.Create(ctx, dir)
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	return os.MkdirAll(filepath.Dir(dir), 0o755)
}

// removeVersionDir removes a version's folder and its disk.
func (s *Service) removeVersionDir(ctx context.Context, dir string) error {
	if s.cfg.Disks != nil {
		return s.cfg.Disks.Remove(ctx, dir)
	}
	return os.RemoveAll(dir)
}

// openVersionDir ends the build's bound on dir: from now on it holds what
// was installed plus the executors' room.
func (s *Service) openVersionDir(ctx context.Context, dir string) error {
	if s.cfg.Disks == nil {
		return nil
	}
	return s.cfg.Disks.Open(ctx, dir)
}

// removeAppFiles removes everything the app has on disk: its folder (and
// the disks in it), its dependency caches, and what the runtime keeps for
// it (setup layers, uid range).
func (s *Service) removeAppFiles(ctx context.Context, appID string) error {
	dir := s.appDir(appID)
	if s.cfg.Disks != nil {
		if err := s.cfg.Disks.RemoveAll(ctx, dir); err != nil {
			return err
		}
	} else if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := s.builder.RemoveApp(ctx, appID); err != nil {
		return err
	}
	if r, ok := s.fleet.(appReleaser); ok {
		return r.ReleaseApp(ctx, appID)
	}
	return nil
}

// KeptVersions is how many versions of an app keep their folder (with the
// sandbox driver a disk and a loop device each, mounted again at every
// start): the serving one and the newest retired ones, which drainers and
// workflows forked to their app version start from. An older version runs
// again only through a --previous-version redeploy, which builds a new
// version from its archive.
const KeptVersions = 3

// pruneVersions removes the folders of the app's retired versions beyond
// the newest KeptVersions that no executor runs; a later deploy retries
// what it could not do, so it only logs.
func (s *Service) pruneVersions(ctx context.Context, appID string) {
	vs, err := s.store.Versions(ctx, appID)
	if err != nil {
		s.log.ErrorContext(ctx, "list versions to prune", "app", appID, "err", err)
		return
	}
	for _, v := range prunable(vs, KeptVersions) {
		dir := s.versionDir(appID, v)
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) || s.fleet.VersionRuns(appID, v) {
			continue
		}
		if err := s.removeVersionDir(ctx, dir); err != nil {
			s.log.ErrorContext(ctx, "remove a retired version's folder", "app", appID, "version", v, "err", err)
		}
	}
}

// prunable returns the retired versions of vs (newest first) beyond the
// newest keep that did not fail; failed versions have no folder, and
// deploying ones are being built.
func prunable(vs []hangar.Version, keep int) []string {
	var out []string
	n := 0
	for _, v := range vs {
		if v.Status == hangar.VersionFailed || v.Status == hangar.VersionDeploying {
			continue
		}
		if n++; n > keep && v.Status == hangar.VersionRetired {
			out = append(out, v.ID)
		}
	}
	return out
}
