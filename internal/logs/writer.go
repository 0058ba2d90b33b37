package logs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

const (
	// maxLineBytes splits longer lines, so a process that never writes a
	// newline cannot grow a Writer's buffer without bound.
	maxLineBytes = 64 << 10
	// maxBatch bounds the lines one flush transaction inserts.
	maxBatch = 10_000
	// flushTimeout bounds one flush, so Close and shutdown never hang on
	// an unreachable database.
	flushTimeout = 10 * time.Second
)

// Writer returns a writer for the output of one executor (source
// SourceExecutor, executor its ID) or one deploy step (source SourceDeploy,
// executor the step name) of an app version. It splits what it is given into
// lines, timestamps each when its newline arrives and hands it to the store,
// which inserts it at most FlushInterval later while Run runs. A final line
// without a newline is kept until Close. Write never waits for the
// database; Close flushes and reports whether the flush failed. Writers are
// safe for concurrent use, so one may serve as both Stdout and Stderr.
func (s *Store) Writer(appID, source, version, executor string) io.WriteCloser {
	return &writer{s: s, tmpl: Line{AppID: appID, Source: source, Version: version, Executor: executor}}
}

var _ io.WriteCloser = (*writer)(nil)

type writer struct {
	s    *Store
	tmpl Line

	mu      sync.Mutex
	partial []byte
	closed  bool
}

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, fs.ErrClosed
	}
	now := w.s.cfg.Now()
	var lines []Line
	rest := p
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			w.partial = append(w.partial, rest...)
			// Keep a line of exactly maxLineBytes whole until its newline.
			for len(w.partial) > maxLineBytes {
				lines = append(lines, w.line(now, w.partial[:maxLineBytes]))
				w.partial = w.partial[maxLineBytes:]
			}
			break
		}
		chunk := rest[:i]
		if len(w.partial) > 0 {
			w.partial = append(w.partial, chunk...)
			chunk = w.partial
		}
		for len(chunk) > maxLineBytes {
			lines = append(lines, w.line(now, chunk[:maxLineBytes]))
			chunk = chunk[maxLineBytes:]
		}
		lines = append(lines, w.line(now, bytes.TrimSuffix(chunk, []byte{'\r'})))
		w.partial = w.partial[:0]
		rest = rest[i+1:]
	}
	if len(w.partial) == 0 {
		w.partial = nil // let a long line's buffer go
	}
	w.s.push(lines)
	return len(p), nil
}

// line makes a Line of text, which it copies.
func (w *writer) line(now time.Time, text []byte) Line {
	l := w.tmpl
	l.Time = now
	l.Text = sanitize(text)
	return l
}

// sanitize makes text storable in a PostgreSQL text column.
func sanitize(b []byte) string {
	s := strings.ToValidUTF8(string(b), "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "")
}

// Close stores a final line without a newline, then flushes the store's
// buffered lines. After Close, Write returns fs.ErrClosed.
func (w *writer) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	if len(w.partial) > 0 {
		w.s.push([]Line{w.line(w.s.cfg.Now(), bytes.TrimSuffix(w.partial, []byte{'\r'}))})
		w.partial = nil
	}
	w.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	return w.s.flush(ctx)
}

// size estimates the memory a buffered line holds.
func size(l Line) int {
	return len(l.AppID) + len(l.Source) + len(l.Version) + len(l.Executor) + len(l.Text) + 120
}

// appQueue is one app's buffered lines, oldest first, and their size.
type appQueue struct {
	lines []Line
	bytes int
}

// push buffers lines, trims the buffer to BufferBytes, and wakes the
// flusher early when the buffer fills up.
func (s *Store) push(lines []Line) {
	if len(lines) == 0 {
		return
	}
	s.mu.Lock()
	for _, l := range lines {
		s.enqueueLocked(l)
	}
	s.trimLocked()
	full := s.queuedLines >= maxBatch || s.queuedBytes >= s.cfg.BufferBytes/4
	s.mu.Unlock()
	if full {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *Store) enqueueLocked(l Line) {
	q := s.queues[l.AppID]
	if q == nil {
		q = &appQueue{}
		s.queues[l.AppID] = q
	}
	n := size(l)
	q.lines = append(q.lines, l)
	q.bytes += n
	s.queuedLines++
	s.queuedBytes += n
}

// trimLocked drops buffered lines until they fit BufferBytes, always the
// oldest of the app that holds the most. So an app that holds no more
// than an equal share of the buffer loses nothing to another app's flood.
func (s *Store) trimLocked() {
	for s.queuedBytes > s.cfg.BufferBytes {
		var app string
		var big *appQueue
		second := 0 // the size of the next largest queue
		for id, q := range s.queues {
			switch {
			case big == nil || q.bytes > big.bytes:
				if big != nil {
					second = big.bytes
				}
				app, big = id, q
			case q.bytes > second:
				second = q.bytes
			}
		}
		n := 0
		for s.queuedBytes > s.cfg.BufferBytes && n < len(big.lines) && big.bytes >= second {
			sz := size(big.lines[n])
			big.bytes -= sz
			s.queuedBytes -= sz
			n++
		}
		clear(big.lines[:n])
		big.lines = big.lines[n:]
		s.queuedLines -= n
		if len(big.lines) == 0 {
			delete(s.queues, app)
		}
		s.dropped.Add(int64(n))
		if !s.dropLogged {
			s.dropLogged = true
			s.log.Warn("log buffer full: dropping the oldest lines of the app that holds the most until the database keeps up", "app", app, "lines", n)
		}
	}
}

// flushAndReport flushes, logging the first failure of an outage and the
// recovery after it.
func (s *Store) flushAndReport(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, flushTimeout)
	defer cancel()
	err := s.flush(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err != nil && !s.failing && !errors.Is(err, context.Canceled):
		s.failing = true
		s.log.ErrorContext(ctx, "flush logs: retrying every flush interval", "err", err)
	case err == nil && s.failing:
		s.failing = false
		s.log.InfoContext(ctx, "flush logs: recovered", "dropped_total", s.dropped.Load())
	}
}

// flush inserts every buffered line. On failure the lines not inserted go
// back to the front of the buffer.
func (s *Store) flush(ctx context.Context) error {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	queues := s.queues
	s.queues, s.queuedLines, s.queuedBytes = map[string]*appQueue{}, 0, 0
	s.mu.Unlock()
	var batch []Line
	for _, q := range queues {
		batch = append(batch, q.lines...)
	}
	for len(batch) > 0 {
		n := min(len(batch), maxBatch)
		over, err := s.insert(ctx, batch[:n])
		if err != nil {
			s.requeue(batch)
			return fmt.Errorf("flush logs: %w", err)
		}
		batch = batch[n:]
		for _, app := range over {
			if _, err := s.pruneAll(ctx, app, s.cfg.Now().Add(-s.cfg.MaxAge)); err != nil {
				// Run's next prune tries again.
				s.log.ErrorContext(ctx, "prune logs over the size limit", "app", app, "err", err)
			}
		}
	}
	s.mu.Lock()
	s.dropLogged = false
	s.mu.Unlock()
	return nil
}

// requeue puts lines back in the buffer, before the lines of their apps
// that arrived since.
func (s *Store) requeue(lines []Line) {
	s.mu.Lock()
	defer s.mu.Unlock()
	since := s.queues
	s.queues, s.queuedLines, s.queuedBytes = map[string]*appQueue{}, 0, 0
	for _, l := range lines {
		s.enqueueLocked(l)
	}
	for _, q := range since {
		for _, l := range q.lines {
			s.enqueueLocked(l)
		}
	}
	s.trimLocked()
}

// insert stores lines in one transaction. It locks the state row of each
// of their apps, gives each line max(arrival, previous+1µs) so the app's
// timestamps are distinct and in commit order, and records the new last
// timestamps, counts and sizes. It returns the apps now over
// MaxBytesPerApp.
func (s *Store) insert(ctx context.Context, lines []Line) ([]string, error) {
	apps := sortedApps(lines)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(ctx)
	// DO UPDATE (not DO NOTHING) so the row is locked and returned even
	// when it exists; rows are locked in the sorted order of apps.
	rows, err := tx.Query(ctx, `
		INSERT INTO app_log_state AS s (app_id, last_ts)
		SELECT a, 'epoch' FROM unnest($1::text[]) WITH ORDINALITY AS u(a, o) ORDER BY o
		ON CONFLICT (app_id) DO UPDATE SET last_ts = s.last_ts
		RETURNING app_id, last_ts`, apps)
	if err != nil {
		return nil, err
	}
	last := make(map[string]time.Time, len(apps))
	for rows.Next() {
		var app string
		var ts time.Time
		if err := rows.Scan(&app, &ts); err != nil {
			rows.Close()
			return nil, err
		}
		last[app] = ts
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	counts := make(map[string]int64, len(apps))
	sizes := make(map[string]int64, len(apps))
	copyRows := make([][]any, len(lines))
	for i, l := range lines {
		ts := l.Time.UTC().Truncate(time.Microsecond)
		if p := last[l.AppID]; !ts.After(p) {
			ts = p.Add(time.Microsecond)
		}
		last[l.AppID] = ts
		counts[l.AppID]++
		sizes[l.AppID] += int64(len(l.Text))
		copyRows[i] = []any{l.AppID, ts, l.Source, l.Version, l.Executor, l.Text}
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"app_logs"},
		[]string{"app_id", "ts", "source", "version", "executor", "line"}, pgx.CopyFromRows(copyRows)); err != nil {
		return nil, err
	}
	lastTS := make([]time.Time, len(apps))
	n := make([]int64, len(apps))
	nb := make([]int64, len(apps))
	for i, a := range apps {
		lastTS[i], n[i], nb[i] = last[a], counts[a], sizes[a]
	}
	rows, err = tx.Query(ctx, `
		WITH u AS (
		    UPDATE app_log_state AS s SET last_ts = v.ts, lines = s.lines + v.n, bytes = s.bytes + v.b
		    FROM unnest($1::text[], $2::timestamptz[], $3::bigint[], $4::bigint[]) AS v(app_id, ts, n, b)
		    WHERE s.app_id = v.app_id
		    RETURNING s.app_id, s.bytes)
		SELECT app_id FROM u WHERE bytes > $5`, apps, lastTS, n, nb, s.cfg.MaxBytesPerApp)
	if err != nil {
		return nil, err
	}
	over, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	return over, tx.Commit(ctx)
}

func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
