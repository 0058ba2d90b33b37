package fleet

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// eventLog is an Observer that keeps the executor events it is told of.
type eventLog struct {
	mu     sync.Mutex
	events []string // "appID KIND"
}

func (*eventLog) DeployEnded(bool)                {}
func (*eventLog) StepEnded(string, time.Duration) {}

func (l *eventLog) ExecutorEvent(appID string, kind EventKind) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, appID+" "+string(kind))
}

func (l *eventLog) has(ev string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.events, ev)
}

func TestService_ObserverEvents(t *testing.T) {
	t.Parallel()
	h := newHarness(t, 1, 1, false)
	obs := &eventLog{}
	h.s.cfg.Observer = obs
	ids := h.serve(t, "v1")
	h.exit(t, ids[0], runtime.Status{ExitCode: 137, OOMKilled: true})
	eventually(t, "the observer is told of the OOM kill and the replacement", func() bool {
		return obs.has("app1 OOM") && obs.has("app1 STARTED")
	})
}
