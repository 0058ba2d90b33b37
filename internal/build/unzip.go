package build

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Limits bounds an uploaded archive. The zero value of each field means its
// default.
type Limits struct {
	// MaxArchiveBytes caps the size of the zip file. Default 500 MiB (the
	// official limit).
	MaxArchiveBytes int64
	// MaxUnpackedBytes caps the total size of the unpacked files, counted
	// while decompressing. Default 2 GiB.
	MaxUnpackedBytes int64
	// MaxFiles caps the number of entries (files, directories, links).
	// Default 100000.
	MaxFiles int
}

func (l Limits) withDefaults() Limits {
	if l.MaxArchiveBytes == 0 {
		l.MaxArchiveBytes = 500 << 20
	}
	if l.MaxUnpackedBytes == 0 {
		l.MaxUnpackedBytes = 2 << 30
	}
	if l.MaxFiles == 0 {
		l.MaxFiles = 100000
	}
	return l
}

// Stats describes an unpacked archive.
type Stats struct {
	// Files counts the regular files and symbolic links written.
	Files int
	// Bytes is the total size of the regular files written.
	Bytes int64
}

// maxLinkTarget bounds a symbolic link's target (PATH_MAX on Linux).
const maxLinkTarget = 4096

// Zip "version made by" hosts whose entries carry st_mode, and the file
// type bits of st_mode, which the official CLI stores in the high 16 bits of
// an entry's external attributes.
const (
	creatorUnix   = 3
	creatorMacOSX = 19

	unixTypeMask = 0o170000
	unixRegular  = 0o100000
	unixDir      = 0o040000
	unixSymlink  = 0o120000
)

// Unpack extracts the zip archive at zipPath into dest, which must not exist
// or be an empty directory. It refuses, as a KindInvalid error naming the
// entry, anything that could write outside dest: absolute paths, ".."
// elements, backslashes, symbolic links whose target leaves the tree,
// entries below a symbolic link, special files (devices, FIFOs, sockets; zip
// has no hard links) and duplicate entries. An archive over lim's caps is a
// KindTooLarge error; the unpacked size is counted while decompressing, not
// taken from the headers. Regular files keep their permission bits (masked
// to 0777, always owner read-write); directories get 0755. On failure dest
// is left as it was found.
func Unpack(ctx context.Context, zipPath, dest string, lim Limits) (Stats, error) {
	f, err := os.Open(zipPath)
	if err != nil {
		return Stats{}, fmt.Errorf("open archive: %w", err)
	}
	defer f.Close()
	return UnpackFile(ctx, f, dest, lim)
}

// UnpackFile is Unpack of an open archive (archive.Store.Open).
func UnpackFile(ctx context.Context, f *os.File, dest string, lim Limits) (Stats, error) {
	lim = lim.withDefaults()
	fi, err := f.Stat()
	if err != nil {
		return Stats{}, fmt.Errorf("open archive: %w", err)
	}
	if fi.Size() > lim.MaxArchiveBytes {
		return Stats{}, hangar.Errorf(hangar.KindTooLarge, "archive is %s, over the %s limit", formatBytes(fi.Size()), formatBytes(lim.MaxArchiveBytes))
	}
	zr, err := zip.NewReader(f, fi.Size())
	// ErrInsecurePath (GODEBUG zipinsecurepath=0) comes with a usable reader;
	// the checks below are stricter and name the entry.
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return Stats{}, hangar.Errorf(hangar.KindInvalid, "archive is not a valid zip file (%v)", err)
	}
	if len(zr.File) > lim.MaxFiles {
		return Stats{}, hangar.Errorf(hangar.KindTooLarge, "archive has %d entries, over the limit of %d", len(zr.File), lim.MaxFiles)
	}

	created, err := prepareDest(dest)
	if err != nil {
		return Stats{}, err
	}
	root, err := os.OpenRoot(dest)
	if err != nil {
		if created {
			os.Remove(dest)
		}
		return Stats{}, fmt.Errorf("open %s: %w", dest, err)
	}
	u := &unpacker{root: root, budget: lim.MaxUnpackedBytes, limit: lim.MaxUnpackedBytes, dirs: map[string]bool{}, seen: map[string]bool{}}
	for _, zf := range zr.File {
		if err = ctx.Err(); err != nil {
			break
		}
		if err = u.entry(ctx, zf); err != nil {
			break
		}
	}
	if err != nil {
		cleanup(root, dest, created)
		root.Close()
		return Stats{}, err
	}
	if err := root.Close(); err != nil {
		return Stats{}, fmt.Errorf("close %s: %w", dest, err)
	}
	return u.stats, nil
}

// prepareDest creates dest, or checks that it is an empty directory. It
// reports whether it created it.
func prepareDest(dest string) (bool, error) {
	err := os.Mkdir(dest, 0o755)
	if err == nil {
		return true, nil
	}
	if !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("create %s: %w", dest, err)
	}
	entries, err := os.ReadDir(dest)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dest, err)
	}
	if len(entries) > 0 {
		return false, fmt.Errorf("unpack into %s: directory is not empty", dest)
	}
	return false, nil
}

// cleanup removes what Unpack wrote. RemoveAll removes symbolic links, never
// what they point to.
func cleanup(root *os.Root, dest string, created bool) {
	if created {
		os.RemoveAll(dest)
		return
	}
	entries, _ := fs.ReadDir(root.FS(), ".")
	for _, e := range entries {
		root.RemoveAll(e.Name())
	}
}

// unpacker writes entries below root.
type unpacker struct {
	root   *os.Root
	budget int64 // bytes that may still be written
	limit  int64
	stats  Stats
	dirs   map[string]bool // directories known to be real directories
	seen   map[string]bool // entry paths already written
}

func invalid(name, format string, args ...any) error {
	return hangar.Errorf(hangar.KindInvalid, "archive entry %q: %s", name, fmt.Sprintf(format, args...))
}

func (u *unpacker) entry(ctx context.Context, zf *zip.File) error {
	elems, err := entryPath(zf.Name)
	if err != nil {
		return err
	}
	p := strings.Join(elems, "/")
	if u.seen[p] {
		return invalid(zf.Name, "appears more than once in the archive")
	}
	u.seen[p] = true

	mode := zf.Mode()
	isDir := strings.HasSuffix(zf.Name, "/") || mode.IsDir()
	if c := zf.CreatorVersion >> 8; c == creatorUnix || c == creatorMacOSX {
		// archive/zip reports unknown file types as regular files.
		switch t := (zf.ExternalAttrs >> 16) & unixTypeMask; t {
		case 0, unixRegular, unixDir, unixSymlink:
		default:
			return invalid(zf.Name, "is a special file (type %#o): only files, directories and symbolic links are allowed", t)
		}
	}
	switch {
	case isDir:
		return u.mkdirs(zf.Name, elems)
	case mode&fs.ModeSymlink != 0:
		return u.symlink(zf, elems)
	case mode.Type() != 0:
		return invalid(zf.Name, "is a special file (%s): only files, directories and symbolic links are allowed", mode.Type())
	}
	if len(elems) == 0 {
		return invalid(zf.Name, "has an empty path")
	}
	return u.file(ctx, zf, elems, mode.Perm()|0o600)
}

// entryPath splits an entry name into its path elements, refusing names
// that could leave the tree. "." and empty elements are dropped.
func entryPath(name string) ([]string, error) {
	switch {
	case strings.ContainsRune(name, '\\'):
		return nil, invalid(name, "contains a backslash: paths must use /")
	case strings.ContainsRune(name, 0):
		return nil, invalid(name, "contains a NUL byte")
	case strings.HasPrefix(name, "/"):
		return nil, invalid(name, "is an absolute path: paths must be relative to the app folder")
	}
	var elems []string
	for _, e := range strings.Split(name, "/") {
		switch e {
		case "", ".":
		case "..":
			return nil, invalid(name, `contains "..": paths must stay inside the app folder`)
		default:
			elems = append(elems, e)
		}
	}
	return elems, nil
}

// mkdirs makes each of elems a directory, refusing to pass through anything
// that is not a real directory (a symbolic link from an earlier entry, or a
// file).
func (u *unpacker) mkdirs(name string, elems []string) error {
	for i := range elems {
		p := strings.Join(elems[:i+1], "/")
		if u.dirs[p] {
			continue
		}
		fi, err := u.root.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := u.root.Mkdir(p, 0o755); err != nil {
				return fmt.Errorf("unpack %q: %w", name, err)
			}
			if err := u.root.Chmod(p, 0o755); err != nil { // undo the umask
				return fmt.Errorf("unpack %q: %w", name, err)
			}
		case err != nil:
			return fmt.Errorf("unpack %q: %w", name, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return invalid(name, "goes through %q, a symbolic link: entries may not be written through links", p)
		case !fi.IsDir():
			return invalid(name, "goes through %q, which is a file, not a directory", p)
		}
		u.dirs[p] = true
	}
	return nil
}

func (u *unpacker) file(ctx context.Context, zf *zip.File, elems []string, perm fs.FileMode) error {
	if err := u.mkdirs(zf.Name, elems[:len(elems)-1]); err != nil {
		return err
	}
	rc, err := zf.Open()
	if err != nil {
		return invalid(zf.Name, "cannot be read (%v)", err)
	}
	defer rc.Close()
	// O_EXCL: never follow or overwrite whatever is already there.
	out, err := u.root.OpenFile(strings.Join(elems, "/"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return invalid(zf.Name, "conflicts with another entry of the same path")
	}
	if err != nil {
		return fmt.Errorf("unpack %q: %w", zf.Name, err)
	}
	defer out.Close()

	n, err := copyCapped(ctx, out, rc, u.budget)
	switch {
	case err == nil:
	case errors.Is(err, errOverBudget):
		return hangar.Errorf(hangar.KindTooLarge, "archive unpacks to more than the %s limit (stopped at entry %q)", formatBytes(u.limit), zf.Name)
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, zip.ErrFormat), errors.Is(err, zip.ErrChecksum), errors.Is(err, zip.ErrAlgorithm):
		return invalid(zf.Name, "is corrupt (%v)", err)
	default:
		return fmt.Errorf("unpack %q: %w", zf.Name, err)
	}
	u.budget -= n
	if err := out.Chmod(perm); err != nil {
		return fmt.Errorf("unpack %q: %w", zf.Name, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("unpack %q: %w", zf.Name, err)
	}
	u.stats.Files++
	u.stats.Bytes += n
	return nil
}

// symlink creates a symbolic link entry. Its target must be relative, use
// ".." only at its start, and not climb above the archive root from the
// link's directory. Because entries are never written through links, every
// link's directory is a real directory; so every link resolves inside the
// tree, even through other links.
func (u *unpacker) symlink(zf *zip.File, elems []string) error {
	if len(elems) == 0 {
		return invalid(zf.Name, "has an empty path")
	}
	rc, err := zf.Open()
	if err != nil {
		return invalid(zf.Name, "cannot be read (%v)", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxLinkTarget+1))
	if err != nil {
		return invalid(zf.Name, "cannot be read (%v)", err)
	}
	target := string(b)
	if err := checkLinkTarget(target, len(elems)-1); err != nil {
		return invalid(zf.Name, "is a symbolic link to %q: %v", target, err)
	}
	if err := u.mkdirs(zf.Name, elems[:len(elems)-1]); err != nil {
		return err
	}
	err = u.root.Symlink(target, strings.Join(elems, "/"))
	if errors.Is(err, fs.ErrExist) {
		return invalid(zf.Name, "conflicts with another entry of the same path")
	}
	if err != nil {
		return fmt.Errorf("unpack %q: %w", zf.Name, err)
	}
	u.stats.Files++
	return nil
}

// checkLinkTarget validates a link target for a link depth directories
// below the root.
func checkLinkTarget(target string, depth int) error {
	switch {
	case target == "":
		return errors.New("the target is empty")
	case len(target) > maxLinkTarget:
		return errors.New("the target is too long")
	case strings.ContainsRune(target, 0), strings.ContainsRune(target, '\\'):
		return errors.New("the target contains a NUL byte or a backslash")
	case path.IsAbs(target):
		return errors.New("links must be relative and stay inside the app folder")
	}
	up, named := 0, false
	for _, e := range strings.Split(target, "/") {
		switch {
		case e == "" || e == ".":
		case e != "..":
			named = true
		case named:
			return errors.New(`".." may only start a link target`)
		default:
			up++
		}
	}
	if up > depth {
		return errors.New("the target is outside the app folder")
	}
	return nil
}

var errOverBudget = errors.New("over budget")

// copyCapped copies src to dst until EOF. It counts the bytes actually read,
// whatever the zip headers claim, and stops with errOverBudget before
// writing past budget, or with ctx's error.
func copyCapped(ctx context.Context, dst io.Writer, src io.Reader, budget int64) (int64, error) {
	buf := make([]byte, 64<<10)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		m, rerr := src.Read(buf)
		if m > 0 {
			if n+int64(m) > budget {
				return n, errOverBudget
			}
			if _, err := dst.Write(buf[:m]); err != nil {
				return n, err
			}
			n += int64(m)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, rerr
		}
	}
}
