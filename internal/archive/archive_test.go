package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// keeper knows which archives versions that did not fail use.
type keeper struct {
	mu   sync.Mutex
	kept map[string]bool
}

func (k *keeper) KeptArchives(context.Context) (map[string]bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	kept := map[string]bool{}
	for d := range k.kept {
		kept[d] = true
	}
	return kept, nil
}

func (k *keeper) keep(digest string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kept[digest] = true
}

func newStore(t *testing.T, max int64) (*Store, *keeper) {
	t.Helper()
	k := &keeper{kept: map[string]bool{}}
	s, err := New(Config{Dir: t.TempDir(), Limits: Limits{MaxBytes: max}}, k)
	if err != nil {
		t.Fatal(err)
	}
	return s, k
}

func digestOf(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// files lists what the store's directory holds, relative to it.
func files(t *testing.T, s *Store) []string {
	t.Helper()
	var got []string
	for _, pat := range []string{"*.zip", "tmp/*", "holds/*"} {
		names, _ := filepath.Glob(filepath.Join(s.dir, pat))
		for _, n := range names {
			rel, _ := filepath.Rel(s.dir, n)
			got = append(got, rel)
		}
	}
	sort.Strings(got)
	return got
}

// TestStore_Receive stores an archive whole and within the limits, or
// not at all.
func TestStore_Receive(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		body string
		size int64
		kind hangar.Kind
		msg  string
	}{
		{name: "Whole", body: "PK0123", size: 6},
		{name: "UnknownSize", body: "PK0123", size: -1},
		{name: "DeclaredTooLarge", body: "PK", size: 11, kind: hangar.KindTooLarge, msg: "the archive is 11 bytes, over the limit of 10 bytes"},
		{name: "ReadTooLarge", body: "PK0123456789", size: -1, kind: hangar.KindTooLarge, msg: "the archive is over the limit of 10 bytes: more than 10 bytes arrived"},
		{name: "Truncated", body: "PK01", size: 6, kind: hangar.KindInvalid, msg: "the archive is truncated: 4 of 6 bytes arrived"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newStore(t, 10)
			d, err := s.Receive(t.Context(), strings.NewReader(tt.body), tt.size)
			if tt.kind != "" {
				if hangar.KindOf(err) != tt.kind || hangar.MessageOf(err) != tt.msg {
					t.Fatalf("Receive() = %v, want %s %q", err, tt.kind, tt.msg)
				}
				if got := files(t, s); len(got) != 0 {
					t.Errorf("files left: %v, want none", got)
				}
				return
			}
			if err != nil {
				t.Fatalf("Receive() = %v", err)
			}
			if d != digestOf(tt.body) {
				t.Errorf("digest %s, want %s", d, digestOf(tt.body))
			}
			f, err := s.Open(d)
			if err != nil {
				t.Fatalf("Open() = %v", err)
			}
			defer f.Close()
			b, _ := os.ReadFile(f.Name())
			if string(b) != tt.body {
				t.Errorf("archive holds %q, want %q", b, tt.body)
			}
		})
	}
}

// TestStore_ReceiveBroken keeps nothing of an upload whose body breaks
// off.
func TestStore_ReceiveBroken(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 10)
	r := iotest.TimeoutReader(strings.NewReader("PK0123")) // the second read fails
	if _, err := s.Receive(t.Context(), iotest.OneByteReader(r), -1); err == nil || hangar.KindOf(err) != hangar.KindInternal {
		t.Fatalf("Receive() = %v, want an internal error", err)
	}
	if got := files(t, s); len(got) != 0 {
		t.Errorf("files left: %v, want none", got)
	}
}

// TestStore_Open refuses a digest that is not stored or names no archive.
func TestStore_Open(t *testing.T) {
	t.Parallel()
	s, _ := newStore(t, 10)
	for _, d := range []string{digestOf("absent"), "../tmp/x", ""} {
		if _, err := s.Open(d); hangar.KindOf(err) != hangar.KindNotFound {
			t.Errorf("Open(%q) = %v, want KindNotFound", d, err)
		}
	}
}

// TestStore_Release deletes a received archive that no version keeps once
// its last holder releases it, and keeps one a version uses.
func TestStore_Release(t *testing.T) {
	t.Parallel()
	s, k := newStore(t, 10)
	ctx := t.Context()
	failed, _ := s.Receive(ctx, strings.NewReader("failed"), -1)
	again, _ := s.Receive(ctx, strings.NewReader("failed"), -1) // the same zip, deployed twice at once
	kept, _ := s.Receive(ctx, strings.NewReader("kept"), -1)
	k.keep(kept)
	s.Release(ctx, failed)
	if _, err := s.Open(failed); err != nil {
		t.Errorf("Open(still held) = %v", err)
	}
	s.Release(ctx, again)
	s.Release(ctx, kept)
	if diff := cmp.Diff([]string{kept + ".zip"}, files(t, s)); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}

// TestStore_GC keeps the archives of versions that did not fail and those
// held, deletes the rest (a failed deploy's, one whose version was never
// recorded) and the temporary files and holds a crash left, but not those
// of uploads under way; and it never deletes an archive whose version is
// being recorded.
func TestStore_GC(t *testing.T) {
	t.Parallel()
	s, k := newStore(t, 1<<20)
	ctx := t.Context()
	shared, failed, orphan := digestOf("shared"), digestOf("failed"), digestOf("orphan")
	for _, d := range []string{shared, failed, orphan} {
		if err := os.WriteFile(s.path(d), []byte("PK"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	k.keep(shared)
	// An upload and a hold a crash left, and an upload under way.
	for _, name := range []string{"tmp/upload-1", "holds/" + orphan + "-1"} {
		if err := os.WriteFile(filepath.Join(s.dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	running, err := s.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer running.Close()

	// A deploy records its version while a pass runs: holding the archive
	// until then keeps it.
	received, err := s.Receive(ctx, strings.NewReader("new"), -1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	recorded := make(chan struct{})
	wg.Go(func() {
		defer s.Release(ctx, received)
		k.keep(received)
		close(recorded)
	})
	wg.Go(func() {
		if err := s.GC(ctx); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	<-recorded

	want := []string{received + ".zip", shared + ".zip", strings.TrimPrefix(running.f.Name(), s.dir+"/")}
	sort.Strings(want)
	if diff := cmp.Diff(want, files(t, s)); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}
