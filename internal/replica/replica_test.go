package replica

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	pool, err := pgxpool.New(tb.Context(), pgtest.URL(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pool.Close)
	return pool
}

// waitFor polls cond until it holds, or fails the test after a minute.
func waitFor(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
	}
}

// TestRegistry_TakeOver: a replica that stops beating is claimed by one
// live replica, which gets its prefix; the claimed one is then evicted,
// and may join again once the takeover ended.
func TestRegistry_TakeOver(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	a, err := Join(ctx, pool, Config{ID: "a", Prefix: "pa", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var taken []Replica
	takeOver := func(_ context.Context, d Replica) error {
		mu.Lock()
		defer mu.Unlock()
		taken = append(taken, d)
		return nil
	}
	for _, id := range []string{"b", "c"} {
		r, err := Join(ctx, pool, Config{ID: id, Prefix: "p" + id, Timeout: time.Second, TakeOver: takeOver})
		if err != nil {
			t.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- r.Beat(rctx) }()
		watched := make(chan struct{})
		go func() { defer close(watched); r.Watch(rctx) }()
		t.Cleanup(func() {
			cancel()
			<-watched
			if err := <-done; err != nil {
				t.Errorf("replica %s: %v", id, err)
			}
		})
	}
	if err := a.beat(ctx); err != nil {
		t.Fatalf("a's beat after joining: %v", err)
	}
	if _, err := Join(ctx, pool, Config{ID: "d", Prefix: "pa", Timeout: time.Second}); err == nil {
		t.Error("d joined with a's network prefix")
	}
	// a never beats: it is dead once its heartbeat is a second old.
	waitFor(t, "a taken over", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(taken) > 0
	})
	if err := a.beat(ctx); !errors.Is(err, ErrEvicted) {
		t.Errorf("a's beat after the takeover: %v, want ErrEvicted", err)
	}
	waitFor(t, "a's row gone", func() bool {
		var n int
		pool.QueryRow(ctx, `SELECT count(*) FROM replicas WHERE id = 'a'`).Scan(&n)
		return n == 0
	})
	mu.Lock()
	if want := []Replica{{ID: "a", Prefix: "pa"}}; !slices.Equal(taken, want) {
		t.Errorf("taken over: %v, want %v (exactly once)", taken, want)
	}
	mu.Unlock()
	a2, err := Join(ctx, pool, Config{ID: "a", Prefix: "pa", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := a2.beat(ctx); err != nil {
		t.Errorf("a joined again, beat: %v", err)
	}
}

// mapRouter is a local router.
type mapRouter struct {
	mu sync.Mutex
	m  map[string][]string
}

func (m *mapRouter) Set(host string, ups []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(ups) == 0 {
		delete(m.m, host)
		return
	}
	m.m[host] = ups
}

func (m *mapRouter) InFlight(string) int64 { return 0 }

func (m *mapRouter) SetLimit(string, int) {}

func (m *mapRouter) get(host string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.m[host]
}

// TestRoutes: a route set on one replica reaches the other; a deploy on
// the other takes the host over (the first is told it lost it); a
// removal reaches every replica.
func TestRoutes(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	if err := createTables(ctx, pool); err != nil {
		t.Fatal(err)
	}
	// An hour's poll: only notifications can deliver within the test.
	newRoutes := func(id string, lost func(context.Context, string)) (*Routes, *mapRouter) {
		local := &mapRouter{m: map[string][]string{}}
		r := NewRoutes(pool, local, RoutesConfig{Replica: id, Poll: time.Hour, Lost: lost})
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); r.Run(rctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return r, local
	}
	var mu sync.Mutex
	var lost []string
	ra, la := newRoutes("a", func(_ context.Context, host string) {
		mu.Lock()
		defer mu.Unlock()
		lost = append(lost, host)
	})
	rb, lb := newRoutes("b", nil)

	// b's listener may not be listening yet: its first read of the whole
	// table covers that.
	ra.Set("x.example", []string{"10.0.0.1:80"})
	waitFor(t, "b routes x to a's executor", func() bool { return slices.Equal(lb.get("x.example"), []string{"10.0.0.1:80"}) })

	rb.Set("x.example", []string{"10.0.0.2:80"})
	waitFor(t, "a routes x to b's executor", func() bool { return slices.Equal(la.get("x.example"), []string{"10.0.0.2:80"}) })
	mu.Lock()
	if !slices.Equal(lost, []string{"x.example"}) {
		t.Errorf("a lost %v, want [x.example]", lost)
	}
	mu.Unlock()
	if owner, err := ra.Owner(ctx, "x.example"); err != nil || owner != "b" {
		t.Errorf("owner of x: %q, %v; want b", owner, err)
	}

	rb.Set("x.example", nil)
	waitFor(t, "a drops x", func() bool { return la.get("x.example") == nil })

	ra.Set("y.example", []string{"10.0.0.3:80"})
	waitFor(t, "b routes y", func() bool { return lb.get("y.example") != nil })
	if err := rb.Drop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b drops a's y", func() bool { return lb.get("y.example") == nil })
}

// TestRegistry_Evicted: a replica that another one claimed (it stalled
// past the timeout) stops: Run returns ErrEvicted.
func TestRegistry_Evicted(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	x, err := Join(ctx, pool, Config{ID: "x", Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- x.Beat(ctx) }()
	if _, err := pool.Exec(ctx, `UPDATE replicas SET taken_by = 'y' WHERE id = 'x'`); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, ErrEvicted) {
			t.Errorf("Beat: %v, want ErrEvicted", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Beat did not return after the replica was claimed")
	}
}

// TestRegistry_InstanceOwners: one replica runs each database instance;
// the first to claim a free one gets it, Take moves it, and a dead
// replica's instances go to the one that inherits them.
func TestRegistry_InstanceOwners(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := newPool(t)
	a, err := Join(ctx, pool, Config{ID: "a", Prefix: "pa"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Join(ctx, pool, Config{ID: "b", Prefix: "pb"})
	if err != nil {
		t.Fatal(err)
	}
	claim := func(r *Registry, id string) bool {
		t.Helper()
		mine, err := r.Claim(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return mine
	}
	if !claim(a, "i1") || claim(b, "i1") || !claim(a, "i1") {
		t.Error("i1: want a's, claimed first by a")
	}
	if err := b.Take(ctx, "i2"); err != nil {
		t.Fatal(err)
	}
	if err := b.Take(ctx, "i1"); err != nil {
		t.Fatal(err)
	}
	if claim(a, "i1") || claim(a, "i2") {
		t.Error("a still runs an instance b took")
	}
	got, err := a.Inherit(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"i1", "i2"}) {
		t.Errorf("a inherited %v from b, want [i1 i2]", got)
	}
	if err := a.Release(ctx, "i1"); err != nil {
		t.Fatal(err)
	}
	if !claim(b, "i1") {
		t.Error("a released i1, b could not claim it")
	}
}
