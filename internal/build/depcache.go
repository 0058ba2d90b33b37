package build

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The dependency cache lives below Options.CacheDir:
//
//	node/<key>/node_modules/   node_modules right after "npm ci", before the
//	                           app's build and the dev-dependency prune
//	python/<key>/*.whl         every wheel "pip wheel -r requirements.txt"
//	                           produced: the venv is recreated from them
//	go/build, go/mod, go/path  GOCACHE, GOMODCACHE and GOPATH of go builds
//	<kind>/.tmp-*              entries being written
//
// An entry is written in full into a temporary folder next to its final
// place and renamed there, so a reader sees a complete entry or none, and
// two builds filling the same key at once cannot mix their files: the
// second rename fails and its copy is dropped. Entries are never changed
// after the rename, and nothing below an entry is ever shared with an app
// folder (a hit copies it), so an app cannot alter what the next deploy
// gets. Nothing evicts entries yet; a hit refreshes the entry's
// modification time so that a future sweep can drop the least recently
// used. Entries are not fsynced: a SIGKILL loses nothing, but a power loss
// right after a miss can leave a damaged entry, removed by deleting
// <kind>/<key>.

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

// cacheEntry returns the folder of the entry kind/key and whether it
// exists. It returns "", false when the cache is disabled.
func (b *Builder) cacheEntry(kind, key string) (string, bool) {
	if b.opts.CacheDir == "" {
		return "", false
	}
	dir := filepath.Join(b.opts.CacheDir, kind, key)
	fi, err := os.Stat(dir)
	return dir, err == nil && fi.IsDir()
}

// touch marks an entry as just used. Failing to is harmless.
func touch(dir string) {
	now := time.Now()
	_ = os.Chtimes(dir, now, now)
}

// stageEntry creates the temporary folder in which the entry kind/key is
// written before commitEntry renames it into place.
func (b *Builder) stageEntry(kind, key string) (string, error) {
	parent := filepath.Join(b.opts.CacheDir, kind)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return "", fmt.Errorf("create cache folder: %w", err)
	}
	dir, err := os.MkdirTemp(parent, ".tmp-"+shortKey(key)+"-")
	if err != nil {
		return "", fmt.Errorf("create cache entry: %w", err)
	}
	return dir, nil
}

// commitEntry renames the staged folder to the entry kind/key. When another
// build committed the same key first, it drops staged and keeps that entry:
// equal keys mean equivalent content.
func (b *Builder) commitEntry(kind, key, staged string) error {
	final := filepath.Join(b.opts.CacheDir, kind, key)
	err := os.Rename(staged, final)
	if err == nil {
		return nil
	}
	if _, ok := b.cacheEntry(kind, key); ok {
		return os.RemoveAll(staged)
	}
	_ = os.RemoveAll(staged)
	return fmt.Errorf("commit cache entry %s: %w", shortKey(key), err)
}

// dropEntry removes the entry kind/key, which failed to serve a build, so
// that the next miss fills it again. It first renames it aside, so no
// build sees it half removed.
func (b *Builder) dropEntry(kind, key string) {
	entry, ok := b.cacheEntry(kind, key)
	if !ok {
		return
	}
	trash, err := os.MkdirTemp(filepath.Join(b.opts.CacheDir, kind), ".tmp-drop-")
	if err != nil {
		return
	}
	if os.Rename(entry, filepath.Join(trash, key)) != nil {
		_ = os.Remove(trash)
		return
	}
	_ = removeTree(trash)
}

// copyTree copies the tree at src to dst, which must not exist: folders,
// regular files with their permission bits (no setuid, setgid or sticky
// bits) and symbolic links as they are, never followed. It is a real copy,
// not hard links: the app's build scripts write into node_modules
// (.cache folders, generated clients), and a shared inode would carry those
// writes back into the cache. Any other kind of file is an error.
func copyTree(dst, src string) error {
	type dirMode struct {
		path string
		mode fs.FileMode
	}
	var restore []dirMode // folders created writable, given their mode at the end
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, perm|0o700); err != nil {
				return err
			}
			if perm&0o700 != 0o700 {
				restore = append(restore, dirMode{target, perm})
			}
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case d.Type().IsRegular():
			return copyFile(target, path, perm)
		default:
			return fmt.Errorf("copy %s: unsupported file type %s", rel, d.Type())
		}
	})
	if err != nil {
		return err
	}
	for i := len(restore) - 1; i >= 0; i-- {
		if err := os.Chmod(restore[i].path, restore[i].mode); err != nil {
			return err
		}
	}
	return nil
}

// copyFile copies the regular file src to the new file dst. io.Copy between
// files uses copy_file_range on Linux, which clones extents where the file
// system can.
func copyFile(dst, src string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm|0o200)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
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

// shellQuote quotes s for /bin/sh.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
