package deploy

import (
	"context"
	"fmt"
	"io"
)

// Log sources.
const (
	sourceDeploy = "deploy"
)

// LogSink stores app logs: deploy-step output and executor output.
type LogSink interface {
	// Writer returns a writer whose lines are stored, timestamped, for the
	// app; executor is the executor ID, or the step name for deploy lines.
	Writer(appID, source, version, executor string) io.WriteCloser
	// Tail returns the last n lines a source wrote for a version.
	Tail(ctx context.Context, appID, source, version string, n int) (string, error)
	// DeleteApp removes every line of the app.
	DeleteApp(ctx context.Context, appID string) error
}

// logf writes one line to a log writer.
func logf(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}

// deployLogTail is the end of a version's deploy log, shown with errors.
func (s *Service) deployLogTail(ctx context.Context, appID, version string) string {
	t, err := s.logs.Tail(ctx, appID, sourceDeploy, version, 60)
	if err != nil {
		s.log.WarnContext(ctx, "read deploy log", "app", appID, "version", version, "err", err)
	}
	return t
}
