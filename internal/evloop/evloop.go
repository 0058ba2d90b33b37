// Package evloop runs many connections' blocking-style code on one event
// loop, as coroutines (iter.Pull): a task's reads and writes that would
// block yield to the loop, which resumes the task when epoll reports its
// socket ready, its deadline passes or another goroutine wakes it. Nothing
// waits in the Go scheduler's run queues: the loop resumes tasks in the
// order the kernel reports their sockets ready, as nginx's loop does
// (docs/frontdoor.md, "The event loop"). rawconn.Conn waits through a
// Task once bound to it. It imports nothing internal; internal/frontdoor
// and internal/router import it.
package evloop

import (
	"container/heap"
	"context"
	"iter"
	"log"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Loop is an event loop. Its methods may be called from any goroutine;
// Task's only from the task itself, except Wake.
type Loop struct {
	ep, efd int
	log     *log.Logger

	mu      sync.Mutex
	posted  []func()
	woken   []*Task
	stopped bool

	// The loop goroutine's alone.
	waiting map[int]*Task  // fd → the task waiting on it
	hangup  map[int]func() // fd → called when the peer hangs up while nobody reads fd
	regs    map[int]int32  // fd → what its registration carries in its events: generation and firstBit
	gen     int32          // the last registration's generation
	timers  timerHeap
	starts  []*Task // to start, one per turn
	yielded []*Task // to resume in the next turn (Yield)
	soon    []*Task // to resume in this turn, once the running task parks (Schedule, Task.Go)
	done    chan struct{}
}

// firstBit marks, in what an event carries besides the number, a socket
// registered first; the generation takes the bits below it.
const firstBit = 1 << 30

// Task is a coroutine run by a Loop.
type Task struct {
	l       *Loop
	next    func() (struct{}, bool)
	stop    func()
	yield   func(struct{}) bool
	running atomic.Bool
	parked  atomic.Bool // yielded, waiting for a resume
	pending atomic.Bool // woken while not parked: the next park returns at once
	cancel  bool        // its waits fail (Cancel); the loop goroutine's alone
	soon    bool        // in l.soon; the loop goroutine's alone
	tmr     timer       // the deadline it waits for, in the heap when tmr.i >= 0: the loop's alone
}

// New starts a loop on its own goroutine; errorLog receives panics of
// tasks (nil: the log package's default).
func New(errorLog *log.Logger) (*Loop, error) {
	ep, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(ep)
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := unix.EpollCtl(ep, unix.EPOLL_CTL_ADD, efd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(efd)}); err != nil {
		unix.Close(ep)
		unix.Close(efd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	if errorLog == nil {
		errorLog = log.Default()
	}
	l := &Loop{ep: ep, efd: efd, log: errorLog, waiting: map[int]*Task{}, hangup: map[int]func(){}, regs: map[int]int32{}, done: make(chan struct{})}
	go l.run()
	return l, nil
}

// Go runs f as a task on l. It reports false when l is stopped. New
// tasks start one per turn of the loop, between the events of those
// running, as nginx accepts one connection per turn: a burst of new
// connections, each with a TLS handshake to run first, does not hold up
// the requests of those already served.
func (l *Loop) Go(f func(t *Task)) bool {
	return l.Post(func() { l.starts = append(l.starts, l.newTask(f)) })
}

func (l *Loop) newTask(f func(t *Task)) *Task {
	t := &Task{l: l}
	t.tmr = timer{t: t, i: -1}
	t.parked.Store(true)
	t.next, t.stop = iter.Pull(func(yield func(struct{}) bool) {
		t.yield = yield
		f(t)
	})
	return t
}

// Post runs f on the loop's goroutine, outside any task. It reports false
// when l is stopped.
func (l *Loop) Post(f func()) bool {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return false
	}
	l.posted = append(l.posted, f)
	l.mu.Unlock()
	l.kick()
	return true
}

// Stop ends the loop once what was posted before has run, and waits for
// it. Tasks still parked then are never resumed: stop them first (close
// their connections).
func (l *Loop) Stop() {
	l.mu.Lock()
	if !l.stopped {
		l.stopped = true
		l.posted = append(l.posted, nil)
	}
	l.mu.Unlock()
	l.kick()
	<-l.done
}

func (l *Loop) kick() {
	var one = [8]byte{1}
	unix.Write(l.efd, one[:])
}

func (l *Loop) run() {
	// One thread: the kernel schedules the loop as one busy thread, as it
	// does nginx's worker. Unlocked, the loop's goroutine moved among four
	// threads under load, each woken and queued by the kernel in turn.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer func() {
		unix.Close(l.ep)
		unix.Close(l.efd)
		close(l.done)
	}()
	events := make([]unix.EpollEvent, 256)
	var yielded []*Task
	for {
		// Those that yielded in the last turn resume in this one, after
		// its events; those that yield now wait for the next.
		yielded, l.yielded = l.yielded, yielded[:0]
		timeout := -1
		if len(l.starts) > 0 || len(yielded) > 0 || len(l.soon) > 0 {
			timeout = 0
		} else if len(l.timers) > 0 {
			d := time.Until(l.timers[0].at)
			timeout = max(0, int((d+time.Millisecond-1)/time.Millisecond))
		}
		n, err := unix.EpollWait(l.ep, events, timeout)
		if err != nil && err != unix.EINTR {
			l.log.Printf("evloop: epoll_wait: %v", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		// Sockets registered first (executors' connections) before the
		// others: their events finish requests in flight, the others'
		// (clients') bring new ones, which would otherwise go ahead of
		// the responses that came in the same turn.
		evs := events[:max(n, 0)]
		for _, ev := range evs {
			if ev.Pad&firstBit != 0 && !l.event(ev) {
				return
			}
		}
		for _, ev := range evs {
			if ev.Pad&firstBit == 0 && !l.event(ev) {
				return
			}
		}
		now := time.Now()
		for len(l.timers) > 0 && !l.timers[0].at.After(now) {
			l.resume(l.timers[0].t) // removes the timer
		}
		for i, t := range yielded {
			yielded[i] = nil
			l.resume(t)
		}
		l.runSoon()
		if len(l.starts) > 0 {
			t := l.starts[0]
			l.starts[0] = nil
			l.starts = l.starts[1:]
			l.resume(t)
		}
	}
}

// event handles one event of epoll_wait; false: stop the loop.
func (l *Loop) event(ev unix.EpollEvent) bool {
	fd := int(ev.Fd)
	if fd == l.efd {
		var buf [8]byte
		unix.Read(l.efd, buf[:])
		return l.runPosted()
	}
	if l.regs[fd] != ev.Pad {
		// A socket closed while another process held it too (a child
		// between fork and exec): its registration outlives the close,
		// and its events name a number another socket has now.
		return true
	}
	if t := l.waiting[fd]; t != nil {
		l.resume(t)
	} else if ev.Events&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		if f := l.hangup[fd]; f != nil {
			f()
		}
	}
	return true
}

// runSoon resumes the tasks scheduled for this turn (Schedule, Task.Go),
// and those they schedule in turn.
func (l *Loop) runSoon() {
	for i := 0; i < len(l.soon); i++ {
		t := l.soon[i]
		l.soon[i] = nil
		t.soon = false
		l.resume(t)
	}
	l.soon = l.soon[:0]
}

// runPosted runs what was posted and resumes the tasks woken; false: stop.
func (l *Loop) runPosted() bool {
	l.mu.Lock()
	posted, woken := l.posted, l.woken
	l.posted, l.woken = nil, nil
	l.mu.Unlock()
	for _, t := range woken {
		l.resume(t)
	}
	for _, f := range posted {
		if f == nil {
			for _, t := range l.starts {
				l.resume(t)
			}
			return false
		}
		f()
	}
	return true
}

// resume runs t until it parks or ends; a task not parked (already
// resumed for another reason) stays as it is.
func (l *Loop) resume(t *Task) {
	if t.next == nil || !t.parked.CompareAndSwap(true, false) {
		return
	}
	t.pending.Store(false)
	if t.tmr.i >= 0 {
		heap.Remove(&l.timers, t.tmr.i)
	}
	t.running.Store(true)
	var ok bool
	func() {
		defer func() {
			if err := recover(); err != nil {
				l.log.Printf("evloop: panic in a task: %v", err)
				ok = false
			}
		}()
		_, ok = t.next()
	}()
	t.running.Store(false)
	if !ok {
		t.next = nil
		t.stop()
	}
}

// park yields t to the loop until something resumes it; it returns at
// once when Wake came since the last park. before runs once parking is
// certain.
func (t *Task) park(before func()) {
	t.parked.Store(true)
	if t.pending.Swap(false) {
		t.parked.Store(false)
		return
	}
	if before != nil {
		before()
	}
	t.yield(struct{}{})
}

// Yield lets the loop serve the events of its next turn before t goes
// on: for a task that has run long without waiting (a stream whose
// executor and client both keep up), which would otherwise hold up every
// other connection on the loop. A wake that came while t ran does not
// cut the yield short: a task that sets a deadline on its own connection
// wakes itself (rawconn), and so would never yield. Nothing is lost: every
// wait re-checks what it waits for, and t resumes in the next turn anyway.
func (t *Task) Yield() {
	t.pending.Store(false)
	t.park(func() { t.l.yielded = append(t.l.yielded, t) })
}

// Running reports whether t runs now: only then may its code wait
// through it (a goroutine other than the task sees false).
func (t *Task) Running() bool { return t != nil && t.running.Load() }

// Register adds fd to the loop's epoll set (edge-triggered, both
// directions); a registered fd stays until closed. Its events carry a
// generation besides the number: closing a socket removes it from the
// set only once no process holds it, and a socket that takes the number
// meanwhile must not get the old one's events. first: in each turn of
// the loop, the task waiting on fd resumes before those waiting on
// sockets registered without it.
func (t *Task) Register(fd int, first bool) error {
	l := t.l
	if l.gen = (l.gen + 1) &^ firstBit; l.gen == 0 {
		l.gen = 1 // 0 is no registration
	}
	pad := l.gen
	if first {
		pad |= firstBit
	}
	ev := &unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLOUT | unix.EPOLLRDHUP | unix.EPOLLET, Fd: int32(fd), Pad: pad}
	err := unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, ev)
	if err == unix.EEXIST {
		err = unix.EpollCtl(l.ep, unix.EPOLL_CTL_MOD, fd, ev)
	}
	if err != nil {
		return os.NewSyscallError("epoll_ctl", err)
	}
	l.regs[fd] = pad
	return nil
}

// Unregister removes fd from the loop's epoll set: for a socket that
// outlives its descriptor there (given back to the runtime's poller).
func (t *Task) Unregister(fd int) {
	unix.EpollCtl(t.l.ep, unix.EPOLL_CTL_DEL, fd, nil)
	delete(t.l.hangup, fd)
	delete(t.l.regs, fd)
}

// Loop returns the loop t runs on (a *Loop).
func (t *Task) Loop() any { return t.l }

// Wait parks t until fd (registered) may be ready, deadline (if not zero)
// passes, Wake or Cancel: the caller retries its system call. It returns
// os.ErrDeadlineExceeded once deadline has passed, context.Canceled once
// t is canceled.
func (t *Task) Wait(fd int, deadline time.Time) error {
	if t.cancel {
		return context.Canceled
	}
	if !deadline.IsZero() && !time.Now().Before(deadline) {
		return os.ErrDeadlineExceeded
	}
	t.park(func() {
		if !deadline.IsZero() {
			t.tmr.at = deadline
			heap.Push(&t.l.timers, &t.tmr)
		}
		t.l.waiting[fd] = t
	})
	if t.l.waiting[fd] == t {
		delete(t.l.waiting, fd)
	}
	return nil
}

// Wake resumes t if it waits; any goroutine may call it (a deadline
// moved, a connection closed).
func (t *Task) Wake() {
	t.pending.Store(true)
	if !t.parked.Load() {
		return
	}
	l := t.l
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return
	}
	l.woken = append(l.woken, t)
	l.mu.Unlock()
	l.kick()
}

// Await runs f on a goroutine of its own and parks t until f returns:
// for what would block the loop (a dial).
func (t *Task) Await(f func()) {
	var done atomic.Bool
	go func() {
		defer func() {
			done.Store(true)
			t.Wake()
		}()
		f()
	}()
	for !done.Load() {
		t.park(nil)
	}
}

// Park parks t until Wake or Cancel; the caller checks whether what it
// waits for has come and parks again if not. A Wake since the last park
// makes it return at once. It returns context.Canceled once t is
// canceled.
func (t *Task) Park() error {
	if t.cancel {
		return context.Canceled
	}
	t.park(nil)
	if t.cancel {
		return context.Canceled
	}
	return nil
}

// Cancel makes t's waits fail with context.Canceled, the one in progress
// too: a request whose client left stops waiting for its executor. Only
// the loop's goroutine may call it (a callback of OnHangup, the task).
func (t *Task) Cancel() {
	t.cancel = true
	t.l.resume(t)
}

// OnHangup calls f on the loop when fd's peer hangs up (or the socket
// fails) while t waits on something else; nil removes it.
func (t *Task) OnHangup(fd int, f func()) {
	if f == nil {
		delete(t.l.hangup, fd)
	} else {
		t.l.hangup[fd] = f
	}
}

type taskKey struct{}

// WithTask returns ctx carrying t, for code under t that starts waits of
// its own (the router's connections to executors).
func WithTask(ctx context.Context, t *Task) context.Context {
	return context.WithValue(ctx, taskKey{}, t)
}

// TaskFrom returns the task in ctx, or nil.
func TaskFrom(ctx context.Context) *Task {
	t, _ := ctx.Value(taskKey{}).(*Task)
	return t
}

// timer is a task's deadline in the loop's heap; i is its index there.
type timer struct {
	at time.Time
	t  *Task
	i  int
}

type timerHeap []*timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].i, h[j].i = i, j
}
func (h *timerHeap) Push(x any) {
	x.(*timer).i = len(*h)
	*h = append(*h, x.(*timer))
}
func (h *timerHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	old[len(old)-1] = nil
	x.i = -1
	*h = old[:len(old)-1]
	return x
}
