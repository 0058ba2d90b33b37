package build

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The dependency cache lives below Options.CacheDir, one folder per
// organization (Job.OrgID): no org ever reads an entry another org filled.
//
//	node/<org>/<key>/node_modules/  node_modules as "npm ci --ignore-scripts"
//	                                left it in a fresh tree
//	python/<org>/<key>/wheels/      every wheel "pip wheel -r requirements.txt"
//	                                built in a fresh tree and venv
//	<kind>/<org>/<key>/digest       the entry's tree digest, taken at fill time
//	go/<org>/build, mod, path       GOCACHE, GOMODCACHE and GOPATH of go builds
//	<kind>/<org>/.tmp-*             entries being written
//
// Keys cover the org ID too, so an entry copied into another org's folder
// would still never be found there.
//
// An entry is filled from a clean install: the install runs in a fresh
// tree below the entry's staging folder that holds only the files the key
// covers (package.json, the lockfile, .npmrc; the requirements files), with
// the packages' own scripts off for npm, before any of the app's code ran
// in it. Lifecycle scripts then run on the build's own copy. The entry is
// written in full into the staging folder and renamed into place, so a
// reader sees a complete entry or none, and two builds filling one key at
// once cannot mix their files: the second rename fails and its copy is
// dropped.
//
// A build never gets the entry itself: a hit copies the tree into the app
// folder (copy_file_range, no hard links) and hashes what it copies; a copy
// whose digest differs from the one stored at fill time is thrown away with
// the entry, which is filled again. So neither an app's build scripts nor
// its running executors, which write only to their own copies, nor a
// damaged disk can change what the next deploy gets. Nothing evicts entries
// yet; a hit refreshes the entry's modification time so that a future
// sweep can drop the least recently used.

// cacheKey returns the hex SHA-256 of parts, each prefixed by its length so
// that moving bytes between parts changes the key.
func cacheKey(parts ...[]byte) string {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// shortKey is the prefix of key shown in the deploy log.
func shortKey(key string) string { return key[:12] }

// orgCache returns the folder of j's org's entries of kind, or "" when the
// cache is disabled or the job names no usable org.
func (b *Builder) orgCache(kind string, j Job) string {
	if b.opts.CacheDir == "" || !validOrgID(j.OrgID) {
		return ""
	}
	return filepath.Join(b.opts.CacheDir, kind, j.OrgID)
}

// validOrgID reports whether id can name a cache folder.
func validOrgID(id string) bool {
	return id != "" && id != "." && id != ".." && !strings.ContainsAny(id, `/\`) && filepath.IsLocal(id)
}

// cacheEntry returns the folder of the entry key in the org cache folder
// dir and whether it exists.
func cacheEntry(dir, key string) (string, bool) {
	entry := filepath.Join(dir, key)
	fi, err := os.Stat(entry)
	return entry, err == nil && fi.IsDir()
}

// touch marks an entry as just used. Failing to is harmless.
func touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// stageEntry creates the temporary folder in the org cache folder dir in
// which the entry key is written before commitEntry renames it into place.
func stageEntry(dir, key string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create cache folder: %w", err)
	}
	staged, err := os.MkdirTemp(dir, ".tmp-"+shortKey(key)+"-")
	if err != nil {
		return "", fmt.Errorf("create cache entry: %w", err)
	}
	return staged, nil
}

// commitEntry renames the staged folder to the entry key of dir. When
// another build committed the same key first, it drops staged and keeps
// that entry: equal keys mean equivalent content.
func commitEntry(dir, key, staged string) error {
	err := os.Rename(staged, filepath.Join(dir, key))
	if err == nil {
		return nil
	}
	if _, ok := cacheEntry(dir, key); ok {
		return removeTree(staged)
	}
	_ = removeTree(staged)
	return fmt.Errorf("commit cache entry %s: %w", shortKey(key), err)
}

// dropEntry removes the entry key of dir, which failed to serve a build, so
// that the next miss fills it again. It first renames it aside, so no
// build sees it half removed.
func dropEntry(dir, key string) {
	entry, ok := cacheEntry(dir, key)
	if !ok {
		return
	}
	trash, err := os.MkdirTemp(dir, ".tmp-drop-")
	if err != nil {
		return
	}
	if os.Rename(entry, filepath.Join(trash, key)) != nil {
		_ = os.Remove(trash)
		return
	}
	_ = removeTree(trash)
}

// digestFile is the file of an entry that holds its tree's digest.
const digestFile = "digest"

// sealEntry records the digest of the tree sub of the staged entry.
func sealEntry(staged, sub string) error {
	d, err := treeDigest(filepath.Join(staged, sub))
	if err != nil {
		return fmt.Errorf("digest cache entry: %w", err)
	}
	return os.WriteFile(filepath.Join(staged, digestFile), []byte(d+"\n"), 0o400)
}

// errTampered is the error of a copy whose digest is not the entry's.
var errTampered = errors.New("cache entry does not match the digest taken when it was filled")

// restoreEntry copies the tree sub of entry to dst, which must not exist,
// hashing what it copies, and checks the digest against the one sealEntry
// stored. On any failure dst is removed.
func restoreEntry(dst, entry, sub string) error {
	want, err := os.ReadFile(filepath.Join(entry, digestFile))
	if err != nil {
		return fmt.Errorf("read cache digest: %w", err)
	}
	h := sha256.New()
	err = copyTree(dst, filepath.Join(entry, sub), h)
	if err == nil && hex.EncodeToString(h.Sum(nil)) != strings.TrimSpace(string(want)) {
		err = errTampered
	}
	if err != nil {
		_ = removeTree(dst)
	}
	return err
}

// treeDigest returns the hex digest of the tree at dir, as copyTree
// computes it.
func treeDigest(dir string) (string, error) {
	h := sha256.New()
	err := walkTree(dir, h, func(string, fs.FileMode) error { return nil },
		func(string, string) error { return nil },
		func(_, src string, _ fs.FileMode, _ int64) error {
			f, err := os.Open(src)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(h, f)
			return err
		})
	return hex.EncodeToString(h.Sum(nil)), err
}

// walkTree walks the tree at src in lexical order and calls dir, link or
// file for each folder, symbolic link and regular file below it, with its
// path relative to src; any other kind of file is an error. It writes a
// record of each (path, kind, permission bits, link target or size) to h;
// file writes the content. So equal trees give h equal bytes, and any
// change to a name, mode, link or byte changes them.
func walkTree(src string, h io.Writer, dir func(rel string, perm fs.FileMode) error,
	link func(rel, target string) error, file func(rel, path string, perm fs.FileMode, size int64) error) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		switch {
		case d.IsDir():
			fmt.Fprintf(h, "%q d %o\n", rel, perm)
			return dir(rel, perm)
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			fmt.Fprintf(h, "%q l %q\n", rel, target)
			return link(rel, target)
		case d.Type().IsRegular():
			fmt.Fprintf(h, "%q f %o %d\n", rel, perm, fi.Size())
			return file(rel, path, perm, fi.Size())
		default:
			return fmt.Errorf("copy %s: unsupported file type %s", rel, d.Type())
		}
	})
}

// copyTree copies the tree at src to dst, which must not exist: folders,
// regular files with their permission bits (no setuid, setgid or sticky
// bits) and symbolic links as they are, never followed. It is a real copy,
// not hard links: the app's build scripts and executors write into
// node_modules, and a shared inode would carry those writes back into the
// cache. With h non-nil, it writes to h what it copies, as treeDigest does.
//
// The walk reads and hashes in order; creating and writing the files,
// which costs the kernel more than reading them (node_modules is mostly
// small files), is left to copyWorkers goroutines for files up to
// smallFile bytes. A folder is made before any file below it is handed
// over, so a worker always finds its file's folder.
func copyTree(dst, src string, h hash.Hash) error {
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var restore []dirMode // folders created writable, given their mode at the end
	var w io.Writer = io.Discard
	if h != nil {
		w = h
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		werr  error // the workers' first error
		files = make(chan smallCopy, 64)
	)
	failed := func() error {
		mu.Lock()
		defer mu.Unlock()
		return werr
	}
	for range copyWorkers {
		wg.Go(func() {
			for f := range files {
				if err := writeNew(f.dst, f.data, f.perm); err != nil {
					mu.Lock()
					werr = cmp.Or(werr, err)
					mu.Unlock()
				}
			}
		})
	}
	err := walkTree(src, w,
		func(rel string, perm fs.FileMode) error {
			target := filepath.Join(dst, rel)
			if err := os.Mkdir(target, perm|0o700); err != nil {
				return err
			}
			if perm&0o700 != 0o700 {
				restore = append(restore, dirMode{target, perm})
			}
			return nil
		},
		func(rel, link string) error { return os.Symlink(link, filepath.Join(dst, rel)) },
		func(rel, path string, perm fs.FileMode, size int64) error {
			if err := failed(); err != nil {
				return err
			}
			if size > smallFile {
				return copyFile(filepath.Join(dst, rel), path, perm, h)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			w.Write(data)
			files <- smallCopy{filepath.Join(dst, rel), data, perm}
			return nil
		},
	)
	close(files)
	wg.Wait()
	if err = cmp.Or(err, werr); err != nil {
		return err
	}
	for i := len(restore) - 1; i >= 0; i-- {
		if err := os.Chmod(restore[i].path, restore[i].mode); err != nil {
			return err
		}
	}
	return nil
}

const (
	// copyWorkers is how many goroutines of copyTree write files.
	copyWorkers = 4
	// smallFile is the size up to which copyTree reads a file whole and
	// hands its writing to a worker; larger ones it copies itself.
	smallFile = 256 << 10
)

// smallCopy is a file copyTree read, for a worker to write.
type smallCopy struct {
	dst  string
	data []byte
	perm fs.FileMode
}

// copyFile copies the regular file src to the new file dst, writing its
// content to h when h is non-nil. Without h, io.Copy between files uses
// copy_file_range on Linux, which clones extents where the file system
// can.
func copyFile(dst, src string, perm fs.FileMode, h hash.Hash) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o200)
	if err != nil {
		return err
	}
	var r io.Reader = in
	if h != nil {
		r = io.TeeReader(in, h)
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	return closeNew(out, dst, perm)
}

// writeNew writes data to the new file dst with permission bits perm.
func writeNew(dst string, data []byte, perm fs.FileMode) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o200)
	if err != nil {
		return err
	}
	if _, err := out.Write(data); err != nil {
		out.Close()
		return err
	}
	return closeNew(out, dst, perm)
}

// closeNew closes the file out created at dst writable by its owner, and
// gives it perm when perm does not let the owner write.
func closeNew(out *os.File, dst string, perm fs.FileMode) error {
	if err := out.Close(); err != nil {
		return err
	}
	if perm&0o200 == 0 {
		return os.Chmod(dst, perm)
	}
	return nil
}

// removeTree removes path and everything below it, making read-only
// folders writable first (os.RemoveAll cannot empty them).
func removeTree(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(path)
}

// majorVersion returns the major version in the output of "node --version"
// or "npm --version" ("v20.11.1" → "20").
func majorVersion(out string) string {
	v := strings.TrimPrefix(strings.TrimSpace(out), "v")
	major, _, _ := strings.Cut(v, ".")
	if _, err := strconv.Atoi(major); err != nil {
		return strings.TrimSpace(out)
	}
	return major
}

// readInDir reads the regular file name of dir, refusing a path that
// leaves dir through ".." or a symbolic link: the app folder is the
// tenant's, and what is read here goes into a cache entry's install tree.
func readInDir(dir, name string) ([]byte, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	fi, err := root.Stat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	return root.ReadFile(name)
}

// copyRegular copies the regular file name of dir to the new file dst, as
// readInDir reads it.
func copyRegular(dst, dir, name string) error {
	data, err := readInDir(dir, name)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.WriteFile(dst, data, 0o644)
}
