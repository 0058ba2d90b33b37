package router

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/evloop"
)

// held is an executor whose requests wait until the test lets them go;
// stream makes it send its response's head first. Each request's arrival
// goes to arrived, which the executors of a test share.
type held struct {
	addr    string
	arrived chan arrival
	release chan struct{} // one send lets one request finish
}

// arrival is a request reaching an executor.
type arrival struct {
	path string
	h    *held
}

func newHeld(t *testing.T, stream bool, arrived chan arrival) *held {
	t.Helper()
	h := &held{arrived: arrived, release: make(chan struct{})}
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if stream {
			w.WriteHeader(http.StatusOK)
			w.(http.Flusher).Flush()
		}
		h.arrived <- arrival{r.URL.Path, h}
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(h.release) })
	h.addr = s.Listener.Addr().String()
	return h
}

// pair starts two held executors that share their arrivals, and a router
// that routes app.test to them, with limits la and lb (0: none).
func pair(t *testing.T, stream bool, la, lb int) (r *Router, a, b *held, arrived chan arrival) {
	t.Helper()
	arrived = make(chan arrival, 100)
	a, b = newHeld(t, stream, arrived), newHeld(t, stream, arrived)
	r = newRouter(t)
	r.Set("app.test", []string{a.addr, b.addr})
	r.SetLimit(a.addr, la)
	r.SetLimit(b.addr, lb)
	return r, a, b, arrived
}

// full is pair with limits of 1 and both executors holding a request,
// /1 and /2, sent the raw way (under l's tasks when l is not nil): the
// next request for app.test waits.
func full(t *testing.T, l *evloop.Loop) (r *Router, a, b *held, arrived chan arrival, c1, c2 chan string) {
	t.Helper()
	r, a, b, arrived = pair(t, false, 1, 1)
	c1, c2 = via(t, r, "raw", "/1", t.Context(), l), via(t, r, "raw", "/2", t.Context(), l)
	next(t, arrived)
	next(t, arrived)
	return r, a, b, arrived, c1, c2
}

// next returns the next request to reach an executor.
func next(t *testing.T, arrived chan arrival) (string, *held) {
	t.Helper()
	select {
	case a := <-arrived:
		return a.path, a.h
	case <-time.After(10 * time.Second):
		t.Fatal("no request reached an executor")
		return "", nil
	}
}

// quiet fails if a request reaches an executor within a short while.
func quiet(t *testing.T, arrived chan arrival) {
	t.Helper()
	select {
	case a := <-arrived:
		t.Fatalf("%s reached an executor at its limit", a.path)
	case <-time.After(100 * time.Millisecond):
	}
}

// queued waits until the app at host has n requests in its queue.
func queued(t *testing.T, r *Router, host string, n int) {
	t.Helper()
	a := (*r.table.Load())[host]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		a.adm.mu.Lock()
		got := len(a.adm.queue)
		a.adm.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests queued, want %d", got, n)
		}
	}
}

// noneCounted fails unless app.test's executors count no request once
// the requests' ends have run: all places were given back, and none is
// in flight.
func noneCounted(t *testing.T, r *Router) {
	t.Helper()
	a := (*r.table.Load())["app.test"]
	counts := func() (admitted []int, inflight []int64) {
		a.adm.mu.Lock()
		defer a.adm.mu.Unlock()
		for i, u := range a.upstreams {
			admitted = append(admitted, a.adm.admitted[i])
			inflight = append(inflight, u.inflight.Load())
		}
		return admitted, inflight
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		admitted, inflight := counts()
		if !slices.ContainsFunc(admitted, func(n int) bool { return n != 0 }) && !slices.ContainsFunc(inflight, func(n int64) bool { return n != 0 }) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("executors count %v admitted and %v in flight once all ended, want none", admitted, inflight)
		}
	}
}

// via sends a GET for path through one of the router's three ways in: the
// net/http path, the raw path on a goroutine, the raw path under an event
// loop's task. It returns the status and body, once done, on the channel.
func via(t *testing.T, r *Router, way, path string, ctx context.Context, l *evloop.Loop) chan string {
	t.Helper()
	out := make(chan string, 1)
	raw := func(ctx context.Context) {
		var b strings.Builder
		w := bufio.NewWriter(&b)
		r.ProxyHTTP1(ctx, []byte("app.test"), rawGET("GET", "app.test", path), false, false, w)
		w.Flush()
		status, _, _ := strings.Cut(strings.TrimPrefix(b.String(), "HTTP/1.1 "), " ")
		_, body, _ := strings.Cut(b.String(), "\r\n\r\n")
		out <- status + " " + body
	}
	switch way {
	case "http":
		go func() {
			req := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://app.test"+path, nil)
			w := httptest.NewRecorder()
			r.ServeHTTP(w, req)
			b, _ := io.ReadAll(w.Result().Body)
			out <- strconv.Itoa(w.Code) + " " + string(b)
		}()
	case "raw":
		go raw(ctx)
	case "task":
		if !l.Go(func(task *evloop.Task) { raw(evloop.WithTask(ctx, task)) }) {
			t.Fatal("loop stopped")
		}
	}
	return out
}

func recv(t *testing.T, c chan string) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("the request did not end")
		return ""
	}
}

// finish lets the requests held at a and b go, one per channel in outs,
// and waits for their responses.
func finish(t *testing.T, a, b *held, outs ...chan string) {
	t.Helper()
	for range outs {
		select {
		case a.release <- struct{}{}:
		case b.release <- struct{}{}:
		}
	}
	for _, c := range outs {
		recv(t, c)
	}
}

func newLoop(t *testing.T) *evloop.Loop {
	t.Helper()
	l, err := evloop.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(l.Stop)
	return l
}

// TestAdmission_FIFO: with both executors at their limit, requests from
// all three ways in wait in one queue and reach the executors in the
// order they came, each as a place is given back; then nothing is left
// counted.
func TestAdmission_FIFO(t *testing.T) {
	t.Parallel()
	r, _, _, arr := pair(t, false, 1, 1)
	l := newLoop(t)
	var outs []chan string
	outs = append(outs, via(t, r, "http", "/1", t.Context(), l), via(t, r, "raw", "/2", t.Context(), l))
	_, h1 := next(t, arr)
	_, h2 := next(t, arr)
	if h1 == h2 {
		t.Fatal("both first requests went to one executor, limited to 1")
	}
	for i, way := range []string{"task", "http", "raw", "task"} {
		outs = append(outs, via(t, r, way, "/"+string(rune('3'+i)), t.Context(), l))
		queued(t, r, "app.test", i+1)
	}
	quiet(t, arr)
	for _, want := range []string{"/3", "/4", "/5", "/6"} {
		// Let one executor finish: the head of the queue takes its place.
		h1.release <- struct{}{}
		p, h := next(t, arr)
		if p != want {
			t.Fatalf("%s reached an executor, want %s (first come, first served)", p, want)
		}
		if h != h1 {
			t.Fatalf("%s went to the executor at its limit", p)
		}
		h1, h2 = h2, h1
	}
	h1.release <- struct{}{}
	h2.release <- struct{}{}
	for i, c := range outs {
		if got, want := recv(t, c), "200 done /"+string(rune('1'+i)); got != want {
			t.Errorf("response %d: %q, want %q", i+1, got, want)
		}
	}
	noneCounted(t, r)
}

// TestAdmission_OnlyFullExecutorsSkipped: an executor at its limit is
// passed over for one with room, or with none, and nothing waits.
func TestAdmission_OnlyFullExecutorsSkipped(t *testing.T) {
	t.Parallel()
	r, a, b, arr := pair(t, false, 1, 0)
	var outs []chan string
	for i := range 4 {
		outs = append(outs, via(t, r, "raw", "/"+string(rune('1'+i)), t.Context(), nil))
	}
	got := map[*held]int{}
	for range 4 {
		_, h := next(t, arr)
		got[h]++
	}
	if got[a] != 1 || got[b] != 3 {
		t.Errorf("limited executor took %d and the other %d, want 1 and 3", got[a], got[b])
	}
	finish(t, a, b, outs...)
}

// TestAdmission_SingleExecutorNeverQueues: an app of one executor has no
// other to send a request to: its limit holds nothing back.
func TestAdmission_SingleExecutorNeverQueues(t *testing.T) {
	t.Parallel()
	arr := make(chan arrival, 100)
	a := newHeld(t, false, arr)
	r := newRouter(t)
	r.Set("app.test", []string{a.addr})
	r.SetLimit(a.addr, 1)
	c1, c2 := via(t, r, "raw", "/1", t.Context(), nil), via(t, r, "http", "/2", t.Context(), nil)
	next(t, arr)
	next(t, arr)
	a.release <- struct{}{}
	a.release <- struct{}{}
	recv(t, c1)
	recv(t, c2)
}

// TestAdmission_StreamHoldsNoPlace: a request counts until its response's
// head arrives: streams held open at both executors, each at a limit of
// one, leave room for the next requests, on both paths.
func TestAdmission_StreamHoldsNoPlace(t *testing.T) {
	t.Parallel()
	r, a, b, arr := pair(t, true, 1, 1)
	var outs []chan string
	for i, way := range []string{"raw", "http", "raw", "http"} {
		outs = append(outs, via(t, r, way, "/"+string(rune('1'+i)), t.Context(), nil))
		next(t, arr) // each reaches an executor while the others stream
	}
	finish(t, a, b, outs...)
}

// TestAdmission_LeaverFreesItsPlace: a request whose client leaves while
// it waits leaves the queue, on each way in, and is answered as cut.
func TestAdmission_LeaverFreesItsPlace(t *testing.T) {
	t.Parallel()
	l := newLoop(t)
	r, a, b, arr, c1, c2 := full(t, l)
	for i, way := range []string{"http", "raw", "task"} {
		ctx, cancel := context.WithCancel(t.Context())
		c := via(t, r, way, "/gone", ctx, l)
		queued(t, r, "app.test", 1)
		if way == "task" {
			// The front door cancels a task whose client hung up; the
			// task has parked by the time the loop runs what is posted.
			a := (*r.table.Load())["app.test"]
			a.adm.mu.Lock()
			task := a.adm.queue[0].task
			a.adm.mu.Unlock()
			l.Post(task.Cancel)
		}
		cancel()
		if got := recv(t, c); strings.HasPrefix(got, "200") {
			t.Errorf("way %d (%s): %q for a request whose client left", i, way, got)
		}
		queued(t, r, "app.test", 0)
	}
	a.release <- struct{}{}
	b.release <- struct{}{}
	recv(t, c1)
	recv(t, c2)
	// The places are all back: a new request goes through at once.
	c := via(t, r, "raw", "/after", t.Context(), l)
	_, h := next(t, arr)
	h.release <- struct{}{}
	recv(t, c)
	noneCounted(t, r)
}

// TestAdmission_LiftedLimitAdmitsWaiters: lifting an executor's limit
// sends it the requests waiting for a place.
func TestAdmission_LiftedLimitAdmitsWaiters(t *testing.T) {
	t.Parallel()
	r, a, b, arr, c1, c2 := full(t, nil)
	c3 := via(t, r, "raw", "/3", t.Context(), nil)
	queued(t, r, "app.test", 1)
	c4 := via(t, r, "http", "/4", t.Context(), nil)
	queued(t, r, "app.test", 2)
	r.SetLimit(a.addr, 2) // one more place
	if p, h := next(t, arr); h != a || p != "/3" {
		t.Fatalf("%s reached an executor after a limit was raised, want /3 at it", p)
	}
	quiet(t, arr)
	r.SetLimit(b.addr, 0) // no limit
	if p, h := next(t, arr); h != b || p != "/4" {
		t.Fatalf("%s reached an executor after a limit was lifted, want /4 at it", p)
	}
	if got := r.backend(b.addr).limit.Load(); got != 0 {
		t.Errorf("limit after lifting: %d", got)
	}
	finish(t, a, b, c1, c2, c3, c4)
}

// TestAdmission_BodiesNotQueued: a request with a body is not held back
// by full executors: it goes round robin, as before any limit.
func TestAdmission_BodiesNotQueued(t *testing.T) {
	t.Parallel()
	r, a, b, arr, c1, c2 := full(t, nil)
	post := make(chan string, 1)
	go func() {
		req := httptest.NewRequestWithContext(t.Context(), http.MethodPost, "http://app.test/post", strings.NewReader("body"))
		w := httptest.NewRecorder()
		r.ServeHTTP(w, req)
		post <- strconv.Itoa(w.Code) + " " + w.Body.String()
	}()
	if p, _ := next(t, arr); p != "/post" {
		t.Fatalf("%s reached an executor, want /post", p)
	}
	finish(t, a, b, c1, c2, post)
	noneCounted(t, r)
}

// TestAdmission_AppsApart: a tenant whose executors are full, with
// requests queued, holds up no other app's requests, even on executors
// with limits of their own.
func TestAdmission_AppsApart(t *testing.T) {
	t.Parallel()
	r, a, b, _, c1, c2 := full(t, nil)
	c3 := via(t, r, "raw", "/3", t.Context(), nil)
	queued(t, r, "app.test", 1)

	other := make(chan arrival, 100)
	x, y := newHeld(t, false, other), newHeld(t, false, other)
	r.Set("other.test", []string{x.addr, y.addr})
	r.SetLimit(x.addr, 1)
	r.SetLimit(y.addr, 1)
	outs := make([]chan string, 2)
	for i := range outs {
		outs[i] = make(chan string, 1)
		go func() {
			var b strings.Builder
			w := bufio.NewWriter(&b)
			r.ProxyHTTP1(t.Context(), []byte("other.test"), rawGET("GET", "other.test", "/o"), false, false, w)
			w.Flush()
			outs[i] <- b.String()
		}()
		next(t, other) // at once, while app.test's request waits
	}
	finish(t, x, y, outs...)
	finish(t, a, b, c1, c2, c3)
}

// TestAdmission_InFlightFromAdmission: a request given an executor's
// place counts in flight there from that moment, not from its forward:
// the request that gives a place back ends before the one given it
// resumes, and meanwhile neither a deploy's drain nor the fleet's
// readings (which lifted an app's limits under load when its executors
// all looked idle) may see the executor idle.
func TestAdmission_InFlightFromAdmission(t *testing.T) {
	t.Parallel()
	r := newRouter(t)
	r.Set("app.test", []string{"192.0.2.1:80", "192.0.2.2:80"}) // never dialed
	r.SetLimit("192.0.2.1:80", 1)
	r.SetLimit("192.0.2.2:80", 1)
	a := (*r.table.Load())["app.test"]
	inflight := func(p place) int64 { return r.InFlight(a.upstreams[p.i].addr) }
	// forward stands for a forward to p's executor: it counts the request
	// while it runs.
	forward := func(p *place, then func()) {
		u := a.upstreams[p.i]
		u.inflight.Add(1)
		p.forwarding()
		then()
		u.inflight.Add(-1)
	}
	p1, err := a.admit(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := inflight(p1); got != 1 {
		t.Errorf("admitted: %d in flight at its executor, want 1", got)
	}
	p2, err := a.admit(t.Context(), nil)
	if err != nil || p2.i == p1.i {
		t.Fatalf("second request: %+v, %v; want the other executor", p2, err)
	}
	third := make(chan place)
	go func() {
		p3, err := a.admit(t.Context(), nil)
		if err != nil {
			t.Error(err)
		}
		third <- p3
	}()
	queued(t, r, "app.test", 1)
	forward(&p1, func() {
		if got := inflight(p1); got != 1 {
			t.Errorf("forwarding: %d in flight, want 1", got)
		}
		p1.release() // the response's head: the place goes to the third
	})
	if got := inflight(p1); got != 1 {
		t.Errorf("the first request ended, the third given its place and not yet resumed: %d in flight, want 1", got)
	}
	p3 := <-third
	if p3.i != p1.i {
		t.Fatalf("third request given executor %d, want %d (the place given back)", p3.i, p1.i)
	}
	forward(&p3, func() {})
	p3.release()
	forward(&p2, func() {})
	p2.release()
	noneCounted(t, r)
}
