package router

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hangar-oss/hangar/internal/evloop"
)

// Admission (docs/executor-queue.md). An executor may carry a limit on the
// requests it is sent at once (Router.SetLimit): Hangar's fleet sets one
// on the executors of an app that wait for a CPU (their threads runnable,
// not running), since requests sent to one wait inside it, behind
// whatever it was given before, while another may be running. A
// request then goes to the next executor, round robin, that is under its
// limit, or waits in its app's first-in first-out queue for the first
// that is. An app with a single executor has nothing to choose from and
// never queues. A request counts until its response's head has come back,
// so a stream or a long download holds no place.

// admission is an app's queue and its executors' counts of admitted
// requests. It belongs to one routing entry: a route switch starts a new
// one, and requests admitted by the old one give their places back there.
type admission struct {
	mu       sync.Mutex
	admitted []int     // per upstream
	queue    []*waiter // first come first
}

// waiter is a request in an app's queue.
type waiter struct {
	task *evloop.Task  // the event loop's task that waits, or nil
	ch   chan struct{} // closed when admitted, when task is nil
	// i is the upstream it is given; admitted says it was. Set under
	// admission.mu.
	i        int
	admitted atomic.Bool
}

// roomFrom returns the first upstream of a, from first on round robin,
// that may take another request, or -1. admission.mu is held.
func (a *app) roomFrom(first int) int {
	n := len(a.upstreams)
	for k := range n {
		i := (first + k) % n
		if limit := a.upstreams[i].limit.Load(); limit <= 0 || int64(a.adm.admitted[i]) < limit {
			return i
		}
	}
	return -1
}

// admit returns the place of a request to a: the upstream to send it to,
// waiting while every upstream is at its limit. The place holds nothing
// for an app of one executor: there is nothing to give back. An error
// means ctx ended, or the event loop's task was canceled, while it waited.
func (a *app) admit(ctx context.Context, task *evloop.Task) (p place, err error) {
	n := len(a.upstreams)
	first := int((a.next.Add(1) - 1) % uint64(n))
	if n == 1 {
		return place{a: a, i: first}, nil
	}
	a.adm.mu.Lock()
	if len(a.adm.queue) == 0 {
		if i := a.roomFrom(first); i >= 0 {
			a.take(i)
			a.adm.mu.Unlock()
			return place{a: a, i: i, held: true, reserved: true}, nil
		}
	}
	w := &waiter{task: task}
	if task == nil {
		w.ch = make(chan struct{})
	}
	a.adm.queue = append(a.adm.queue, w)
	a.adm.mu.Unlock()
	if task != nil {
		for !w.admitted.Load() {
			if err = task.Park(); err != nil {
				break
			}
		}
	} else {
		select {
		case <-w.ch:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err == nil {
		return place{a: a, i: w.i, held: true, reserved: true}, nil
	}
	a.adm.mu.Lock()
	if !w.admitted.Load() {
		a.adm.queue = slices.DeleteFunc(a.adm.queue, func(q *waiter) bool { return q == w })
		a.adm.mu.Unlock()
		return place{}, err
	}
	a.adm.mu.Unlock()
	// Admitted as it gave up: the place goes to the next in line.
	given := place{a: a, i: w.i, held: true, reserved: true}
	given.release()
	return place{}, err
}

// take counts a request admitted to upstream i, and counts it in flight
// there until its forward does (place.forwarding): between a place given
// back and the next request resuming to use it, the upstream must not
// look idle to a deploy's drain or to the fleet's admission readings (an
// app whose executors all looked idle for a moment had its limits lifted
// under load). admission.mu is held.
func (a *app) take(i int) {
	a.adm.admitted[i]++
	a.upstreams[i].inflight.Add(1)
}

// release gives back the place of a request admitted to upstream i.
func (a *app) release(i int) {
	a.adm.mu.Lock()
	a.adm.admitted[i]--
	a.dispatch()
	a.adm.mu.Unlock()
}

// dispatch admits the requests at the head of the queue while an upstream
// has room, preferring, round robin, the ones after the last given.
// admission.mu is held. A waiting task is woken through its loop's eventfd
// even when the caller runs on that loop: resumed within the turn
// (evloop's Task.Schedule), the p99 through 4 executors at 200
// connections went from 1.19x to 1.50x nginx's (docs/performance.md,
// "Session 19").
func (a *app) dispatch() {
	n := uint64(len(a.upstreams))
	for len(a.adm.queue) > 0 {
		i := a.roomFrom(int((a.next.Add(1) - 1) % n))
		if i < 0 {
			return
		}
		w := a.adm.queue[0]
		a.adm.queue[0] = nil
		a.adm.queue = a.adm.queue[1:]
		a.take(i)
		w.i = i
		w.admitted.Store(true)
		if w.task != nil {
			w.task.Wake()
		} else {
			close(w.ch)
		}
	}
}

// SetLimit limits the requests sent at once to the executor at addr
// ("ip:port") to limit; 0 or less lifts the limit. Requests that wait for
// an executor of its app are admitted at once if it now has room.
func (r *Router) SetLimit(addr string, limit int) {
	u := r.backend(addr)
	if old := u.limit.Swap(int64(max(limit, 0))); limit > 0 && (old == 0 || old >= int64(limit)) {
		return // no more room than before
	}
	for _, a := range *r.table.Load() {
		if slices.Contains(a.upstreams, u) {
			a.adm.mu.Lock()
			a.dispatch()
			a.adm.mu.Unlock()
		}
	}
}

// place is a request's place at an executor, given back (release) once
// the response's head has come, or when the request ends. reserved: it
// still counts the request in flight at the executor (take).
type place struct {
	a              *app
	i              int
	held, reserved bool
}

// forwarding ends the place's count in flight, once the forward to an
// executor counts the request itself; it does nothing the second time,
// or on a nil place.
func (p *place) forwarding() {
	if p != nil && p.reserved {
		p.reserved = false
		p.a.upstreams[p.i].inflight.Add(-1)
	}
}

// release gives the place back; it does nothing the second time, or on a
// nil place.
func (p *place) release() {
	p.forwarding()
	if p != nil && p.held {
		p.held = false
		p.a.release(p.i)
	}
}
