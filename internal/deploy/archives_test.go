package deploy

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// archiveStore knows which archives versions that did not fail use.
type archiveStore struct {
	mu   sync.Mutex
	kept map[string]bool
}

var _ ArchiveLister = (*archiveStore)(nil)

func (a *archiveStore) KeptArchives(context.Context) (map[string]bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	kept := map[string]bool{}
	for d := range a.kept {
		kept[d] = true
	}
	return kept, nil
}

func (a *archiveStore) keep(digest string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.kept[digest] = true
}

// TestService_CollectArchives keeps the archives of versions that did not
// fail, deletes the rest (a failed deploy's, one whose version was never
// recorded), and never deletes one whose version is being recorded.
func TestService_CollectArchives(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, d := range []string{"archives", "tmp"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	st := &archiveStore{kept: map[string]bool{"shared": true}}
	s := &Service{cfg: Config{DataDir: dir}, kept: st, log: slog.New(slog.DiscardHandler)}
	write := func(name string) string {
		t.Helper()
		if err := os.WriteFile(name, []byte("PK"), 0o600); err != nil {
			t.Fatal(err)
		}
		return name
	}
	for _, d := range []string{"shared", "failed", "orphan"} {
		write(s.archivePath(d))
	}
	write(filepath.Join(s.TempDir(), "upload-1.zip")) // left by a crash

	// A deploy stores its archive while a pass runs: the pass waits until
	// the version is recorded.
	received := write(filepath.Join(s.TempDir(), "upload-2.zip"))
	recording, release := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		err := s.storeArchive(received, "new", func() error {
			close(recording)
			<-release
			st.keep("new")
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	})
	<-recording
	wg.Go(func() { s.collectArchives(t.Context()) })
	close(release)
	wg.Wait()
	s.clearTemp(t.Context())

	var got []string
	for _, d := range []string{"archives", "tmp"} {
		names, _ := filepath.Glob(filepath.Join(dir, d, "*"))
		for _, n := range names {
			rel, _ := filepath.Rel(dir, n)
			got = append(got, rel)
		}
	}
	sort.Strings(got)
	if diff := cmp.Diff([]string{"archives/new.zip", "archives/shared.zip"}, got); diff != "" {
		t.Errorf("files left (-want +got):\n%s", diff)
	}
}
