package fleet

import (
	"time"
)

// Admission limits (docs/executor-queue.md). An executor whose threads
// wait for a CPU (its quota spent, or the host's CPUs taken by others)
// answers the requests it holds one after another as it gets to run: a
// request sent there waits behind them while another executor of the app
// may be running. So, every AdmissionInterval, the fleet reads how long
// the executors of each busy app with more than one waited for a CPU
// since the last reading; when they waited more than starvedWait of the
// interval on average, each is sent at most starvedLimit requests at once
// (Router.SetLimit), and the router queues the rest for the app's first
// executor with room. All of an app's executors are limited together: an
// executor left without a limit would take every request the others
// cannot. The limits are lifted at the first reading that waited less, or
// once the app is idle. Executors that wait on their database, not on a
// CPU, are never limited, however slow their requests.
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

// waited returns the share of the time since prev that an executor that
// waited wait for a CPU by now spent waiting; ok is false without an
// earlier reading.
func waited(prev waitReading, wait time.Duration, now time.Time) (frac float64, ok bool) {
	if prev.at.IsZero() || !now.After(prev.at) {
		return 0, false
	}
	// v1 sums live threads only: one that ended takes its wait along.
	return max(0, float64(wait-prev.wait)/float64(now.Sub(prev.at))), true
}

// tick reads the CPU wait of the executors of f's busy pools of more than
// one and sets or lifts their limits.
func (st *admission) tick(f *Fleet) {
	type target struct{ id, addr string }
	var pools [][]target // busy pools of more than one
	var all []string     // every executor's address
	f.mu.Lock()
	for _, p := range f.pools {
		var ts []target
		busy := false
		for _, ex := range p.executors {
			ts = append(ts, target{ex.id, ex.addr})
			all = append(all, ex.addr)
			busy = busy || f.router.InFlight(ex.addr) > 0
		}
		if busy && len(ts) > 1 {
			pools = append(pools, ts)
		}
	}
	f.mu.Unlock()
	readings := map[string]waitReading{}
	limited := map[string]bool{}
	for _, ts := range pools {
		sum, n := 0.0, 0
		for _, t := range ts {
			s, err := f.driver.Stats(f.life, t.id)
			if err != nil {
				continue // unknown now; a driver that does not account waits reports 0
			}
			now := f.cfg.Now()
			if frac, ok := waited(st.readings[t.id], s.CPUWait, now); ok {
				sum += frac
				n++
			}
			readings[t.id] = waitReading{s.CPUWait, now}
		}
		if n > 0 && sum/float64(n) > starvedWait {
			for _, t := range ts {
				limited[t.addr] = true
			}
		}
	}
	for _, addr := range all {
		if limited[addr] != st.limited[addr] {
			limit := 0
			if limited[addr] {
				limit = starvedLimit
			}
			f.router.SetLimit(addr, limit)
		}
		delete(st.limited, addr)
	}
	// Executors gone from every pool: their addresses may be reused.
	for addr := range st.limited {
		f.router.SetLimit(addr, 0)
	}
	st.readings, st.limited = readings, limited
}
