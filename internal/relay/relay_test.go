package relay

import (
	"io"
	"log/slog"
	"net"
	"testing"
	"time"
)

var discard = slog.New(slog.DiscardHandler)

// listen returns a loopback listener closed when the test ends.
func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

func TestServer_Relays(t *testing.T) {
	t.Parallel()
	// The target answers "pong:" plus everything it reads, once the client
	// half-closes: the relay must pass the half-close on.
	target := listen(t)
	go func() {
		for {
			c, err := target.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(append([]byte("pong:"), b...))
			}()
		}
	}()
	f := Start([]net.Listener{listen(t)}, To(target.Addr().String(), discard), discard)
	defer f.Close()

	for range 3 {
		c, err := net.Dial("tcp", f.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("ping"))
		c.(*net.TCPConn).CloseWrite()
		got, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(got) != "pong:ping" {
			t.Errorf("got %q, %v; want %q", got, err, "pong:ping")
		}
	}
}

func TestServer_CloseEndsConnections(t *testing.T) {
	t.Parallel()
	target := listen(t)
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := target.Accept(); err == nil {
			accepted <- c
		}
	}()
	f := Start([]net.Listener{listen(t)}, To(target.Addr().String(), discard), discard)
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var upstream net.Conn
	select {
	case upstream = <-accepted:
		defer upstream.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("the relay did not connect to its target")
	}

	closed := make(chan struct{})
	go func() { f.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("close did not return while a connection was open")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("client connection still open after close")
	}
	upstream.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := upstream.Read(make([]byte, 1)); err == nil {
		t.Error("target connection still open after close")
	}
	if _, err := net.Dial("tcp", f.Addr().String()); err == nil {
		t.Error("relay still accepts after close")
	}
}

func TestServer_TargetDown(t *testing.T) {
	t.Parallel()
	down := listen(t)
	addr := down.Addr().String()
	down.Close()
	f := Start([]net.Listener{listen(t)}, To(addr, discard), discard)
	defer f.Close()
	c, err := net.Dial("tcp", f.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("got %d bytes, %v; want the connection closed (EOF)", n, err)
	}
}
