package logs_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/logs"
)

// TestWriter_FloodKeepsOtherAppsLines floods the buffer with one app's
// lines while the database is not written to: the other app's lines all
// arrive, and the flooding app keeps its newest lines.
func TestWriter_FloodKeepsOtherAppsLines(t *testing.T) {
	t.Parallel()
	// No Run: nothing is flushed until a writer closes, as when the
	// database cannot keep up.
	s, err := logs.Open(t.Context(), newPool(t), logs.Config{BufferBytes: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	quiet := s.Writer("quiet", logs.SourceExecutor, "v1", "ex1")
	flood := s.Writer("flood", logs.SourceExecutor, "v1", "ex1")
	want := numbered("q", 40)
	for _, l := range want[:20] {
		fmt.Fprintln(quiet, l)
	}
	// ~230 bytes a line with overhead: 5,000 lines are ~1.1 MiB.
	pad := strings.Repeat("x", 100)
	for i := range 5000 {
		fmt.Fprintf(flood, "f%04d %s\n", i, pad)
	}
	for _, l := range want[20:] {
		fmt.Fprintln(quiet, l)
	}
	if err := flood.Close(); err != nil {
		t.Fatal(err)
	}
	if err := quiet.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, texts(all(t, s, "quiet"))); diff != "" {
		t.Errorf("attempt: flood the log buffer -> the quiet app's lines (-want +got):\n%s", diff)
	} else {
		t.Logf("attempt: one app floods the shared log buffer -> denied (another app's 40 lines all arrive; %d of the flood's dropped)", s.Dropped())
	}
	got := texts(all(t, s, "flood"))
	if len(got) == 0 || len(got) >= 5000 || got[len(got)-1] != fmt.Sprintf("f4999 %s", pad) {
		t.Errorf("flooding app kept %d lines ending %q, want its newest lines only", len(got), got[len(got)-1:])
	}
	if d := s.Dropped(); d != int64(5000-len(got)) {
		t.Errorf("Dropped() = %d, want %d (the flood's lines not stored)", d, 5000-len(got))
	}
}

// TestStore_MaxBytesPerApp writes past one app's size limit: it keeps its
// newest lines within the limit, and another app keeps all of its own.
func TestStore_MaxBytesPerApp(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{MaxBytesPerApp: 1000})
	lines := make([]string, 300) // 100 bytes each: 30,000 bytes
	for i := range lines {
		lines[i] = fmt.Sprintf("big%04d %s", i, strings.Repeat("y", 92))
	}
	write(t, s, "other", "o1\no2\n")
	for i := 0; i < len(lines); i += 50 {
		write(t, s, "big", strings.Join(lines[i:i+50], "\n")+"\n")
	}
	write(t, s, "other", "o3\n")
	if diff := cmp.Diff(lines[290:], texts(all(t, s, "big"))); diff != "" {
		t.Errorf("lines of the app over its limit (-want its newest 1000 bytes +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"o1", "o2", "o3"}, texts(all(t, s, "other"))); diff != "" {
		t.Errorf("lines of the other app (-want +got):\n%s", diff)
	}
	// The size stays exact: Prune finds nothing more to delete.
	if n, err := s.Prune(t.Context()); err != nil || n != 0 {
		t.Errorf("Prune() = %d, %v; want 0, nil", n, err)
	}
}
