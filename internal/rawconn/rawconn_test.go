package rawconn

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a raw connection and its plain peer over loopback.
func pair(t *testing.T) (raw, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-accepted
	if peer == nil {
		t.Fatal("accept failed")
	}
	raw = Wrap(c)
	if _, ok := raw.(*Conn); !ok {
		t.Fatalf("Wrap(%T) did not wrap", c)
	}
	t.Cleanup(func() { raw.Close(); peer.Close() })
	return raw, peer
}

// More than the socket buffers hold, both ways at once: writes that meet a
// full buffer wait for it and go on where they stopped, reads that find
// nothing wait, and nothing is lost or reordered.
func TestConn_CopiesBothWaysPastFullBuffers(t *testing.T) {
	raw, peer := pair(t)
	raw.SetDeadline(time.Now().Add(20 * time.Second))
	peer.SetDeadline(time.Now().Add(20 * time.Second))
	data := make([]byte, 16<<20)
	rand.Read(data)
	errs := make(chan error, 2)
	go func() { _, err := raw.Write(data); errs <- err }()
	go func() { _, err := peer.Write(data); peer.(*net.TCPConn).CloseWrite(); errs <- err }()
	fromPeer := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(raw); fromPeer <- b }()
	got, err := io.ReadAll(io.LimitReader(peer, int64(len(data))))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("peer read %d bytes (err %v), equal %v", len(got), err, bytes.Equal(got, data))
	}
	if b := <-fromPeer; !bytes.Equal(b, data) {
		t.Fatalf("raw read %d bytes, want the peer's %d", len(b), len(data))
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// The router stops a read by setting a past deadline from another
// goroutine (a client that left): a raw read waiting in the poller must
// return, as a timeout.
func TestConn_DeadlineStopsAWaitingRead(t *testing.T) {
	raw, _ := pair(t)
	done := make(chan error, 1)
	go func() { _, err := raw.Read(make([]byte, 10)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	raw.SetReadDeadline(time.Unix(1, 0))
	select {
	case err := <-done:
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("read returned %v, want a timeout", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not return after its deadline passed")
	}
	raw.SetWriteDeadline(time.Unix(1, 0))
	if _, err := raw.Write([]byte("x")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write after its deadline returned %v", err)
	}
}

func TestConn_EOFAndClose(t *testing.T) {
	raw, peer := pair(t)
	peer.Write([]byte("hi"))
	peer.Close()
	b, err := io.ReadAll(raw)
	if err != nil || string(b) != "hi" {
		t.Fatalf("read %q, %v; want hi and EOF", b, err)
	}

	raw2, _ := pair(t)
	done := make(chan error, 1)
	go func() { _, err := raw2.Read(make([]byte, 1)); done <- err }()
	time.Sleep(50 * time.Millisecond)
	raw2.Close()
	if err := <-done; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed connection returned %v, want net.ErrClosed", err)
	}
}

func TestWrap_LeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("Wrap changed a pipe")
	}
}

// Under the race detector (CI runs the tests with -race), what a goroutine
// writes before sending must be ordered before what its peer does after
// receiving, with an ordinary net.Conn on the other end, as between two
// ordinary ones; without rawconn's annotations this test reports a race.
func TestConn_SendingOrdersMemoryForTheRaceDetector(t *testing.T) {
	raw, peer := pair(t)
	var shared int
	go func() {
		shared = 1
		peer.Write([]byte("a")) // ordinary write, raw read
		b := make([]byte, 1)
		peer.Read(b)
		shared = 3
		peer.Write([]byte("c"))
	}()
	b := make([]byte, 1)
	if _, err := raw.Read(b); err != nil || shared != 1 {
		t.Fatalf("read: %v, shared %d", err, shared)
	}
	shared = 2
	raw.Write([]byte("b")) // raw write, ordinary read
	if _, err := raw.Read(b); err != nil || shared != 3 {
		t.Fatalf("read: %v, shared %d", err, shared)
	}
}

// Read and Write are on every proxied request's path: they allocate
// nothing, as net.Conn's do.
func TestConn_ReadAndWriteDoNotAllocate(t *testing.T) {
	raw, peer := pair(t)
	out, in := []byte("ping"), make([]byte, 4)
	go io.Copy(peer, peer) // echo
	allocs := testing.AllocsPerRun(100, func() {
		raw.Write(out)
		io.ReadFull(raw, in)
	})
	if allocs != 0 {
		t.Fatalf("a write and a read allocated %v objects", allocs)
	}
}
