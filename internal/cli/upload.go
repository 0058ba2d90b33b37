package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// defaultMaxArchive is the largest archive Hangar accepts, 500 MiB; the
// environment variable HANGAR_MAX_ARCHIVE_BYTES lowers (or raises) the
// CLI's check, for tests and for servers configured otherwise.
const defaultMaxArchive = 500 << 20

// maxArchive is the archive size limit the CLI enforces before uploading.
func (e *env) maxArchive() (int64, error) {
	v := e.getenv("HANGAR_MAX_ARCHIVE_BYTES")
	if v == "" {
		return defaultMaxArchive, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("HANGAR_MAX_ARCHIVE_BYTES must be a positive number of bytes, not %q", v)
	}
	return n, nil
}

// tempDir is where the archive is built: $TMPDIR, else the system's.
func (e *env) tempDir() string {
	if d := e.getenv("TMPDIR"); d != "" {
		return d
	}
	return os.TempDir()
}

// streamDeploy deploys the archive of root through Hangar's streaming
// endpoint: it zips into a temporary file (on disk, so memory stays flat
// and the upload has a Content-Length for its progress bar), refuses an
// archive over the limit before uploading, uploads with progress on stderr,
// then, while the server runs the deploy, prints its step lines. A server
// without the endpoint gets the official base64 body instead.
// size: one upload with its progress, step lines and fallback, sharing the archive file and the result channel.
func (e *env) streamDeploy(ctx context.Context, s *session, app, root string, files []string, config []byte) (apiclient.DeployResponse, error) {
	limit, err := e.maxArchive()
	if err != nil {
		return apiclient.DeployResponse{}, err
	}
	f, err := os.CreateTemp(e.tempDir(), "dbos-cloud-*.zip")
	if err != nil {
		return apiclient.DeployResponse{}, fmt.Errorf("create the archive: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	start := time.Now()
	cw := &cappedWriter{w: f, limit: limit}
	if err := writeArchive(cw, root, files, config); err != nil {
		return apiclient.DeployResponse{}, fmt.Errorf("create the archive: %w", err)
	}
	if cw.n > limit {
		return apiclient.DeployResponse{}, fmt.Errorf("the archive of %s is %s (%d bytes), over the limit of %s (%d bytes): nothing was uploaded. "+
			"Leave large files out with a .dbosignore file (one glob pattern a line)", app, byteSize(cw.n), cw.n, byteSize(limit), limit)
	}
	e.info("Archived %d files into %s in %s", len(files)+1, byteSize(cw.n), time.Since(start).Round(time.Millisecond))

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	uploaded := make(chan struct{})
	body := &progressReader{r: io.NewSectionReader(f, 0, cw.n), size: cw.n, bar: e.progress(cw.n), done: uploaded}
	type result struct {
		out apiclient.DeployResponse
		err error
	}
	res := make(chan result, 1)
	uploadStart := time.Now()
	steps := &stepPrinter{e: e, s: s, app: app, since: uploadStart}
	go func() {
		out, err := s.DeployZip(ctx, s.org(), app, body, cw.n)
		res <- result{out, err}
	}()
	var r result
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	showUploaded := func() {
		d := time.Since(uploadStart)
		e.info("Uploaded %s in %s (%s/s); deploying...", byteSize(cw.n), d.Round(time.Millisecond), byteSize(int64(float64(cw.n)/max(d.Seconds(), 0.001))))
	}
wait:
	for {
		select {
		case r = <-res:
			break wait
		case <-uploaded:
			uploaded = nil
			showUploaded()
		case <-tick.C:
			if uploaded == nil {
				steps.poll(ctx)
			}
		}
	}
	body.finish()
	var ae *apiclient.Error
	errors.As(r.err, &ae)
	if ae != nil && ae.StatusCode == 404 && !strings.Contains(ae.Message, "application "+app+" not found") {
		e.debug("The server has no streaming upload (%s); sending the archive base64-encoded", ae.Message)
		return s.DeployArchive(ctx, s.org(), app, "", func(w io.Writer) error {
			_, err := io.Copy(w, io.NewSectionReader(f, 0, cw.n))
			return err
		})
	}
	// A deploy that ran, to success or to a failed step, has step lines;
	// the deploy's writers flush before it answers, so this reads the rest.
	if r.err == nil || (ae != nil && strings.HasPrefix(ae.Message, "deploy failed at step")) {
		if uploaded != nil {
			showUploaded()
		}
		if steps.version == "" {
			steps.version = r.out.ApplicationVersion
		}
		if steps.poll(ctx) && steps.lines > 0 && ae != nil {
			// Its output was just shown; the error's log tail would repeat it.
			trimmed := *ae
			trimmed.DetailedError = ""
			r.err = &trimmed
		}
	}
	return r.out, r.err
}

// cappedWriter writes to w until limit bytes are exceeded, then only counts,
// so that an archive too large is measured without filling the disk.
type cappedWriter struct {
	w     io.Writer
	limit int64
	n     int64
}

func (c *cappedWriter) Write(p []byte) (int, error) {
	if c.n+int64(len(p)) <= c.limit {
		n, err := c.w.Write(p)
		c.n += int64(n)
		return n, err
	}
	c.n += int64(len(p))
	return len(p), nil
}

// progress shows upload progress on stderr: a bar with bytes, rate and ETA
// on a terminal, else a line at every 10%.
func (e *env) progress(size int64) progressSink {
	if f, ok := e.stderr.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return barSink{progressbar.NewOptions64(size,
				progressbar.OptionSetWriter(e.stderr),
				progressbar.OptionSetDescription("Uploading"),
				progressbar.OptionShowBytes(true),
				progressbar.OptionShowTotalBytes(true),
				progressbar.OptionShowCount(),
				progressbar.OptionSetPredictTime(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.stderr) }),
			)}
		}
	}
	return &lineSink{w: e.stderr, size: size, start: time.Now()}
}

// progressSink receives the bytes sent so far, then the end of the upload:
// complete, or stopped short.
type progressSink interface {
	set(n int64)
	finish(complete bool)
}

type barSink struct{ b *progressbar.ProgressBar }

func (s barSink) set(n int64) { s.b.Set64(n) } //nolint:errcheck // display only
func (s barSink) finish(complete bool) {
	if complete {
		s.b.Finish() //nolint:errcheck // display only
	} else {
		s.b.Exit() //nolint:errcheck // display only: keeps the bar where it stopped
	}
}

// lineSink prints "Uploading: 40% (…)" at every tenth.
type lineSink struct {
	w      io.Writer
	size   int64
	start  time.Time
	tenths int64
}

func (s *lineSink) set(n int64) {
	t := n * 10 / max(s.size, 1)
	if t <= s.tenths {
		return
	}
	s.tenths = t
	rate := float64(n) / max(time.Since(s.start).Seconds(), 0.001)
	fmt.Fprintf(s.w, "Uploading: %d%% (%s of %s, %s/s)\n", t*10, byteSize(n), byteSize(s.size), byteSize(int64(rate)))
}

func (s *lineSink) finish(bool) {}

// progressReader reports what the HTTP client has read of the body, and
// closes done once it all has been.
type progressReader struct {
	r    io.Reader
	size int64
	bar  progressSink
	done chan struct{}

	mu       sync.Mutex
	n        int64
	finished bool
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n += int64(n)
	if !p.finished {
		p.bar.set(p.n)
		if p.n >= p.size {
			p.finished = true
			p.bar.finish(true)
			close(p.done)
		}
	}
	return n, err
}

// finish ends the display when the upload stopped short.
func (p *progressReader) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.finished {
		p.finished = true
		p.bar.finish(false)
	}
}

// stepPrinter prints a running deploy's log lines from the app's logs: the
// step lines ("==> step configuration started") as they are, their output
// indented.
type stepPrinter struct {
	e   *env
	s   *session
	app string
	// since is when to read from; the first read asks for the seconds
	// since then, measured here, so that a server whose clock differs
	// still answers from its own; later reads continue from next.
	since time.Time
	next  string
	// version is the deploy's version, learned from its first step's
	// start line (or from the deploy's answer); other versions' lines are
	// skipped.
	version string
	lines   int
}

// logLine parses a line of the logs body: "<time> [<source>/<executor>@<version>] <text>".
var logLine = regexp.MustCompile(`^\S+ \[([^/@\]]+)(?:/([^@\]]*))?(?:@([^\]]*))?\] (.*)$`)

// poll prints the deploy lines that arrived since the last poll and
// reports whether it read to the end.
func (p *stepPrinter) poll(ctx context.Context) bool {
	for {
		q := url.Values{"limit": {"1000"}}
		if p.next != "" {
			q.Set("since", p.next)
		} else {
			q.Set("last", strconv.Itoa(int(time.Since(p.since).Seconds())+2))
		}
		page, err := p.s.AppLogs(ctx, p.s.org(), p.app, q)
		if err != nil {
			p.e.debug("Reading the deploy's logs failed: %v", err)
			return false
		}
		for _, l := range strings.Split(strings.TrimRight(page.Body, "\n"), "\n") {
			p.print(l)
		}
		if page.NextTimestamp != "" {
			p.next = page.NextTimestamp
		}
		if page.End {
			return true
		}
	}
}

func (p *stepPrinter) print(line string) {
	m := logLine.FindStringSubmatch(line)
	if m == nil || m[1] != "deploy" {
		return
	}
	version, text := m[3], m[4]
	if p.version == "" && strings.HasPrefix(text, "==> step upload started") {
		p.version = version
	}
	if version != p.version {
		return
	}
	p.lines++
	if strings.HasPrefix(text, "==> ") {
		p.e.info("%s", text)
	} else {
		p.e.info("    %s", text)
	}
}

// byteSize formats n bytes for people.
func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
