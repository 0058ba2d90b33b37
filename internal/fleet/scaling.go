package fleet

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Scaling keeps an app between MinVMs and MaxVMs executors, one step per
// decision, as DBOS Cloud does (API.md §2):
//
//   - up when the executors' CPU use averaged over the last scaleWindow
//     samples exceeds scaleUpCPU of their vCPU, or when the app's queues
//     hold more ENQUEUED workflows than ScaleQueueDepth per executor. DBOS
//     Cloud compares the queue with each queue's worker_concurrency, which
//     only an app's admin server reports and current SDKs have none: Hangar
//     uses one operator-set depth per executor instead. A queue limited by
//     a global concurrency or a rate limit gains nothing from more
//     executors; MaxVMs bounds what it costs.
//   - down when, in each of the last scaleWindow samples, CPU use stayed
//     under scaleDownCPU and no workflow waited in a queue.
//
// A driver that does not account CPU (Stats returns KindUnavailable)
// leaves the queue depth alone to decide. After each step, and while
// executors start, the samples start over, so steps are at least
// scaleWindow intervals apart.
const (
	scaleWindow  = 3
	scaleUpCPU   = 0.85
	scaleDownCPU = 0.40
)

// sample is one reading of an app's load.
type sample struct {
	// cpu is the mean CPU use of the pool's executors since the previous
	// sample, in vCPUs per executor; NaN when unknown.
	cpu float64
	// enqueued counts the workflows waiting in the app's queues; -1 when
	// unknown.
	enqueued int
}

// decide returns +1 to add an executor to a pool of n, -1 to retire one,
// or 0, with the reason for the app's logs.
func decide(samples []sample, n, minVMs, maxVMs, perExecutor int) (int, string) {
	if len(samples) < scaleWindow {
		return 0, ""
	}
	w := samples[len(samples)-scaleWindow:]
	last := w[len(w)-1]
	cpu, known := 0.0, true
	for _, sm := range w {
		known = known && !math.IsNaN(sm.cpu)
		cpu += sm.cpu / scaleWindow
	}
	if n < maxVMs {
		if known && cpu > scaleUpCPU {
			return +1, fmt.Sprintf("CPU use averaged %.0f%% of a vCPU over the last %d samples", cpu*100, scaleWindow)
		}
		if last.enqueued > n*perExecutor {
			return +1, fmt.Sprintf("%d workflows wait in queues, more than %d per executor", last.enqueued, perExecutor)
		}
	}
	if n > minVMs {
		for _, sm := range w {
			if sm.enqueued != 0 || (!math.IsNaN(sm.cpu) && sm.cpu >= scaleDownCPU) {
				return 0, ""
			}
		}
		if known {
			return -1, fmt.Sprintf("CPU use stayed under %.0f%% and queues were empty over the last %d samples", scaleDownCPU*100, scaleWindow)
		}
		return -1, fmt.Sprintf("queues were empty over the last %d samples", scaleWindow)
	}
	return 0, ""
}

// takeSample reads the CPU use of pool p's executors exs since the last
// sample (uses, per executor, for Executors) and its queue depth.
func (f *Fleet) takeSample(ctx context.Context, p *pool, exs []*executor) (sm sample, uses []float64) {
	now := f.cfg.Now()
	sm = sample{cpu: math.NaN()}
	sum, k, unknown := 0.0, 0, false
	uses = make([]float64, len(exs))
	for i, ex := range exs {
		uses[i] = math.NaN()
		st, err := f.driver.Stats(ctx, ex.id)
		if err != nil {
			unknown = unknown || hangar.KindOf(err) == hangar.KindUnavailable
			continue
		}
		if !ex.cpuAt.IsZero() && now.After(ex.cpuAt) {
			uses[i] = float64(st.CPU-ex.cpu) / float64(now.Sub(ex.cpuAt))
			sum += uses[i]
			k++
		}
		ex.cpu, ex.cpuAt = st.CPU, now
	}
	if !unknown && k > 0 {
		sm.cpu = sum / float64(k)
	}
	q, err := f.wf.EnqueuedWorkflows(ctx, p.inst, p.sysDB, p.appVersion)
	if err != nil {
		if ctx.Err() == nil {
			f.log.Warn("count enqueued workflows", "app", p.name, "err", err)
		}
		q = -1
	}
	sm.enqueued = q
	return sm, uses
}

// autoscale takes a sample of pool p's load and scales it by one executor
// when decide says so.
func (f *Fleet) autoscale(p *pool) {
	ctx := f.life
	f.mu.Lock()
	exs := slices.Clone(p.executors)
	closed := p.closed
	f.mu.Unlock()
	if closed || len(exs) == 0 {
		return
	}
	sm, uses := f.takeSample(ctx, p, exs)

	f.mu.Lock()
	for i, ex := range exs {
		ex.cpuUse = uses[i]
	}
	if p.closed {
		f.mu.Unlock()
		return
	}
	if p.starting > 0 {
		p.samples = nil
		f.mu.Unlock()
		return
	}
	p.samples = append(p.samples, sm)
	if len(p.samples) > scaleWindow {
		p.samples = slices.Delete(p.samples, 0, len(p.samples)-scaleWindow)
	}
	n := len(p.executors)
	step, why := decide(p.samples, n, p.min, p.max, f.cfg.ScaleQueueDepth)
	var retiring *executor
	switch step {
	case +1:
		p.samples = nil
		p.starting++
	case -1:
		p.samples = nil
		retiring = p.executors[n-1]
		p.remove(retiring)
		p.route(f.router)
	}
	f.mu.Unlock()
	switch step {
	case +1:
		f.event(p.appID, Event{Kind: EventScaledUp, Version: p.version,
			Message: fmt.Sprintf("scaling up to %d executors: %s", n+1, why)})
		f.spawn(func() { f.grow(p, 0) })
	case -1:
		f.event(p.appID, Event{Kind: EventScaledDown, Executor: retiring.id, Version: p.version,
			Message: fmt.Sprintf("scaling down to %d executors: %s; retiring executor %s", n-1, why, retiring.id)})
		f.spawn(func() { f.retire(retiring, retiring.appVersion, f.cfg.DrainTimeout) })
	}
}
