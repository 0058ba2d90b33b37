package fleet

import (
	"fmt"
	"slices"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// eventsKept is how many events the fleet keeps per app.
const eventsKept = 50

// EventKind says what happened to an executor.
type EventKind string

// Kinds of executor events.
const (
	EventExited      EventKind = "EXITED"       // the process exited by itself
	EventOOM         EventKind = "OOM"          // the kernel killed it for exceeding its memory limit
	EventUnhealthy   EventKind = "UNHEALTHY"    // it stopped answering HTTP and was stopped
	EventStartFailed EventKind = "START_FAILED" // a replacement or drainer did not become healthy
	EventStarted     EventKind = "STARTED"      // a replacement, scale-up or drainer serves
	EventScaledUp    EventKind = "SCALED_UP"    // an executor is added for load
	EventScaledDown  EventKind = "SCALED_DOWN"  // an executor was retired for lack of load
	EventRecovered   EventKind = "RECOVERED"    // PENDING workflows of dead executors were re-enqueued
)

// Event is something that happened to an app's executors that its users
// should see. The Fleet keeps the last ones of each app in memory.
type Event struct {
	Time     time.Time
	Kind     EventKind
	Executor string
	Version  string
	// MemoryLimitMiB is the executor's limit, for EventOOM.
	MemoryLimitMiB int
	// Message is the line written to the app's logs.
	Message string
}

// Events returns the app's recent executor events, oldest first.
func (f *Fleet) Events(appID string) []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[appID])
}

// event records ev for the app and writes its message to the app's logs
// and to Hangar'f.
func (f *Fleet) event(appID string, ev Event) {
	ev.Time = f.cfg.Now()
	f.mu.Lock()
	evs := append(f.events[appID], ev)
	if len(evs) > eventsKept {
		evs = slices.Delete(evs, 0, len(evs)-eventsKept)
	}
	f.events[appID] = evs
	f.mu.Unlock()
	if f.cfg.Observer != nil {
		f.cfg.Observer.ExecutorEvent(appID, ev.Kind)
	}
	level := "info"
	switch ev.Kind {
	case EventExited, EventOOM, EventUnhealthy, EventStartFailed:
		level = "warn"
	}
	args := []any{"app", appID, "version", ev.Version, "executor", ev.Executor, "event", string(ev.Kind)}
	if level == "warn" {
		f.log.Warn(ev.Message, args...)
	} else {
		f.log.Info(ev.Message, args...)
	}
	w := f.logs.Writer(appID, logSource, ev.Version, ev.Executor)
	logf(w, "hangar: %s", ev.Message)
	w.Close()
}

// death is how a supervised executor ended.
type death struct {
	status    runtime.Status // how its process ended, when it exited
	unhealthy int            // health checks failed in a row, when it hung
}

// describe says what happened to ex, for its event.
func (d death) describe(ex *executor) (EventKind, string) {
	switch {
	case d.unhealthy > 0:
		return EventUnhealthy, fmt.Sprintf("executor %s stopped answering HTTP (%d health checks failed in a row) and was stopped", ex.id, d.unhealthy)
	case d.status.OOMKilled:
		return EventOOM, fmt.Sprintf("executor %s was killed: out of memory (limit %d MiB)", ex.id, ex.memoryMiB)
	}
	msg := fmt.Sprintf("executor %s exited with code %d", ex.id, d.status.ExitCode)
	if n := d.status.ExitCode - 128; n > 0 && n < 65 {
		msg += fmt.Sprintf(" (signal %s)", syscall.Signal(n))
	}
	return EventExited, msg
}
