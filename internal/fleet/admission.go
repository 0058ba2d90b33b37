package fleet

import (
	"time"
)

// Admission limits (docs/executor-queue.md). An executor whose threads
// wait for a CPU (its quota spent, or the host's CPUs taken by others)
// answers the requests it holds one after another as it gets to run: a
// request sent there waits behind them while another executor of the app
// may be running. So, every AdmissionInterval, the fleet reads how long
// each busy executor of an app with more than one waited for a CPU since
// the last reading; one that waited more than starvedWait of the interval
// is sent at most starvedLimit requests at once (Router.SetLimit), and the
// router queues the rest for the app's first executor with room. The
// limit is lifted at the first reading that waited less, or once the
// executor is idle. An executor that waits on its database, not on a
// CPU, is never limited, however slow its requests.
const (
	starvedWait  = 0.25
	starvedLimit = 2
)

// waitReading is an executor's CPU wait as last read.
type waitReading struct {
	wait time.Duration
	at   time.Time
}

// admission is the admission loop's state: the last readings and the
// executors limited, by address.
type admission struct {
	readings map[string]waitReading // executor ID →
	limited  map[string]bool        // executor address →
}

// starved reports whether an executor that waited wait for a CPU by now,
// after prev, waited more than starvedWait of the time between.
func starved(prev waitReading, wait time.Duration, now time.Time) bool {
	if prev.at.IsZero() || !now.After(prev.at) {
		return false
	}
	return float64(wait-prev.wait) > starvedWait*float64(now.Sub(prev.at))
}

// tick takes one reading of the busy executors of f's pools of more than
// one and sets or lifts their limits.
func (st *admission) tick(f *Fleet) {
	type target struct{ id, addr string }
	var busy, all []target
	f.mu.Lock()
	for _, p := range f.pools {
		for _, ex := range p.executors {
			t := target{ex.id, ex.addr}
			all = append(all, t)
			if len(p.executors) > 1 && f.router.InFlight(ex.addr) > 0 {
				busy = append(busy, t)
			}
		}
	}
	f.mu.Unlock()
	readings := make(map[string]waitReading, len(busy))
	limited := map[string]bool{}
	for _, t := range busy {
		s, err := f.driver.Stats(f.life, t.id)
		if err != nil {
			continue // unknown: not limited (a driver that does not
			// account waits reports 0, never starved)
		}
		now := f.cfg.Now()
		if starved(st.readings[t.id], s.CPUWait, now) {
			limited[t.addr] = true
		}
		readings[t.id] = waitReading{s.CPUWait, now}
	}
	for _, t := range all {
		if limited[t.addr] != st.limited[t.addr] {
			limit := 0
			if limited[t.addr] {
				limit = starvedLimit
			}
			f.router.SetLimit(t.addr, limit)
		}
		delete(st.limited, t.addr)
	}
	// Executors gone from every pool: their addresses may be reused.
	for addr := range st.limited {
		f.router.SetLimit(addr, 0)
	}
	st.readings, st.limited = readings, limited
}
