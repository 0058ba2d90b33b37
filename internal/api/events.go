package api

import (
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// appEvents lists the app's recent executor events, oldest first: what
// happened to its executors (exits, out-of-memory kills with their limit,
// failed health checks, restarts, scaling).
func (s *Server) appEvents(w http.ResponseWriter, r *http.Request) error {
	org, err := orgOf(r)
	if err != nil {
		return err
	}
	a, err := s.svc.App(r.Context(), org, r.PathValue("app"))
	if err != nil {
		return err
	}
	evs := s.svc.Events(a.ID)
	out := make([]apiclient.ExecutorEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, apiclient.ExecutorEvent{
			Time: ev.Time.UTC().Format(time.RFC3339Nano), Kind: string(ev.Kind), Executor: ev.Executor,
			Version: ev.Version, MemoryLimitMiB: ev.MemoryLimitMiB, Message: ev.Message,
		})
	}
	return writeJSON(w, http.StatusOK, out)
}
