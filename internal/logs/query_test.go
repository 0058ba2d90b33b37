package logs_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/logs"
)

func TestQuery_Window(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	s := newStore(t, logs.Config{Now: clk.Now})
	// a* at t0, b* at t0+1h, c* at t0+2h (three lines each, so their
	// timestamps are bumped by 1µs), and another app's lines at the same times.
	for i, p := range []string{"a", "b", "c"} {
		clk.Set(t0.Add(time.Duration(i) * time.Hour))
		write(t, s, "other", "x\ny\n")
		write(t, s, "app", p+"0\n"+p+"1\n"+p+"2\n")
	}
	clk.Set(t0.Add(150 * time.Minute))
	a := []string{"a0", "a1", "a2"}
	b := []string{"b0", "b1", "b2"}
	c := []string{"c0", "c1", "c2"}
	cat := func(ss ...[]string) []string {
		out := []string{}
		for _, s := range ss {
			out = append(out, s...)
		}
		return out
	}
	tests := []struct {
		name string
		q    logs.Query
		want []string
	}{
		{"All", logs.Query{}, cat(a, b, c)},
		{"Last1h", logs.Query{Last: time.Hour}, c},
		{"Last2h", logs.Query{Last: 2 * time.Hour}, cat(b, c)},
		{"Last10m", logs.Query{Last: 10 * time.Minute}, cat()},
		{"SinceInclusive", logs.Query{Since: t0.Add(time.Hour)}, cat(b, c)},
		{"SinceNextMicrosecond", logs.Query{Since: t0.Add(time.Hour + time.Microsecond)}, cat(b[1:], c)},
		{"SinceSubMicrosecondRoundsUp", logs.Query{Since: t0.Add(time.Hour + time.Nanosecond)}, cat(b[1:], c)},
		{"UptoExclusive", logs.Query{Upto: t0.Add(time.Hour)}, a},
		{"SinceUpto", logs.Query{Since: t0.Add(time.Hour), Upto: t0.Add(2 * time.Hour)}, b},
		{"LastAndLaterSince", logs.Query{Last: 2 * time.Hour, Since: t0.Add(2 * time.Hour)}, c},
		{"LastAndEarlierSince", logs.Query{Last: time.Hour, Since: t0}, c},
		{"LastAndUpto", logs.Query{Last: 3 * time.Hour, Upto: t0.Add(time.Hour)}, a},
		{"LastEndsBeforeUpto", logs.Query{Last: time.Hour, Upto: t0.Add(time.Hour)}, cat()},
		{"SinceAfterAll", logs.Query{Since: t0.Add(3 * time.Hour)}, cat()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := s.Query(t.Context(), "app", tt.q)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, texts(p.Lines)); diff != "" {
				t.Errorf("lines (-want +got):\n%s", diff)
			}
			if !p.End {
				t.Errorf("End = false, want true")
			}
			for _, l := range p.Lines {
				if l.AppID != "app" {
					t.Errorf("got a line of app %q, want only app", l.AppID)
				}
			}
		})
	}
}

func TestQuery_Invalid(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{})
	tests := []struct {
		name string
		q    logs.Query
	}{
		{"NegativeLast", logs.Query{Last: -time.Second}},
		{"NegativeLimit", logs.Query{Limit: -1}},
		{"UptoBeforeSince", logs.Query{Since: t0, Upto: t0.Add(-time.Second)}},
		{"UptoEqualsSince", logs.Query{Since: t0, Upto: t0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := s.Query(t.Context(), "app", tt.q)
			if got := hangar.KindOf(err); got != hangar.KindInvalid {
				t.Errorf("got error %v of kind %s, want kind %s", err, got, hangar.KindInvalid)
			}
		})
	}
}

func TestQuery_Limit(t *testing.T) {
	t.Parallel()
	s := newStore(t, logs.Config{Now: newClock(t0).Now})
	write(t, s, "app", strings.Join(numbered("l", logs.MaxLimit+1), "\n"))
	tests := []struct {
		name  string
		limit int
		want  int
	}{
		{"Default", 0, logs.DefaultLimit},
		{"Given", 10, 10},
		{"Max", logs.MaxLimit, logs.MaxLimit},
		{"Capped", 5 * logs.MaxLimit, logs.MaxLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p, err := s.Query(t.Context(), "app", logs.Query{Limit: tt.limit})
			if err != nil {
				t.Fatal(err)
			}
			if len(p.Lines) != tt.want || p.End {
				t.Errorf("got %d lines, End %v; want %d, End false", len(p.Lines), p.End, tt.want)
			}
		})
	}
}

// TestQuery_PaginationLikeCLI drives Query the way the API serves the loop
// of the official CLI 2.10.24 (get-app-logs.js): a first request with
// last and limit, then requests with since = the previous next_timestamp,
// verbatim, until end; each body printed with trimEnd.
func TestQuery_PaginationLikeCLI(t *testing.T) {
	t.Parallel()
	clk := newClock(t0)
	s := newStore(t, logs.Config{Now: clk.Now})
	// 2500 lines that arrive at three instants 100µs apart.
	want := numbered("line", 2500)
	for i, chunk := range [][]string{want[:1000], want[1000:2000], want[2000:]} {
		clk.Set(t0.Add(time.Duration(i) * 100 * time.Microsecond))
		write(t, s, "app", strings.Join(chunk, "\n")+"\n")
	}
	write(t, s, "other", "not mine\n")
	clk.Set(t0.Add(time.Minute))
	wantOut := strings.TrimRight(logs.FormatBody(all(t, s, "app")), " \n") + "\n"

	tests := []struct {
		name  string
		last  time.Duration
		limit int
		pages int
	}{
		{"Limit1", 0, 1, 2500},
		{"Limit7", 0, 7, 358},
		{"Limit999", 0, 999, 3},
		{"Limit1000", 0, 1000, 3},
		{"Limit1250", 0, 1250, 2},
		{"Limit2499", 0, 2499, 2},
		{"Limit2500", 0, 2500, 1},
		{"Limit2501", 0, 2501, 1},
		{"LastHour", time.Hour, 1000, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			var out strings.Builder
			q := logs.Query{Last: tt.last, Limit: tt.limit}
			pages := 0
			for {
				p, err := s.Query(t.Context(), "app", q)
				if err != nil {
					t.Fatal(err)
				}
				pages++
				body := logs.FormatBody(p.Lines)
				if !p.End && body == "" {
					t.Fatalf("page %d: empty body with end false; the CLI would print a blank line", pages)
				}
				out.WriteString(strings.TrimRight(body, " \n") + "\n") // console.log(body.trimEnd())
				got = append(got, texts(p.Lines)...)
				if p.End {
					break
				}
				// next_timestamp goes to the CLI and comes back as since.
				since, err := logs.ParseTimestamp(logs.FormatTimestamp(p.Next))
				if err != nil {
					t.Fatal(err)
				}
				q = logs.Query{Since: since, Limit: tt.limit}
				if pages > 3000 {
					t.Fatal("more than 3000 pages")
				}
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("lines over all pages (-want +got):\n%s", diff)
			}
			if pages != tt.pages {
				t.Errorf("got %d pages, want %d", pages, tt.pages)
			}
			if out.String() != wantOut {
				t.Errorf("printed output differs from the lines' body, one page after another")
			}
		})
	}
}

// TestQuery_PaginationWhileWriting pages through an app while another
// writer adds lines: every line stored before the last page is read once.
func TestQuery_PaginationWhileWriting(t *testing.T) {
	t.Parallel()
	clk := newClock(t0) // every line arrives at the same instant
	s := newStore(t, logs.Config{Now: clk.Now, FlushInterval: 5 * time.Millisecond})
	w := s.Writer("app", logs.SourceExecutor, "v1", "ex1")
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range 3000 {
			fmt.Fprintf(w, "line%04d\n", i)
		}
	}()
	var got []string
	q := logs.Query{Limit: 50}
	for {
		p, err := s.Query(t.Context(), "app", q)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, texts(p.Lines)...)
		if p.End {
			select {
			case <-done:
			default:
				q.Since = p.Next // poll on, as Follow does
				continue
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			p, err := s.Query(t.Context(), "app", logs.Query{Since: p.Next, Limit: logs.MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, texts(p.Lines)...)
			break
		}
		q.Since = p.Next
	}
	if diff := cmp.Diff(numbered("line", 3000), got); diff != "" {
		t.Errorf("lines read while writing (-want +got):\n%s", diff)
	}
}
