package build

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// zipEntry is one entry of a test archive. A symbolic link's body is its
// target; zeros appends that many zero bytes to the body.
type zipEntry struct {
	name  string
	mode  fs.FileMode
	body  string
	zeros int64
}

// writeZip writes entries to path the way the official CLI does: Unix
// modes, DEFLATE.
func writeZip(t testing.TB, path string, entries []zipEntry) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw := zip.NewWriter(f)
	for _, e := range entries {
		h := &zip.FileHeader{Name: e.name, Method: zip.Deflate}
		h.SetMode(e.mode)
		w, err := zw.CreateHeader(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(w, e.body); err != nil {
			t.Fatal(err)
		}
		if _, err := io.CopyN(w, zeroReader{}, e.zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// listTree renders the tree below dir, one line per entry: path, mode and
// either the link target or the file's content.
func listTree(t testing.TB, dir string) []string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %s", rel, fi.Mode())
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %q", b)
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

func TestUnpack(t *testing.T) {
	t.Parallel()
	const (
		file = 0o644
		exe  = 0o755
		link = os.ModeSymlink | 0o777
	)
	tests := []struct {
		name    string
		entries []zipEntry
		garbage bool // write a file that is not a zip
		lim     Limits
		// dest already exists (empty) before Unpack
		preexisting bool
		want        []string // the unpacked tree on success
		wantStats   Stats
		wantKind    hangar.Kind
		wantMsg     string // "{size}" stands for the archive's size
	}{
		{
			name: "Good",
			entries: []zipEntry{
				{name: "bin/run.sh", mode: exe, body: "#!/bin/sh\n"},
				{name: "README.md", mode: file, body: "hi"},
				{name: "src/", mode: fs.ModeDir | 0o700},
				{name: "src/app.js", mode: file, body: "js"},
				{name: "ro.txt", mode: 0o444, body: "ro"},
				{name: "suid", mode: fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o755, body: "s"},
				{name: "./a//b.txt", mode: 0o600, body: "b"},
				{name: "main", mode: 0o700, body: "\x7fELF"},
				{name: "link", mode: link, body: "src/app.js"},
				{name: "src/up", mode: link, body: "../README.md"},
				{name: "src/dot", mode: link, body: "./../src/./app.js"},
				{name: "self", mode: link, body: "."},
				{name: "empty", mode: file},
			},
			want: []string{
				`README.md -rw-r--r-- "hi"`,
				`a drwxr-xr-x`,
				`a/b.txt -rw------- "b"`,
				`bin drwxr-xr-x`,
				`bin/run.sh -rwxr-xr-x "#!/bin/sh\n"`,
				`empty -rw-r--r-- ""`,
				`link Lrwxrwxrwx -> src/app.js`,
				`main -rwx------ "\x7fELF"`,
				`ro.txt -rw-r--r-- "ro"`,
				`self Lrwxrwxrwx -> .`,
				`src drwxr-xr-x`,
				`src/app.js -rw-r--r-- "js"`,
				`src/dot Lrwxrwxrwx -> ./../src/./app.js`,
				`src/up Lrwxrwxrwx -> ../README.md`,
				`suid -rwxr-xr-x "s"`,
			},
			wantStats: Stats{Files: 12, Bytes: 22},
		},
		{
			name:      "IntoEmptyDir",
			entries:   []zipEntry{{name: "x", mode: file, body: "x"}},
			want:      []string{`x -rw-r--r-- "x"`},
			wantStats: Stats{Files: 1, Bytes: 1},
		},
		{
			name:     "DotDot",
			entries:  []zipEntry{{name: "ok.txt", mode: file}, {name: "../evil", mode: file, body: "x"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "../evil": contains "..": paths must stay inside the app folder`,
		},
		{
			name:     "DotDotInside",
			entries:  []zipEntry{{name: "a/../../evil", mode: file}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "a/../../evil": contains "..": paths must stay inside the app folder`,
		},
		{
			name:     "Absolute",
			entries:  []zipEntry{{name: "/abs", mode: file}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "/abs": is an absolute path: paths must be relative to the app folder`,
		},
		{
			name:     "Backslash",
			entries:  []zipEntry{{name: `..\evil`, mode: file}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "..\\evil": contains a backslash: paths must use /`,
		},
		{
			name:     "SymlinkOutOfTree",
			entries:  []zipEntry{{name: "sub/out", mode: link, body: "../../evil"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "sub/out": is a symbolic link to "../../evil": the target is outside the app folder`,
		},
		{
			name:     "SymlinkAbsoluteThenWrite",
			entries:  []zipEntry{{name: "d", mode: link, body: "/etc"}, {name: "d/passwd", mode: file, body: "x"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "d": is a symbolic link to "/etc": links must be relative and stay inside the app folder`,
		},
		{
			name:     "SymlinkSelfThenDotDot",
			entries:  []zipEntry{{name: "a", mode: link, body: "."}, {name: "a/../../evil", mode: file, body: "x"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "a/../../evil": contains "..": paths must stay inside the app folder`,
		},
		{
			name:     "SymlinkDotDotThroughLink",
			entries:  []zipEntry{{name: "a", mode: link, body: "."}, {name: "b", mode: link, body: "a/../evil"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "b": is a symbolic link to "a/../evil": ".." may only start a link target`,
		},
		{
			name: "WriteThroughSymlink",
			entries: []zipEntry{
				{name: "sub/", mode: fs.ModeDir | 0o755},
				{name: "l", mode: link, body: "sub"},
				{name: "l/x", mode: file, body: "x"},
			},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "l/x": goes through "l", a symbolic link: entries may not be written through links`,
		},
		{
			name:     "LinkOverFile",
			entries:  []zipEntry{{name: "x", mode: file}, {name: "./x", mode: link, body: "y"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "./x": appears more than once in the archive`,
		},
		{
			name:     "Duplicate",
			entries:  []zipEntry{{name: "a.txt", mode: file, body: "1"}, {name: "a.txt", mode: file, body: "2"}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "a.txt": appears more than once in the archive`,
		},
		{
			name:     "FileThenDir",
			entries:  []zipEntry{{name: "a", mode: file}, {name: "a/b", mode: file}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "a/b": goes through "a", which is a file, not a directory`,
		},
		{
			name:     "DirThenFile",
			entries:  []zipEntry{{name: "a/b", mode: file}, {name: "a", mode: file}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "a": conflicts with another entry of the same path`,
		},
		{
			name:     "CharDevice",
			entries:  []zipEntry{{name: "ok", mode: file}, {name: "dev/null", mode: fs.ModeDevice | fs.ModeCharDevice | 0o666}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "dev/null": is a special file (type 020000): only files, directories and symbolic links are allowed`,
		},
		{
			name:     "FIFO",
			entries:  []zipEntry{{name: "pipe", mode: fs.ModeNamedPipe | 0o644}},
			wantKind: hangar.KindInvalid,
			wantMsg:  `archive entry "pipe": is a special file (type 010000): only files, directories and symbolic links are allowed`,
		},
		{
			name:     "ZipBomb",
			entries:  []zipEntry{{name: "ok", mode: file, body: "ok"}, {name: "bomb.bin", mode: file, zeros: 50 << 20}},
			lim:      Limits{MaxUnpackedBytes: 10 << 20},
			wantKind: hangar.KindTooLarge,
			wantMsg:  `archive unpacks to more than the 10 MiB limit (stopped at entry "bomb.bin")`,
		},
		{
			name:        "ZipBombAcrossFilesIntoEmptyDir",
			entries:     []zipEntry{{name: "a", mode: file, zeros: 6 << 20}, {name: "b", mode: file, zeros: 6 << 20}},
			lim:         Limits{MaxUnpackedBytes: 10 << 20},
			preexisting: true,
			wantKind:    hangar.KindTooLarge,
			wantMsg:     `archive unpacks to more than the 10 MiB limit (stopped at entry "b")`,
		},
		{
			name:      "ExactlyAtLimit",
			entries:   []zipEntry{{name: "a", mode: file, zeros: 1 << 20}},
			lim:       Limits{MaxUnpackedBytes: 1 << 20},
			want:      []string{fmt.Sprintf("a -rw-r--r-- %q", make([]byte, 1<<20))},
			wantStats: Stats{Files: 1, Bytes: 1 << 20},
		},
		{
			name:     "TooManyFiles",
			entries:  []zipEntry{{name: "a", mode: file}, {name: "b", mode: file}, {name: "c", mode: file}},
			lim:      Limits{MaxFiles: 2},
			wantKind: hangar.KindTooLarge,
			wantMsg:  "archive has 3 entries, over the limit of 2",
		},
		{
			name:     "ArchiveTooLarge",
			entries:  []zipEntry{{name: "a", mode: file, body: strings.Repeat("hangar", 100)}},
			lim:      Limits{MaxArchiveBytes: 100},
			wantKind: hangar.KindTooLarge,
			wantMsg:  "archive is {size}, over the 100 B limit",
		},
		{
			name:     "NotAZip",
			garbage:  true,
			wantKind: hangar.KindInvalid,
			wantMsg:  "archive is not a valid zip file (zip: not a valid zip file)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tmp := t.TempDir()
			zipPath := filepath.Join(tmp, "app.zip")
			dest := filepath.Join(tmp, "dest")
			canary := filepath.Join(tmp, "canary")
			writeFiles(t, canary, map[string]string{"file": "canary"})
			if tt.garbage {
				writeFiles(t, tmp, map[string]string{"app.zip": "not a zip"})
			} else {
				writeZip(t, zipPath, tt.entries)
			}
			if tt.preexisting {
				if err := os.Mkdir(dest, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			zi, err := os.Stat(zipPath)
			if err != nil {
				t.Fatal(err)
			}

			stats, err := Unpack(t.Context(), zipPath, dest, tt.lim)
			checkErr(t, err, tt.wantKind, strings.ReplaceAll(tt.wantMsg, "{size}", formatBytes(zi.Size())))

			// Nothing outside dest changed.
			wantOutside := []string{`canary drwxr-xr-x`, `canary/file -rw-r--r-- "canary"`}
			var outside []string
			for _, l := range listTree(t, tmp) {
				if !strings.HasPrefix(l, "dest") && !strings.HasPrefix(l, "app.zip ") {
					outside = append(outside, l)
				}
			}
			if diff := cmp.Diff(wantOutside, outside); diff != "" {
				t.Errorf("outside dest (-want +got):\n%s", diff)
			}

			_, statErr := os.Lstat(dest)
			switch {
			case tt.wantKind == "":
				if diff := cmp.Diff(tt.want, listTree(t, dest)); diff != "" {
					t.Errorf("unpacked tree (-want +got):\n%s", diff)
				}
				if stats != tt.wantStats {
					t.Errorf("got %+v, want %+v", stats, tt.wantStats)
				}
			case tt.preexisting:
				if got := listTree(t, dest); len(got) != 0 {
					t.Errorf("dest holds %q after a failure, want it empty", got)
				}
			case statErr == nil:
				t.Errorf("dest exists after a failure: %q", listTree(t, dest))
			}
		})
	}
}

func TestUnpack_Cancelled(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	zipPath, dest := filepath.Join(tmp, "app.zip"), filepath.Join(tmp, "dest")
	writeZip(t, zipPath, []zipEntry{{name: "a", mode: 0o644, body: "a"}})
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Unpack(ctx, zipPath, dest, Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dest after a cancelled unpack: %v, want it removed", err)
	}
}
