package logs_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/logs"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// clock is a settable Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var t0 = time.Date(2025, 3, 4, 5, 6, 7, 0, time.UTC)

// newPool returns a pool on a fresh database, closed when the test ends.
func newPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(tb.Context(), pgtest.URL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// openStore opens a Store on pool and runs it until the test ends.
func openStore(tb testing.TB, pool *pgxpool.Pool, cfg logs.Config) *logs.Store {
	tb.Helper()
	s, err := logs.Open(tb.Context(), pool, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	tb.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

func newStore(tb testing.TB, cfg logs.Config) *logs.Store {
	tb.Helper()
	return openStore(tb, newPool(tb), cfg)
}

// write writes text to a new writer of app and closes it, which flushes.
func write(tb testing.TB, s *logs.Store, app, text string) {
	tb.Helper()
	w := s.Writer(app, logs.SourceExecutor, "v1", "ex1")
	if _, err := io.WriteString(w, text); err != nil {
		tb.Fatal(err)
	}
	if err := w.Close(); err != nil {
		tb.Fatal(err)
	}
}

// all returns every line of app, through pages of the largest size.
func all(tb testing.TB, s *logs.Store, app string) []logs.Line {
	tb.Helper()
	var lines []logs.Line
	q := logs.Query{Limit: logs.MaxLimit}
	for {
		p, err := s.Query(tb.Context(), app, q)
		if err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, p.Lines...)
		if p.End {
			return lines
		}
		q.Since = p.Next
	}
}

func texts(lines []logs.Line) []string {
	out := []string{}
	for _, l := range lines {
		out = append(out, l.Text)
	}
	return out
}

// waitTexts polls app's lines until they are want, failing at the deadline.
func waitTexts(tb testing.TB, s *logs.Store, app string, want []string, within time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(within)
	for {
		got := texts(all(tb, s, app))
		diff := cmp.Diff(want, got)
		if diff == "" {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("lines of %s after %v (-want +got):\n%s", app, within, diff)
		}
		time.Sleep(10 * time.Millisecond) // polling interval, not an assertion
	}
}

func numbered(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%04d", prefix, i)
	}
	return out
}

func TestWriter_AppearsWithinFlushInterval(t *testing.T) {
	t.Parallel()
	const flush = 100 * time.Millisecond
	s := newStore(t, logs.Config{FlushInterval: flush})
	w := s.Writer("app", logs.SourceExecutor, "v1", "ex1")
	defer w.Close()
	want := numbered("line", 50)
	if _, err := io.WriteString(w, strings.Join(want, "\n")+"\n"); err != nil {
		t.Fatal(err)
	}
	// The flush interval plus room for a slow machine.
	waitTexts(t, s, "app", want, flush+2*time.Second)

	got := all(t, s, "app")[0]
	if got.AppID != "app" || got.Source != logs.SourceExecutor || got.Version != "v1" || got.Executor != "ex1" {
		t.Errorf("got line %+v, want app app, source executor, version v1, executor ex1", got)
	}
}

func TestWriter_Lines(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{})
	long := strings.Repeat("x", 64<<10)
	tests := []struct {
		name   string
		writes []string
		want   []string
	}{
		{"Empty", nil, []string{}},
		{"OneLine", []string{"hello\n"}, []string{"hello"}},
		{"NoFinalNewline", []string{"a\nb"}, []string{"a", "b"}},
		{"SplitAcrossWrites", []string{"he", "ll", "o\nwor", "ld\n"}, []string{"hello", "world"}},
		{"CRLF", []string{"a\r\nb\r", "\n"}, []string{"a", "b"}},
		{"BlankLines", []string{"\n\na\n"}, []string{"", "", "a"}},
		{"InvalidUTF8AndNUL", []string{"a\xffb\x00c\n"}, []string{"a\uFFFDbc"}},
		{"LongLineSplit", []string{long + "y\n"}, []string{long, "y"}},
		{"LongPartialSplit", []string{long[:1000], long[1000:] + "yz"}, []string{long, "yz"}},
		{"LongPartialThenNewline", []string{long, "\n"}, []string{long}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			app := "app-" + tt.name
			w := s.Writer(app, logs.SourceExecutor, "v1", "ex1")
			for _, p := range tt.writes {
				if n, err := io.WriteString(w, p); err != nil || n != len(p) {
					t.Fatalf("Write(%d bytes) = %d, %v; want %d, nil", len(p), n, err, len(p))
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			// Close flushed: no polling needed.
			if diff := cmp.Diff(tt.want, texts(all(t, s, app))); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if _, err := w.Write([]byte("late\n")); err == nil {
				t.Errorf("Write after Close: got nil error, want one")
			}
		})
	}
}

func TestWriter_PartialLineHeldUntilNewline(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{FlushInterval: 20 * time.Millisecond})
	w := s.Writer("app", logs.SourceExecutor, "v1", "ex1")
	marker := s.Writer("app", logs.SourceDeploy, "v1", "build")
	io.WriteString(w, "first\npar")
	io.WriteString(marker, "marker\n")
	// Flushes keep the order of arrival, so once the marker is stored,
	// anything complete before it is too.
	waitTexts(t, s, "app", []string{"first", "marker"}, 5*time.Second)

	io.WriteString(w, "tial\n")
	waitTexts(t, s, "app", []string{"first", "marker", "partial"}, 5*time.Second)

	io.WriteString(w, "tail")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"first", "marker", "partial", "tail"}, texts(all(t, s, "app"))); diff != "" {
		t.Errorf("lines after Close (-want +got):\n%s", diff)
	}
	marker.Close()
}

// TestWriter_TwoProcessesOneApp writes one app from two stores (two Hangar
// processes) at once, all lines with the same arrival time: every line is
// stored once, under a distinct timestamp, each writer's in its order.
func TestWriter_TwoProcessesOneApp(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	clk := newClock(t0)
	stores := []*logs.Store{
		openStore(t, pool, logs.Config{Now: clk.Now, FlushInterval: 5 * time.Millisecond}),
		openStore(t, pool, logs.Config{Now: clk.Now, FlushInterval: 5 * time.Millisecond}),
	}
	const n = 2000
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Go(func() {
			w := s.Writer("app", logs.SourceExecutor, "v1", fmt.Sprint("ex", i))
			for j := range n {
				fmt.Fprintf(w, "%d-%04d\n", i, j)
			}
			if err := w.Close(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	lines := all(t, stores[0], "app")
	if len(lines) != 2*n {
		t.Fatalf("got %d lines, want %d", len(lines), 2*n)
	}
	next := map[string]int{}
	for i, l := range lines {
		if i > 0 && !l.Time.After(lines[i-1].Time) {
			t.Fatalf("line %d at %v, not after line %d at %v", i, l.Time, i-1, lines[i-1].Time)
		}
		if want := fmt.Sprintf("%s-%04d", l.Executor[2:], next[l.Executor]); l.Text != want {
			t.Fatalf("line %d of %s is %q, want %q", i, l.Executor, l.Text, want)
		}
		next[l.Executor]++
	}
}

func TestWriter_DatabaseDownDropsOldest(t *testing.T) {
	t.Parallel()
	pool := newPool(t)
	s, err := logs.Open(t.Context(), pool, logs.Config{BufferBytes: 10_000})
	if err != nil {
		t.Fatal(err)
	}
	pool.Close() // the database is now unreachable

	w := s.Writer("app", logs.SourceExecutor, "v1", "ex1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 1000 {
			fmt.Fprintf(w, "line %d\n", i)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("writes blocked while the database is down")
	}
	if err := w.Close(); err == nil {
		t.Errorf("Close with the database down: got nil error, want the flush error")
	}
	// ~130 bytes a line: about 75 fit in 10,000 bytes.
	if d := s.Dropped(); d < 900 || d >= 1000 {
		t.Errorf("Dropped() = %d, want the oldest 900 to 999 of 1000 lines", d)
	}
}

func TestDeleteApp(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{})
	write(t, s, "doomed", "a\nb\n")
	write(t, s, "kept", "c\n")
	if err := s.DeleteApp(t.Context(), "doomed"); err != nil {
		t.Fatal(err)
	}
	if got := texts(all(t, s, "doomed")); len(got) != 0 {
		t.Errorf("lines of deleted app: %q, want none", got)
	}
	if diff := cmp.Diff([]string{"c"}, texts(all(t, s, "kept"))); diff != "" {
		t.Errorf("lines of other app (-want +got):\n%s", diff)
	}
	// The name may be used again.
	write(t, s, "doomed", "new\n")
	if diff := cmp.Diff([]string{"new"}, texts(all(t, s, "doomed"))); diff != "" {
		t.Errorf("lines after reuse (-want +got):\n%s", diff)
	}
}

func TestPrune(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxAge   time.Duration
		maxLines int
		want     []string
		deleted  int64
	}{
		// Lines 0-4 at t0, 5-9 at t0+1h, 10-14 at t0+2h; pruned at t0+3h.
		// The other app's one line, at t0+2h, goes only when older than MaxAge.
		{"Defaults", 0, 0, numbered("l", 15), 0},
		{"ByAge", 150 * time.Minute, 0, numbered("l", 15)[5:], 5},
		{"ByAgeAll", time.Minute, 0, []string{}, 16},
		{"ByCount", 0, 4, numbered("l", 15)[11:], 11},
		{"AgeThenCount", 90 * time.Minute, 3, numbered("l", 15)[12:], 12},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clk := newClock(t0)
			s := newStore(t, logs.Config{Now: clk.Now, MaxAge: tt.maxAge, MaxLinesPerApp: tt.maxLines})
			lines := numbered("l", 15)
			for i := range 3 {
				clk.Set(t0.Add(time.Duration(i) * time.Hour))
				write(t, s, "app", strings.Join(lines[5*i:5*i+5], "\n"))
			}
			write(t, s, "other", "x\n")
			clk.Set(t0.Add(3 * time.Hour))
			n, err := s.Prune(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.deleted {
				t.Errorf("Prune() = %d, want %d", n, tt.deleted)
			}
			if diff := cmp.Diff(tt.want, texts(all(t, s, "app"))); diff != "" {
				t.Errorf("lines after Prune (-want +got):\n%s", diff)
			}
			// Counts stay exact: writing more prunes only the new excess.
			if tt.maxLines > 0 {
				clk.Set(t0.Add(3 * time.Hour))
				write(t, s, "app", "m\nn\n")
				if _, err := s.Prune(t.Context()); err != nil {
					t.Fatal(err)
				}
				if got := len(all(t, s, "app")); got != tt.maxLines {
					t.Errorf("after more lines and Prune: %d lines, want %d", got, tt.maxLines)
				}
			}
		})
	}
}

func TestFollow(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{})
	write(t, s, "app", "old\n")
	write(t, s, "other", "not mine\n")
	since := all(t, s, "app")[0].Time
	ch, err := s.Follow(t.Context(), "app", since)
	if err != nil {
		t.Fatal(err)
	}
	if l := <-ch; l.Text != "old" {
		t.Fatalf("first followed line %q, want %q", l.Text, "old")
	}

	// The writer stays open: lines must arrive by the periodic flush.
	w := s.Writer("app", logs.SourceExecutor, "v1", "ex1")
	defer w.Close()
	other := s.Writer("other", logs.SourceExecutor, "v1", "ex1")
	defer other.Close()
	for i := range 3 {
		text := fmt.Sprint("new ", i)
		start := time.Now()
		fmt.Fprintln(other, "not mine either")
		fmt.Fprintln(w, text)
		select {
		case l := <-ch:
			if l.Text != text {
				t.Fatalf("followed %q, want %q", l.Text, text)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("line %d followed after %v, want within 2s", i, d)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("line %q not followed after 10s", text)
		}
	}
}

func TestFollow_ClosesWhenDone(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{})
	ctx, cancel := context.WithCancel(t.Context())
	ch, err := s.Follow(ctx, "app", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("got a line from an empty app, want the channel closed")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed 10s after ctx was canceled")
	}
}

func BenchmarkWriter(b *testing.B) {
	// A buffer large enough that the measure is of lines stored, not dropped.
	s := newStore(b, logs.Config{BufferBytes: 1 << 30})
	w := s.Writer("app", logs.SourceExecutor, "01JBENCHVERSION0000000000", "ex1")
	line := []byte(strings.Repeat("x", 100) + "\n")
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(line); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Close(); err != nil { // the lines are stored when Close returns
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lines/s")
	if d := s.Dropped(); d > 0 {
		b.ReportMetric(float64(d), "dropped")
	}
}
