package history

import (
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/fleet"
)

// Events counts executor restarts and OOM kills per app for the Sampler.
// It is safe for concurrent use; use NewEvents.
type Events struct {
	mu sync.Mutex
	// counts are [restarts, OOM kills] per app ID since the last take.
	counts map[string]*[2]int
}

// NewEvents returns an empty Events.
func NewEvents() *Events { return &Events{counts: map[string]*[2]int{}} }

// Observer is told of deploys and of executor events; metrics.Metrics
// satisfies it.
type Observer interface {
	deploy.Observer
	fleet.Observer
}

// Tee returns an Observer that counts executor events here and passes
// everything on to next.
func (e *Events) Tee(next Observer) Observer { return tee{e: e, next: next} }

type tee struct {
	e    *Events
	next Observer
}

func (t tee) DeployEnded(ok bool)                    { t.next.DeployEnded(ok) }
func (t tee) StepEnded(step string, d time.Duration) { t.next.StepEnded(step, d) }
func (t tee) ExecutorEvent(appID string, k fleet.EventKind) {
	t.e.add(appID, k)
	t.next.ExecutorEvent(appID, k)
}

// add counts an exit, a failed health check or start as a restart, and an
// OOM kill as one.
func (e *Events) add(appID string, k fleet.EventKind) {
	i := 0
	switch k {
	case fleet.EventExited, fleet.EventUnhealthy, fleet.EventStartFailed:
	case fleet.EventOOM:
		i = 1
	default:
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.counts[appID]
	if c == nil {
		c = &[2]int{}
		e.counts[appID] = c
	}
	c[i]++
}

func (e *Events) take() map[string]*[2]int {
	e.mu.Lock()
	defer e.mu.Unlock()
	c := e.counts
	e.counts = map[string]*[2]int{}
	return c
}
