package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Archives are content-addressed, DataDir/archives/<sha256>.zip, and may be
// shared by versions of several apps. Only those of versions that did not
// fail are kept: collectArchives deletes every other one. It runs at
// Launch (before any upload can be under way, so it also empties
// DataDir/tmp of uploads a crash left), after each deploy, whatever its
// outcome, and after an app is deleted. So a crash between storing an
// archive and recording its version, or anywhere in a deploy, leaves at
// worst a file that the next pass removes.
//
// Service.archiveMu orders the passes with the window of Deploy between
// storing an archive and recording its version, in which the archive is
// referenced by nothing yet.

// ArchiveLister says which archives to keep; *store.DB satisfies it.
type ArchiveLister interface {
	// KeptArchives returns the digests of the archives of versions that
	// did not fail.
	KeptArchives(ctx context.Context) (map[string]bool, error)
}

// storeArchive moves a received archive into the store and records its
// version with create, both under archiveMu.
func (s *Service) storeArchive(received, digest string, create func() error) error {
	s.archiveMu.Lock()
	defer s.archiveMu.Unlock()
	if received != "" {
		if err := os.Rename(received, s.archivePath(digest)); err != nil {
			return fmt.Errorf("store archive: %w", err)
		}
	}
	return create()
}

// collectArchives deletes the archives no version that did not fail uses,
// and logs what it could not do: callers have nothing better to do with
// the error.
func (s *Service) collectArchives(ctx context.Context) {
	s.archiveMu.Lock()
	defer s.archiveMu.Unlock()
	kept, err := s.kept.KeptArchives(ctx)
	if err != nil {
		s.log.ErrorContext(ctx, "collect archives", "err", err)
		return
	}
	dir := filepath.Join(s.cfg.DataDir, "archives")
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.log.ErrorContext(ctx, "collect archives", "err", err)
		return
	}
	for _, e := range entries {
		digest, ok := strings.CutSuffix(e.Name(), ".zip")
		if ok && kept[digest] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.log.ErrorContext(ctx, "collect archives", "err", err)
		}
	}
}

// clearTemp removes what uploads left in DataDir/tmp; call it only while
// no upload runs.
func (s *Service) clearTemp(ctx context.Context) {
	entries, err := os.ReadDir(s.TempDir())
	if err != nil {
		s.log.ErrorContext(ctx, "clear uploads", "err", err)
		return
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(s.TempDir(), e.Name())); err != nil {
			s.log.ErrorContext(ctx, "clear uploads", "err", err)
		}
	}
}
