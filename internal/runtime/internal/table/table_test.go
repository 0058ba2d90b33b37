package table

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// rec is a driver's record as the drivers make theirs.
type rec struct {
	Entry
	slot int
}

// fakeNet builds no network: Setup hands out addresses, and fails for the
// namespaces in fail; torn records the namespaces torn down.
type fakeNet struct {
	fail map[string]bool
	mu   sync.Mutex
	torn []string
}

func (*fakeNet) Name(id string) string { return "tt-" + id }

func (f *fakeNet) Setup(_ context.Context, ns string) (runtime.Network, error) {
	if f.fail[ns] {
		return runtime.Network{}, errors.New("create veth pair: operation not permitted")
	}
	return runtime.Network{Gateway: "10.213.0.1", Address: "10.213.0.2"}, nil
}

func (f *fakeNet) Teardown(_ context.Context, ns string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.torn = append(f.torn, ns)
	return nil
}

// newTable returns a table on a fake network whose Setup fails for the
// namespaces named in fail. Its hooks give each executor a slot of two, as
// the sandbox driver gives uids.
func newTable(t *testing.T, fail ...string) (*Executors[*rec], map[int]bool, *fakeNet) {
	t.Helper()
	net := &fakeNet{fail: map[string]bool{}}
	for _, ns := range fail {
		net.fail[ns] = true
	}
	used := map[int]bool{}
	hooks := Hooks[*rec]{
		Reserve: func(r *rec) error {
			for i := range 2 {
				if !used[i] {
					used[i], r.slot = true, i
					return nil
				}
			}
			return hangar.Errorf(hangar.KindUnavailable, "no free slot")
		},
		Release: func(r *rec) { delete(used, r.slot) },
	}
	return New(net, slog.New(slog.DiscardHandler), hooks), used, net
}

func wantKind(t *testing.T, what string, err error, want hangar.Kind) {
	t.Helper()
	if got := hangar.KindOf(err); err == nil || got != want {
		t.Errorf("%s: got error %v (kind %s), want kind %s", what, err, got, want)
	}
}

// started is the start function of a driver whose process runs at once.
func started(r *rec) (*runtime.Executor, error) {
	r.Done, r.PID, r.Addr, r.StartedAt = make(chan struct{}), 42, r.Network.Address+":3000", time.Now()
	return &runtime.Executor{ID: r.ID, Addr: r.Addr, PID: r.PID}, nil
}

func spec(id string) runtime.Spec {
	return runtime.Spec{ID: id, Dir: "/app", Command: []string{"/bin/true"}, Env: []string{"PORT=3000"}, Port: 3000}
}

func TestExecutors_Life(t *testing.T) {
	t.Parallel()
	tb, _, _ := newTable(t)
	ctx := t.Context()
	if _, err := tb.Prepare(ctx, "a", &rec{}); err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	_, err := tb.Prepare(ctx, "a", &rec{})
	wantKind(t, "second Prepare", err, hangar.KindConflict)
	_, err = tb.Wait(ctx, "a")
	wantKind(t, "Wait before Start", err, hangar.KindNotFound)
	if info, err := tb.Inspect("a"); err != nil || info.State != runtime.StatePrepared || info.Network.Address == "" {
		t.Errorf("Inspect of a prepared executor: got %+v, %v", info, err)
	}
	_, err = tb.Running("a")
	wantKind(t, "Running before Start", err, hangar.KindConflict)
	_, err = tb.Running("unknown")
	wantKind(t, "Running of an unknown executor", err, hangar.KindNotFound)

	if _, err := tb.Start(spec("a"), started); err != nil {
		t.Fatalf("Start: %v", err)
	}
	_, err = tb.Start(spec("a"), started)
	wantKind(t, "second Start", err, hangar.KindConflict)
	if info, err := tb.Inspect("a"); err != nil || info.State != runtime.StateRunning || info.PID != 42 {
		t.Errorf("Inspect of a running executor: got %+v, %v", info, err)
	}
	if r, err := tb.Running("a"); err != nil || r.Dir != "/app" || len(r.Env) != 1 {
		t.Errorf("Running: got %+v, %v; want the app's dir and environment", r, err)
	}
	r, _ := tb.Lookup("a")
	r.Exit(runtime.Status{ExitCode: 3})
	_, err = tb.Running("a")
	wantKind(t, "Running after the process exited", err, hangar.KindConflict)
	if st, err := tb.Wait(ctx, "a"); err != nil || st.ExitCode != 3 {
		t.Errorf("Wait: got %+v, %v; want exit code 3", st, err)
	}
	if info, err := tb.Inspect("a"); err != nil || info.State != runtime.StateExited || info.Status.ExitCode != 3 {
		t.Errorf("Inspect of an exited executor: got %+v, %v", info, err)
	}

	// A failed terminate keeps the executor for a retry; Start no longer
	// runs once Stop began.
	var terminated, released int
	fail := errors.New("kill failed")
	terminate := func(*rec) error { terminated++; return fail }
	release := func(*rec) error { released++; return nil }
	if err := tb.Stop(ctx, "a", terminate, release); !errors.Is(err, fail) {
		t.Errorf("Stop: got %v, want %v", err, fail)
	}
	if _, ok := tb.Lookup("a"); !ok || released != 0 {
		t.Errorf("after a failed Stop: known %v, released %d times; want it kept and not released", ok, released)
	}
	terminate = func(*rec) error { terminated++; return nil }
	if err := tb.Stop(ctx, "a", terminate, release); err != nil {
		t.Errorf("Stop again: %v", err)
	}
	if _, ok := tb.Lookup("a"); ok || terminated != 2 || released != 1 {
		t.Errorf("after Stop: known %v, terminated %d and released %d times; want it gone, 2 and 1", ok, terminated, released)
	}
	_, err = tb.Inspect("a")
	wantKind(t, "Inspect after Stop", err, hangar.KindNotFound)
	_, err = tb.Running("a")
	wantKind(t, "Running after Stop", err, hangar.KindNotFound)
	if err := tb.Stop(ctx, "a", terminate, release); err != nil || released != 1 {
		t.Errorf("Stop of a stopped executor: got %v, released %d times; want nil and no release", err, released)
	}
}

func TestExecutors_StopPrepared(t *testing.T) {
	t.Parallel()
	tb, used, _ := newTable(t)
	ctx := t.Context()
	if _, err := tb.Prepare(ctx, "p", &rec{}); err != nil {
		t.Fatal(err)
	}
	terminate := func(*rec) error { t.Error("terminate called for an executor never started"); return nil }
	if err := tb.Stop(ctx, "p", terminate, func(*rec) error { return nil }); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	_, err := tb.Start(spec("p"), started)
	wantKind(t, "Start after Stop", err, hangar.KindNotFound)
	if len(used) != 0 {
		t.Errorf("slots still reserved after Stop: %v", used)
	}
}

func TestExecutors_PrepareFails(t *testing.T) {
	t.Parallel()
	t.Run("Network", func(t *testing.T) {
		t.Parallel()
		tb, used, net := newTable(t, "tt-x")
		_, err := tb.Prepare(t.Context(), "x", &rec{})
		if err == nil || !strings.Contains(err.Error(), "operation not permitted") {
			t.Fatalf("Prepare: got %v, want the network's complaint", err)
		}
		if len(net.torn) != 1 || net.torn[0] != "tt-x" {
			t.Errorf("torn down after a failed Setup: got %v, want [tt-x]", net.torn)
		}
		if _, ok := tb.Lookup("x"); ok || len(used) != 0 {
			t.Errorf("after a failed Prepare: known %v, slots %v; want it forgotten and its slot free", ok, used)
		}
	})
	t.Run("Reserve", func(t *testing.T) {
		t.Parallel()
		tb, _, _ := newTable(t)
		for _, id := range []string{"a", "b"} {
			if _, err := tb.Prepare(t.Context(), id, &rec{}); err != nil {
				t.Fatal(err)
			}
		}
		_, err := tb.Prepare(t.Context(), "c", &rec{})
		wantKind(t, "Prepare with no slot left", err, hangar.KindUnavailable)
		if _, ok := tb.Lookup("c"); ok {
			t.Error("an executor that got no slot is known")
		}
		_, err = tb.Prepare(t.Context(), "Bad_ID", &rec{})
		wantKind(t, "Prepare with a bad ID", err, hangar.KindInvalid)
	})
}
