package evloop_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hangar-oss/hangar/internal/evloop"
	"github.com/hangar-oss/hangar/internal/rawconn"
)

// pair returns a connected TCP pair: a rawconn.Conn and its peer.
func pair(t *testing.T) (*rawconn.Conn, net.Conn) {
	t.Helper()
	return wrappedPair(t, rawconn.Wrap)
}

// wrappedPair is pair with the rawconn.Conn made by wrap.
func wrappedPair(t *testing.T, wrap func(net.Conn) net.Conn) (*rawconn.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { peer.Close() })
	return wrap(c).(*rawconn.Conn), peer
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

// run runs f as a task on l and waits for it.
func run(t *testing.T, l *evloop.Loop, f func(t *evloop.Task)) {
	t.Helper()
	done := make(chan struct{})
	if !l.Go(func(task *evloop.Task) { defer close(done); f(task) }) {
		t.Fatal("loop stopped")
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("task did not end")
	}
}

// runBound is run with c bound to the task first.
func runBound(t *testing.T, l *evloop.Loop, c *rawconn.Conn, f func(t *evloop.Task)) {
	t.Helper()
	run(t, l, func(task *evloop.Task) {
		if err := c.Bind(task); err != nil {
			t.Error(err)
			return
		}
		f(task)
	})
}

// TestLoop_ManyTasksEcho runs 50 echo tasks on one loop: each reads what
// its peer writes and writes it back, so every task waits on its socket
// many times while the others run.
func TestLoop_ManyTasksEcho(t *testing.T) {
	l := newLoop(t)
	const n, rounds = 50, 20
	var wg sync.WaitGroup
	for range n {
		c, peer := pair(t)
		wg.Add(1)
		if !l.Go(func(task *evloop.Task) {
			defer wg.Done()
			defer c.Close()
			if err := c.Bind(task); err != nil {
				t.Error(err)
				return
			}
			buf := make([]byte, 64)
			for {
				k, err := c.Read(buf)
				if err != nil {
					if err != io.EOF {
						t.Error(err)
					}
					return
				}
				if _, err := c.Write(buf[:k]); err != nil {
					t.Error(err)
					return
				}
			}
		}) {
			t.Fatal("loop stopped")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer peer.(*net.TCPConn).CloseWrite()
			buf := make([]byte, 5)
			for i := range rounds {
				msg := []byte{'a' + byte(i%26), 'b', 'c', 'd', 'e'}
				if _, err := peer.Write(msg); err != nil {
					t.Error(err)
					return
				}
				if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != string(msg) {
					t.Errorf("echo %q, %v; want %q", buf, err, msg)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// TestLoop_ReadDeadline: a bound read with a deadline fails with a
// timeout, on time, and a deadline moved into the past by another
// goroutine ends a read in progress.
func TestLoop_ReadDeadline(t *testing.T) {
	l := newLoop(t)
	c, _ := pair(t)
	runBound(t, l, c, func(task *evloop.Task) {
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		start := time.Now()
		_, err := c.Read(make([]byte, 1))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read: %v, want a deadline error", err)
		}
		if d := time.Since(start); d < 90*time.Millisecond || d > 5*time.Second {
			t.Errorf("read ended after %v, want ~100ms", d)
		}
		c.SetReadDeadline(time.Time{})
		go func() {
			time.Sleep(50 * time.Millisecond)
			c.SetReadDeadline(time.Unix(1, 0))
		}()
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read: %v, want a deadline error from another goroutine's SetReadDeadline", err)
		}
		c.Close()
	})
}

// TestLoop_AbortEndsWait: Abort from another goroutine ends a task's read
// at once and sends the peer its end.
func TestLoop_AbortEndsWait(t *testing.T) {
	l := newLoop(t)
	c, peer := pair(t)
	runBound(t, l, c, func(task *evloop.Task) {
		go func() {
			time.Sleep(50 * time.Millisecond)
			c.Abort()
		}()
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Error("read after Abort succeeded")
		}
		c.Close()
	})
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := peer.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("peer read %v, want EOF", err)
	}
}

// TestLoop_AwaitDoesNotBlockLoop: while one task awaits a slow call,
// another task on the same loop runs.
func TestLoop_AwaitDoesNotBlockLoop(t *testing.T) {
	l := newLoop(t)
	release := make(chan struct{})
	ran := make(chan struct{})
	awaited := make(chan struct{})
	if !l.Go(func(task *evloop.Task) { task.Await(func() { <-release }); close(awaited) }) {
		t.Fatal("loop stopped")
	}
	run(t, l, func(*evloop.Task) { close(ran) })
	<-ran
	close(release)
	select {
	case <-awaited:
	case <-time.After(10 * time.Second):
		t.Fatal("Await did not return after its call did")
	}
}

// TestLoop_Hangup: the hang-up callback runs when the peer closes while
// the task waits on another socket, and canceling the task there ends
// that wait.
func TestLoop_Hangup(t *testing.T) {
	l := newLoop(t)
	client, clientPeer := pair(t)
	up, _ := pair(t)
	run(t, l, func(task *evloop.Task) {
		for _, c := range []*rawconn.Conn{client, up} {
			if err := c.Bind(task); err != nil {
				t.Error(err)
				return
			}
		}
		task.OnHangup(client.FD(), task.Cancel)
		defer task.OnHangup(client.FD(), nil)
		go func() {
			time.Sleep(50 * time.Millisecond)
			clientPeer.Close()
		}()
		if _, err := up.Read(make([]byte, 1)); !errors.Is(err, context.Canceled) {
			t.Errorf("read after the client hung up: %v, want context.Canceled", err)
		}
		client.Close()
		up.Close()
	})
}

// TestLoop_Attach: a detached connection given back to the runtime's
// poller reads and writes from an ordinary goroutine, with what was
// written before still there.
func TestLoop_Attach(t *testing.T) {
	l := newLoop(t)
	c, peer := pair(t)
	runBound(t, l, c, func(task *evloop.Task) {
		peer.Write([]byte("hi"))
		if err := c.Attach(); err != nil {
			t.Error(err)
		}
	})
	buf := make([]byte, 2)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hi" {
		t.Fatalf("read %q, %v", buf, err)
	}
	c.Write([]byte("yo"))
	if _, err := io.ReadFull(peer, buf); err != nil || string(buf) != "yo" {
		t.Fatalf("peer read %q, %v", buf, err)
	}
	c.Close()
}

// TestLoop_StopEndsGoroutine: Stop ends the loop's goroutine.
func TestLoop_StopEndsGoroutine(t *testing.T) {
	before := runtime.NumGoroutine()
	l, err := evloop.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	l.Stop()
	time.Sleep(50 * time.Millisecond)
	if after := runtime.NumGoroutine(); after > before {
		t.Errorf("%d goroutines after Stop, %d before", after, before)
	}
	if l.Go(func(*evloop.Task) {}) {
		t.Error("Go on a stopped loop reported true")
	}
}

// TestLoop_ReusedNumber: a socket closed while another process still
// holds it (a child between fork and exec, here a dup) stays in the
// loop's epoll set under its old number. Its hang-up must not reach the
// socket that took the number, whose own hang-up still does.
func TestLoop_ReusedNumber(t *testing.T) {
	l := newLoop(t)
	socketpair := func() (int, int) {
		fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		return fds[0], fds[1]
	}
	old, oldPeer := socketpair()
	other, otherPeer := socketpair() // the task waits on it meanwhile
	defer unix.Close(other)
	defer unix.Close(otherPeer)
	var oldHangup, newHangup atomic.Bool
	run(t, l, func(task *evloop.Task) {
		for _, fd := range []int{old, other} {
			if err := task.Register(fd, false); err != nil {
				t.Error(err)
				return
			}
		}
		task.OnHangup(old, func() { oldHangup.Store(true) })
		hold, err := unix.Dup(old)
		if err != nil {
			t.Error(err)
			return
		}
		defer unix.Close(hold)
		unix.Close(old)
		// The new socket takes the old one's number.
		s, peer := socketpair()
		defer unix.Close(peer)
		if s != old {
			if err := unix.Dup3(s, old, unix.O_CLOEXEC); err != nil {
				t.Error(err)
				return
			}
			unix.Close(s)
		}
		defer unix.Close(old)
		if err := task.Register(old, false); err != nil {
			t.Error(err)
			return
		}
		task.OnHangup(old, func() { newHangup.Store(true) })
		defer task.OnHangup(old, nil)

		wait := func(until func() bool) {
			for deadline := time.Now().Add(300 * time.Millisecond); !until() && time.Now().Before(deadline); {
				task.Wait(other, deadline)
			}
		}
		unix.Close(oldPeer) // the old socket hangs up
		wait(func() bool { return false })
		if newHangup.Load() || oldHangup.Load() {
			t.Error("the old socket's hang-up reached the socket that took its number")
		}
		unix.Close(peer)
		wait(newHangup.Load)
		if !newHangup.Load() {
			t.Error("the new socket's hang-up did not reach its callback")
		}
	})
}

// TestPark_WakeAndCancel: a parked task resumes on Wake from another
// goroutine, a Wake before the park is not lost, and Cancel ends the
// park with context.Canceled.
func TestPark_WakeAndCancel(t *testing.T) {
	l := newLoop(t)
	run(t, l, func(task *evloop.Task) {
		var ready atomic.Bool
		go func() { ready.Store(true); task.Wake() }()
		for !ready.Load() {
			if err := task.Park(); err != nil {
				t.Errorf("Park: %v, want nil after Wake", err)
				return
			}
		}
		task.Wake() // before the park: it returns at once
		if err := task.Park(); err != nil {
			t.Errorf("Park after an early Wake: %v", err)
		}
		l.Post(task.Cancel)
		for {
			if err := task.Park(); err != nil {
				if !errors.Is(err, context.Canceled) {
					t.Errorf("Park after Cancel: %v, want context.Canceled", err)
				}
				return
			}
		}
	})
}

// TestLoop_FirstBeforeOthers: in a turn of the loop, a socket registered
// first (an executor's connection: its response finishes a request) is
// served before the others (clients': their requests start new ones),
// though it became ready after them.
func TestLoop_FirstBeforeOthers(t *testing.T) {
	l := newLoop(t)
	client, clientPeer := pair(t)
	executor, executorPeer := wrappedPair(t, rawconn.WrapFirst)

	const rounds = 10
	var mu sync.Mutex
	var order []string
	var reading atomic.Int32 // tasks about to read
	serve := func(c *rawconn.Conn, name string) {
		if !l.Go(func(task *evloop.Task) {
			if err := c.Bind(task); err != nil {
				t.Error(err)
				return
			}
			buf := make([]byte, 1)
			for range rounds {
				reading.Add(1)
				if _, err := c.Read(buf); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				order = append(order, name)
				mu.Unlock()
			}
		}) {
			t.Fatal("loop stopped")
		}
	}
	serve(client, "client")
	serve(executor, "executor")
	for r := range rounds {
		for deadline := time.Now().Add(5 * time.Second); reading.Load() < int32(2*(r+1)); {
			if time.Now().After(deadline) {
				t.Fatal("tasks did not start reading")
			}
			time.Sleep(time.Millisecond)
		}
		time.Sleep(5 * time.Millisecond) // both parked in their reads
		// The client's byte first, in the same turn of the loop.
		l.Post(func() {
			clientPeer.Write([]byte{1})
			executorPeer.Write([]byte{1})
		})
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			mu.Lock()
			n := len(order)
			mu.Unlock()
			if n == 2*(r+1) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("tasks did not read")
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for r := range rounds {
		if got := order[2*r : 2*r+2]; got[0] != "executor" {
			t.Errorf("round %d: served %v, want the executor's connection first", r, got)
		}
	}
}

// TestLoop_YieldServesOthers: a task that never waits but yields lets the
// loop serve another task's socket, a timer and a new task meanwhile.
func TestLoop_YieldServesOthers(t *testing.T) {
	l := newLoop(t)
	var stop atomic.Bool
	spun := make(chan struct{})
	if !l.Go(func(task *evloop.Task) {
		defer close(spun)
		for !stop.Load() {
			task.Yield()
		}
	}) {
		t.Fatal("loop stopped")
	}
	defer func() { stop.Store(true); <-spun }()
	c, peer := pair(t)
	peer.Write([]byte{1})
	runBound(t, l, c, func(task *evloop.Task) {
		if _, err := c.Read(make([]byte, 1)); err != nil {
			t.Error(err)
		}
		c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("read past its deadline: %v, want the deadline exceeded", err)
		}
	})
}

// TestLoop_YieldAfterOwnDeadline: a task that set a deadline on its own
// connection (which wakes it) still yields: another task whose socket
// became ready meanwhile runs before it goes on. Without that, the
// router's yield after writing to an executor never happened
// (docs/performance.md, "Session 22").
func TestLoop_YieldAfterOwnDeadline(t *testing.T) {
	l := newLoop(t)
	other, otherPeer := pair(t)
	var read atomic.Bool
	parked := make(chan struct{})
	done := make(chan struct{})
	if !l.Go(func(task *evloop.Task) {
		defer close(done)
		if err := other.Bind(task); err != nil {
			t.Error(err)
			return
		}
		close(parked) // it parks in the read below, in this turn
		if _, err := other.Read(make([]byte, 1)); err != nil {
			t.Error(err)
		}
		read.Store(true)
	}) {
		t.Fatal("loop stopped")
	}
	<-parked
	c, _ := pair(t)
	runBound(t, l, c, func(task *evloop.Task) {
		otherPeer.Write([]byte{1})
		c.SetReadDeadline(time.Now().Add(time.Minute))
		c.Yield()
		if !read.Load() {
			t.Error("Yield returned before the loop served the other ready socket")
		}
	})
	<-done
}

// TestTask_GoScheduleInTurn: a task started with Task.Go runs in the turn
// that started it, once its starter parks; Schedule resumes a parked task
// of the same loop in that turn too, and CancelSoon makes its
// waits fail; a read interrupted (rawconn's Interrupt) returns
// ErrInterrupted with nothing lost.
func TestTask_GoScheduleInTurn(t *testing.T) {
	l := newLoop(t)
	c, peer := pair(t)
	runBound(t, l, c, func(task *evloop.Task) {
		var order []string
		var child *evloop.Task
		task.Go(func(ct *evloop.Task) {
			child = ct
			order = append(order, "child")
			task.Schedule()
			ct.Park() // until the parent schedules it
			order = append(order, "child again")
			task.Schedule()
			if err := ct.Park(); !errors.Is(err, context.Canceled) {
				t.Errorf("Park after CancelSoon: %v", err)
			}
			order = append(order, "child canceled")
			c.Interrupt()
			task.Schedule()
		})
		order = append(order, "parent")
		task.Park() // the child runs, in this turn, and schedules us
		if len(order) != 2 || order[1] != "child" {
			t.Fatalf("order %v", order)
		}
		child.Schedule()
		task.Park()
		child.CancelSoon()
		// The child's Interrupt ends this read, which waits for a peer
		// that writes nothing yet.
		buf := make([]byte, 8)
		if _, err := c.Read(buf); !errors.Is(err, rawconn.ErrInterrupted) {
			t.Fatalf("read: %v, want ErrInterrupted", err)
		}
		if want := "parent child child again child canceled"; fmt.Sprint(order) != "["+want+"]" {
			t.Errorf("order %v, want [%s]", order, want)
		}
		peer.Write([]byte("after"))
		if n, err := c.Read(buf); err != nil || string(buf[:n]) != "after" {
			t.Errorf("read after the interrupt: %q, %v", buf[:n], err)
		}
	})
}
