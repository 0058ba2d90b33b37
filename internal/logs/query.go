package logs

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Query selects an app's lines, oldest first.
type Query struct {
	// Last, when positive, keeps only lines of the last Last before now.
	Last time.Duration
	// Since, when set, keeps only lines at or after Since. With Last too,
	// the later bound wins. Pass Page.Next here to get the next page.
	Since time.Time
	// Upto, when set, keeps only lines before Upto.
	Upto time.Time
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
}

// Page is one page of lines.
type Page struct {
	// Lines are the page's lines, oldest first.
	Lines []Line
	// End reports that no line of the window follows this page. A page
	// with End false holds at least one line.
	End bool
	// Next is the Since that continues after this page: with End false,
	// the time of the first line not returned; with End true, just after
	// the last line returned (or the window's start when there was none,
	// zero when unbounded), for a caller that polls for newer lines.
	Next time.Time
}

// Query returns the first page of appID's lines that q selects. Errors:
// KindInvalid for a negative Last or Limit, or Upto not after Since.
func (s *Store) Query(ctx context.Context, appID string, q Query) (Page, error) {
	if q.Last < 0 {
		return Page{}, hangar.Errorf(hangar.KindInvalid, "last must not be negative")
	}
	if q.Limit < 0 {
		return Page{}, hangar.Errorf(hangar.KindInvalid, "limit must not be negative")
	}
	limit := q.Limit
	if limit == 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	lo := ceilMicro(q.Since)
	if q.Last > 0 {
		if l := ceilMicro(s.cfg.Now().Add(-q.Last)); l.After(lo) {
			lo = l
		}
	}
	hi := ceilMicro(q.Upto)
	if !hi.IsZero() && !hi.After(lo) {
		if !q.Since.IsZero() && q.Last == 0 {
			return Page{}, hangar.Errorf(hangar.KindInvalid, "upto must be after since")
		}
		return Page{End: true, Next: lo}, nil // the last window ends before upto
	}

	var where strings.Builder
	args := []any{appID}
	where.WriteString("app_id = $1")
	if !lo.IsZero() {
		args = append(args, lo)
		fmt.Fprintf(&where, " AND ts >= $%d", len(args))
	}
	if !hi.IsZero() {
		args = append(args, hi)
		fmt.Fprintf(&where, " AND ts < $%d", len(args))
	}
	args = append(args, limit+1)
	rows, err := s.pool.Query(ctx, fmt.Sprintf(
		"SELECT ts, source, version, executor, line FROM app_logs WHERE %s ORDER BY ts LIMIT $%d",
		where.String(), len(args)), args...)
	if err != nil {
		return Page{}, fmt.Errorf("query logs of app %s: %w", appID, err)
	}
	defer rows.Close()
	lines := make([]Line, 0, min(limit+1, 256))
	for rows.Next() {
		l := Line{AppID: appID}
		if err := rows.Scan(&l.Time, &l.Source, &l.Version, &l.Executor, &l.Text); err != nil {
			return Page{}, fmt.Errorf("query logs of app %s: %w", appID, err)
		}
		l.Time = l.Time.UTC()
		lines = append(lines, l)
	}
	if err := rows.Err(); err != nil {
		return Page{}, fmt.Errorf("query logs of app %s: %w", appID, err)
	}
	if len(lines) > limit {
		return Page{Lines: lines[:limit], Next: lines[limit].Time}, nil
	}
	p := Page{Lines: lines, End: true, Next: lo}
	if len(lines) > 0 {
		p.Next = lines[len(lines)-1].Time.Add(time.Microsecond)
	}
	return p, nil
}

// ceilMicro rounds t up to a whole microsecond, the database's precision,
// so that bounds with finer digits select the same lines they would exactly.
func ceilMicro(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	t = t.UTC()
	if f := t.Truncate(time.Microsecond); !f.Equal(t) {
		return f.Add(time.Microsecond)
	}
	return t.Round(0)
}

// followBatch is how many lines one Follow poll reads at most.
const followBatch = 1000

// Follow returns the lines of appID at or after since, then the new ones
// as they are stored (within FlushInterval plus PollInterval of being
// written, by this process or another), until ctx is done; then it closes
// the channel. A zero since starts at the oldest retained line. It returns
// an error when the first read fails; later failures are logged and
// retried. A reader that falls behind slows the polling, never loses lines.
func (s *Store) Follow(ctx context.Context, appID string, since time.Time) (<-chan Line, error) {
	page, err := s.Query(ctx, appID, Query{Since: since, Limit: followBatch})
	if err != nil {
		return nil, err
	}
	ch := make(chan Line, 64)
	go func() {
		defer close(ch)
		t := time.NewTimer(0)
		defer t.Stop()
		failing := false
		for {
			for _, l := range page.Lines {
				select {
				case ch <- l:
				case <-ctx.Done():
					return
				}
			}
			if page.End {
				t.Reset(s.cfg.PollInterval)
				select {
				case <-t.C:
				case <-ctx.Done():
					return
				}
			}
			next, err := s.Query(ctx, appID, Query{Since: page.Next, Limit: followBatch})
			switch {
			case err != nil && ctx.Err() != nil:
				return
			case err != nil:
				if !failing {
					s.log.ErrorContext(ctx, "follow logs", "app", appID, "err", err)
				}
				failing = true
				page = Page{End: true, Next: page.Next}
			default:
				failing = false
				if next.Next.IsZero() {
					next.Next = page.Next
				}
				page = next
			}
		}
	}()
	return ch, nil
}

// Tail returns the text of the last n lines appID's source wrote for
// version, oldest first: the end of a deploy's log, shown with its error.
// Lines still buffered are flushed first.
func (s *Store) Tail(ctx context.Context, appID, source, version string, n int) (string, error) {
	if err := s.flush(ctx); err != nil {
		return "", err
	}
	rows, err := s.pool.Query(ctx, `SELECT line FROM (
		SELECT ts, line FROM app_logs WHERE app_id=$1 AND source=$2 AND version=$3 ORDER BY ts DESC LIMIT $4
	) t ORDER BY ts`, appID, source, version, n)
	if err != nil {
		return "", fmt.Errorf("tail logs of %s: %w", appID, err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return "", err
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String(), rows.Err()
}
