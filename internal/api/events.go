package api

import (
	"net/http"

	"github.com/hangar-oss/hangar/internal/apiclient"
)

// appEvents lists the app's recent executor events, oldest first: what
// happened to its executors (exits, out-of-memory kills with their limit,
// failed health checks, restarts, scaling).
func (s *Server) appEvents(w http.ResponseWriter, r *http.Request) error {
	a, err := s.appOf(r)
	if err != nil {
		return err
	}
	evs := s.exs.Events(a.ID)
	out := make([]apiclient.ExecutorEvent, 0, len(evs))
	for _, ev := range evs {
		out = append(out, toExecutorEvent(ev))
	}
	return writeJSON(w, http.StatusOK, out)
}
