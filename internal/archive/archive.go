// Package archive stores deploy archives content-addressed: a received
// zip becomes Dir/<sha256>.zip only once all of it has arrived, was
// within the limits and reached the disk, so a partial upload never
// becomes an archive. The versions recorded in the metadata database say
// which archives to keep (Keeper); Store.GC deletes every other one, and
// the uploads a crash left.
//
// A Store is rooted at one directory and keeps its state there, so several
// servers (replicas) may share it on shared storage: an upload under way
// holds a lock (flock) on its temporary file, and a received archive not
// recorded yet (Receive → Release) one on a hold file, Dir/holds/<digest>-*.
// GC, in this process or another, keeps what a live lock holds, and
// removes the files of locks a crash released.
//
// It is a leaf: it imports internal/hangar only. The API (which receives
// uploads) and the composition roots import it; deploy reaches it through
// an interface of its own.
package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Limits bounds what a Store accepts. The zero value of each field means
// its default.
type Limits struct {
	// MaxBytes caps an archive's size. Default 500 MiB (the official
	// limit).
	MaxBytes int64
}

// Config configures a Store.
type Config struct {
	// Dir holds the archives (Dir/<sha256>.zip) and the uploads under way
	// (Dir/tmp), and the holds (Dir/holds). Required.
	Dir string
	// Limits bounds the archives received.
	Limits Limits
	// Logger receives what Release could not do. Default slog.Default().
	Logger *slog.Logger
}

// Keeper says which archives to keep; *store.DB satisfies it.
type Keeper interface {
	// KeptArchives returns the digests of the archives of versions that
	// did not fail.
	KeptArchives(ctx context.Context) (map[string]bool, error)
}

// Store is a directory of archives. Create it with New.
type Store struct {
	dir  string
	lim  Limits
	keep Keeper
	log  *slog.Logger

	// mu orders GC and Release with each other and with the commit of a
	// received archive, in this process; holds are this process's locked
	// hold files, per digest.
	mu    sync.Mutex
	holds map[string][]*os.File
}

// New returns a Store rooted at cfg.Dir, creating it if needed.
func New(cfg Config, keep Keeper) (*Store, error) {
	if cfg.Dir == "" {
		return nil, errors.New("archive: Dir is required")
	}
	if cfg.Limits.MaxBytes == 0 {
		cfg.Limits.MaxBytes = 500 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	for _, d := range []string{"tmp", "holds"} {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, d), 0o700); err != nil {
			return nil, err
		}
	}
	return &Store{dir: cfg.Dir, lim: cfg.Limits, keep: keep, log: cfg.Logger.With("component", "archive"), holds: map[string][]*os.File{}}, nil
}

// Limits returns the store's limits, defaults applied.
func (s *Store) Limits() Limits { return s.lim }

// Receive stores the archive read from r, whose declared size is size (-1
// when unknown), and returns its digest (hex SHA-256), held until the
// caller releases it. KindTooLarge when the archive is over the limit,
// declared or read; KindInvalid when fewer than size bytes arrive.
func (s *Store) Receive(ctx context.Context, r io.Reader, size int64) (string, error) {
	if size > s.lim.MaxBytes {
		return "", hangar.Errorf(hangar.KindTooLarge, "the archive is %s, over the limit of %s", byteSize(size), byteSize(s.lim.MaxBytes))
	}
	w, err := s.Create()
	if err != nil {
		return "", err
	}
	defer w.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(r, s.lim.MaxBytes+1), make([]byte, copyBuffer))
	switch {
	case hangar.KindOf(err) == hangar.KindTooLarge:
		return "", err
	case err != nil:
		return "", fmt.Errorf("receive archive after %d bytes: %w", n, err)
	case size >= 0 && n != size:
		return "", hangar.Errorf(hangar.KindInvalid, "the archive is truncated: %d of %d bytes arrived", n, size)
	}
	return w.Commit(ctx)
}

// copyBuffer is the copy buffer of a received archive: large enough for
// few syscalls, small enough that an upload's memory stays flat.
const copyBuffer = 256 << 10

// Create starts receiving an archive: write it to the Writer, then Commit
// it. Close the Writer in every case: an archive not committed is
// discarded.
func (s *Store) Create() (*Writer, error) {
	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), "upload-*")
	if err != nil {
		return nil, fmt.Errorf("receive archive: %w", err)
	}
	if err := lock(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("receive archive: %w", err)
	}
	return &Writer{s: s, f: f, h: sha256.New()}, nil
}

// Writer receives one archive into a temporary file, hashing it on the
// way.
type Writer struct {
	s    *Store
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// Write writes p to the archive. KindTooLarge once the archive is over the
// limit.
func (w *Writer) Write(p []byte) (int, error) {
	if max := w.s.lim.MaxBytes; w.n+int64(len(p)) > max {
		return 0, hangar.Errorf(hangar.KindTooLarge, "the archive is over the limit of %s: more than %d bytes arrived", byteSize(max), max)
	}
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Commit stores what was written as an archive, once it reached the disk,
// and returns its digest (hex SHA-256), held until the caller releases it.
func (w *Writer) Commit(ctx context.Context) (string, error) {
	if w.done {
		return "", errors.New("archive: commit of a closed writer")
	}
	if err := w.f.Sync(); err != nil {
		return "", fmt.Errorf("store archive: %w", err)
	}
	digest := hex.EncodeToString(w.h.Sum(nil))
	if err := w.store(digest); err != nil {
		return "", err
	}
	// The version about to record the digest must find the archive after
	// a power loss too.
	if err := syncDir(w.s.dir); err != nil {
		w.s.Release(ctx, digest)
		return "", fmt.Errorf("store archive: %w", err)
	}
	return digest, nil
}

// store renames the archive to its digest, held.
func (w *Writer) store(digest string) error {
	s := w.s
	s.mu.Lock()
	defer s.mu.Unlock()
	// The hold exists before the archive does, for GC's sake.
	hold, err := os.CreateTemp(filepath.Join(s.dir, "holds"), digest+"-*")
	if err == nil {
		if err = lock(hold); err != nil {
			hold.Close()
			os.Remove(hold.Name())
		}
	}
	if err != nil {
		return fmt.Errorf("hold archive: %w", err)
	}
	// An identical archive already stored is replaced by the same bytes.
	if err := os.Rename(w.f.Name(), s.path(digest)); err != nil {
		os.Remove(hold.Name())
		hold.Close()
		return fmt.Errorf("store archive: %w", err)
	}
	s.holds[digest] = append(s.holds[digest], hold)
	w.done = true
	w.f.Close() // releases the lock; the temporary name is gone
	return nil
}

// Close discards the archive unless it was committed.
func (w *Writer) Close() error {
	if w.done {
		return nil
	}
	w.done = true
	err := os.Remove(w.f.Name())
	w.f.Close()
	return err
}

// Open opens the archive digest for reading. KindNotFound when it is not
// stored.
func (s *Store) Open(digest string) (*os.File, error) {
	if !validDigest(digest) {
		return nil, hangar.Errorf(hangar.KindNotFound, "archive %q is not stored", digest)
	}
	f, err := os.Open(s.path(digest))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, hangar.Errorf(hangar.KindNotFound, "archive %s is not stored", digest)
	}
	return f, err
}

// Release drops a hold that Receive or Commit returned, and deletes the
// archive when no one else holds it and no version keeps it (a failed
// deploy's). It logs what it could not do: callers have nothing better to
// do with the error, and the next GC retries.
func (s *Store) Release(ctx context.Context, digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	hs := s.holds[digest]
	if len(hs) == 0 {
		return
	}
	hold := hs[len(hs)-1]
	if s.holds[digest] = hs[:len(hs)-1]; len(hs) == 1 {
		delete(s.holds, digest)
	}
	err := removeIfExists(hold.Name())
	hold.Close()
	held, herr := s.held()
	kept, kerr := s.keep.KeptArchives(ctx)
	if err = errors.Join(err, herr, kerr); err == nil && !held[digest] && !kept[digest] {
		err = removeIfExists(s.path(digest))
	}
	if err != nil {
		s.log.ErrorContext(ctx, "release archive", "digest", digest, "err", err)
	}
}

// GC deletes the archives that no version keeps and no one holds, and the
// temporary files of uploads that no longer run (a crash's).
func (s *Store) GC(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// In this order: an archive listed was renamed after its hold was
	// taken, so it is held now, or was released after its version was
	// recorded, which keep then returns.
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return fmt.Errorf("collect archives: %w", err)
	}
	held, err := s.held()
	if err != nil {
		return err
	}
	kept, err := s.keep.KeptArchives(ctx)
	if err != nil {
		return fmt.Errorf("collect archives: %w", err)
	}
	var errs []error
	for _, e := range entries {
		digest, ok := strings.CutSuffix(e.Name(), ".zip")
		if !ok || kept[digest] || held[digest] {
			continue
		}
		errs = append(errs, removeIfExists(filepath.Join(s.dir, e.Name())))
	}
	tmp, err := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if err != nil {
		return errors.Join(append(errs, fmt.Errorf("collect uploads: %w", err))...)
	}
	for _, e := range tmp {
		_, err := removeAbandoned(filepath.Join(s.dir, "tmp", e.Name()))
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// held returns the digests that a live process holds, in Dir/holds, and
// removes the holds of processes that died.
func (s *Store) held() (map[string]bool, error) {
	entries, err := os.ReadDir(filepath.Join(s.dir, "holds"))
	if err != nil {
		return nil, fmt.Errorf("read holds: %w", err)
	}
	held := map[string]bool{}
	for _, e := range entries {
		digest, _, _ := strings.Cut(e.Name(), "-")
		if held[digest] {
			continue
		}
		live, err := removeAbandoned(filepath.Join(s.dir, "holds", e.Name()))
		if err != nil {
			return nil, err
		}
		held[digest] = live
	}
	return held, nil
}

// removeAbandoned removes the temporary file of an upload, or a hold,
// unless the process that locked it still runs; it reports whether one
// does.
func removeAbandoned(name string) (bool, error) {
	f, err := os.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil // committed, closed or released meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("collect uploads: %w", err)
	}
	defer f.Close()
	if !tryLock(f) {
		return true, nil
	}
	return false, removeIfExists(name)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func removeIfExists(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("collect archives: %w", err)
	}
	return nil
}

func (s *Store) path(digest string) string { return filepath.Join(s.dir, digest+".zip") }

// validDigest reports whether d is a hex SHA-256, so that a digest never
// names another file.
func validDigest(d string) bool {
	if len(d) != sha256.Size*2 {
		return false
	}
	_, err := hex.DecodeString(d)
	return err == nil
}

// byteSize formats n bytes for people: "612.4 MiB (642150000 bytes)".
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB (%d bytes)", float64(n)/(1<<30), n)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	}
	return fmt.Sprintf("%d bytes", n)
}
