package api

import (
	"math"
	"net/http"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/fleet"
)

// appExecutors lists the app's live executors, oldest first, with their
// state and resource use: memory and its limit, CPU time and recent use,
// CPU throttling, out-of-memory kills.
func (s *Server) appExecutors(w http.ResponseWriter, r *http.Request) error {
	a, err := s.appOf(r)
	if err != nil {
		return err
	}
	exs := s.exs.Executors(r.Context(), a.ID)
	out := make([]apiclient.ExecutorStats, 0, len(exs))
	for _, ex := range exs {
		es := apiclient.ExecutorStats{
			ID: ex.ID, Version: ex.Version, AppVersion: ex.AppVersion, State: string(ex.State),
			StartedAt: ex.StartedAt.UTC().Format(time.RFC3339Nano), MemoryLimitMiB: ex.MemoryLimitMiB,
		}
		if st := ex.Stats; st != nil {
			es.Usage = &apiclient.ExecutorUsage{
				MemoryBytes: st.MemoryBytes, MemoryLimitBytes: st.MemoryLimitBytes, MemoryPeakBytes: st.MemoryPeakBytes,
				Pids: st.Pids, CPUSeconds: st.CPU.Seconds(),
				ThrottledPeriods: st.ThrottledPeriods, ThrottledSeconds: st.Throttled.Seconds(), OOMKills: st.OOMKills,
			}
			if !math.IsNaN(ex.CPUUse) {
				pct := math.Round(ex.CPUUse*1000) / 10
				es.Usage.CPUPercent = &pct
			}
		}
		out = append(out, es)
	}
	return writeJSON(w, http.StatusOK, out)
}

// toHealth converts the health of an app's executors.
func toHealth(h fleet.Health) *apiclient.AppHealth {
	out := &apiclient.AppHealth{Executors: h.Executors, CrashLoop: h.CrashLoop}
	if h.LastProblem != nil {
		ev := toExecutorEvent(*h.LastProblem)
		out.LastProblem = &ev
	}
	return out
}

// toExecutorEvent converts an executor event.
func toExecutorEvent(ev fleet.Event) apiclient.ExecutorEvent {
	return apiclient.ExecutorEvent{
		Time: ev.Time.UTC().Format(time.RFC3339Nano), Kind: string(ev.Kind), Executor: ev.Executor,
		Version: ev.Version, MemoryLimitMiB: ev.MemoryLimitMiB, Message: ev.Message,
	}
}
