package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// deployLogPath is the log of one version's deploy.
func (s *Service) deployLogPath(appID, version string) string {
	return filepath.Join(s.appDir(appID), "logs", "deploy-"+version+".log")
}

// deployLogWriter returns a writer appending timestamped lines to the deploy
// log of in; the caller closes it with closeLog.
func (s *Service) deployLogWriter(in deployInput) io.Writer {
	path := s.deployLogPath(in.AppID, in.Version)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		s.log.Error("open deploy log", "err", err)
		return io.Discard
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		s.log.Error("open deploy log", "err", err)
		return io.Discard
	}
	return &lineWriter{w: f, c: f, now: time.Now}
}

// deployLog appends one line to the deploy log of in.
func (s *Service) deployLog(in deployInput, format string, args ...any) {
	w := s.deployLogWriter(in)
	fmt.Fprintf(w, format+"\n", args...)
	closeLog(w)
}

func closeLog(w io.Writer) {
	if c, ok := w.(io.Closer); ok {
		c.Close()
	}
}

// lineWriter prefixes each complete line with a UTC timestamp.
type lineWriter struct {
	mu  sync.Mutex
	w   io.Writer
	c   io.Closer
	buf []byte
	now func() time.Time
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := fmt.Fprintf(l.w, "%s %s\n", l.now().UTC().Format(time.RFC3339Nano), l.buf[:i]); err != nil {
			return 0, err
		}
		l.buf = l.buf[i+1:]
	}
	return len(p), nil
}

// Close flushes a partial last line and closes the file.
func (l *lineWriter) Close() error {
	if len(l.buf) > 0 {
		l.Write([]byte("\n")) //nolint:errcheck
	}
	return l.c.Close()
}

// tail returns the last n lines of a file ("" when unreadable).
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}
