package fleet

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// ExecutorState is where a live executor of an app is in its life.
type ExecutorState string

// The states Executors reports.
const (
	ExecutorStarting ExecutorState = "STARTING" // started, not yet answering HTTP
	ExecutorServing  ExecutorState = "SERVING"  // in the app's route
	ExecutorRetiring ExecutorState = "RETIRING" // out of the route, finishing its requests and its version's workflows
	ExecutorDraining ExecutorState = "DRAINING" // started without route to finish the workflows of a version nothing else runs
	ExecutorStopping ExecutorState = "STOPPING" // its process exited, or Hangar is stopping it
)

// ExecutorStatus is a live executor of an app and its resource use.
type ExecutorStatus struct {
	ID         string
	Version    string // the Hangar version it runs
	AppVersion string // its DBOS__APPVERSION
	State      ExecutorState
	StartedAt  time.Time
	// MemoryLimitMiB is the app's memory setting when it started.
	MemoryLimitMiB int
	// Stats is what the driver accounts; nil when it does not account
	// resources, or the executor stopped meanwhile.
	Stats *runtime.Stats
	// CPUUse is the vCPUs it used over the last scaling interval; NaN
	// until the supervisor took two samples of it, which it does for
	// serving executors only.
	CPUUse float64
}

// Executors returns the app's live executors, oldest first: those of its
// serving version and those still finishing the work of older versions,
// each with its resource use.
func (f *Fleet) Executors(ctx context.Context, appID string) []ExecutorStatus {
	f.mu.Lock()
	serving := map[*executor]bool{}
	if p := f.pools[appID]; p != nil && !p.closed {
		for _, ex := range p.executors {
			serving[ex] = true
		}
	}
	var out []ExecutorStatus
	for _, ex := range f.live {
		if ex.app != appID {
			continue
		}
		st := ExecutorStatus{ID: ex.id, Version: ex.version, AppVersion: ex.appVersion, StartedAt: ex.startedAt,
			MemoryLimitMiB: ex.memoryMiB, CPUUse: math.NaN()}
		switch {
		case closed(ex.stopped) || closed(ex.exited):
			st.State = ExecutorStopping
		case serving[ex]:
			st.State, st.CPUUse = ExecutorServing, ex.cpuUse
		case ex.readyAt.IsZero():
			st.State = ExecutorStarting
		case ex.drain != nil:
			st.State = ExecutorDraining
		default:
			st.State = ExecutorRetiring
		}
		out = append(out, st)
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b ExecutorStatus) int {
		return cmp.Or(a.StartedAt.Compare(b.StartedAt), strings.Compare(a.ID, b.ID))
	})
	for i := range out {
		st, err := f.driver.Stats(ctx, out[i].ID)
		switch k := hangar.KindOf(err); {
		case err == nil:
			out[i].Stats = &st
		case k != hangar.KindNotFound && k != hangar.KindUnavailable && ctx.Err() == nil:
			f.log.WarnContext(ctx, "read executor stats", "app", appID, "executor", out[i].ID, "err", err)
		}
	}
	return out
}

// Health is how an app's executors fare, for its status.
type Health struct {
	// Executors counts the executors that serve the app.
	Executors int
	// CrashLoop, set while the app is below its minimum executors after
	// three failures or more since it last served steadily, says how many
	// and when the next executor starts: "5 restarts in 2m10s; next start
	// in 40s".
	CrashLoop string
	// LastProblem is the app's latest executor failure (an exit, an
	// out-of-memory kill, a failed health check or start) Hangar keeps;
	// nil when none.
	LastProblem *Event
}

// Health returns how the app's executors fare now.
func (f *Fleet) Health(appID string) Health {
	now := f.cfg.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	var h Health
	if p := f.pools[appID]; p != nil && !p.closed {
		h.Executors = len(p.executors)
		if b := p.restarts; b.Failures >= 3 && len(p.executors) < p.min {
			h.CrashLoop = fmt.Sprintf("%d restarts in %s; ", b.Failures, now.Sub(b.First).Round(time.Second))
			if wait := b.Retry.Sub(now); wait > 0 {
				h.CrashLoop += fmt.Sprintf("next start in %s", wait.Round(time.Second))
			} else {
				h.CrashLoop += "an executor is starting"
			}
		}
	}
	evs := f.events[appID]
	for i := len(evs) - 1; i >= 0; i-- {
		switch evs[i].Kind {
		case EventExited, EventOOM, EventUnhealthy, EventStartFailed:
			ev := evs[i]
			h.LastProblem = &ev
			return h
		}
	}
	return h
}
