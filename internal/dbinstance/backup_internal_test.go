package dbinstance

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPruneWAL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := []string{
		"000000010000000000000001.gz",
		"000000010000000000000002",
		"000000010000000000000002.00000028.backup.gz",
		"000000010000000000000003.gz", // first needed
		"000000010000000000000004.partial.gz",
		"000000020000000000000002.gz", // another timeline, older
		"000000020000000000000005.gz",
		"00000002.history.gz",
		"000000010000000000000001.gz.tmp", // not a WAL file name
	}
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := pruneWAL(r, ".", "000000010000000000000003"); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(dir)
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	want := []string{
		"000000010000000000000001.gz.tmp",
		"000000010000000000000003.gz",
		"000000010000000000000004.partial.gz",
		"00000002.history.gz",
		"000000020000000000000005.gz",
	}
	slices.Sort(got)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("archive after pruning (-want +got):\n%s", diff)
	}
}

func TestStartSegment(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	label := "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nCHECKPOINT LOCATION: 0/2000060\n"
	if err := os.WriteFile(filepath.Join(dir, "backup_label"), []byte(label), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := startSegment(r, "."); err != nil || got != "000000010000000000000002" {
		t.Errorf("startSegment() = %q, %v; want 000000010000000000000002", got, err)
	}
}
