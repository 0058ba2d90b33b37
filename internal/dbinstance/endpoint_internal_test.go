package dbinstance

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// hostAddr returns an IPv4 address of this host other than loopback: a
// client there is "another host" to the endpoint, while its packets never
// leave the machine.
func hostAddr(t *testing.T) netip.Addr {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() && !p.Addr().IsLoopback() && !p.Addr().IsLinkLocalUnicast() {
			return p.Addr()
		}
	}
	t.Skip("no non-loopback IPv4 address on this host")
	return netip.Addr{}
}

// echo serves ln, echoing what each connection sends.
func echo(t *testing.T, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
}

// roundTrip reports whether conn relays a message to the echo server and
// back; a connection the endpoint closed reads EOF instead.
func roundTrip(c net.Conn) error {
	msg := []byte("hello, instance!")
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	_, err := io.ReadFull(c, got)
	return err
}

// TestEndpoint_PerIPCap is the attack on the public database ports: one
// client opens connections until it holds more than its share. Those over
// the cap are closed at once; loopback (Hangar, the executors' relays) is
// never capped; a closed connection frees its place.
func TestEndpoint_PerIPCap(t *testing.T) {
	t.Parallel()
	const max = 3
	remote := hostAddr(t)
	m := New(Config{Sandbox: &Sandbox{MaxConnsPerIP: max, FirstPort: -1}})
	lns, err := m.listenPort(0)
	if err != nil {
		t.Fatal(err)
	}
	// The instance: TLS clients go to its TCP listener, local ones to its
	// Unix socket; both echo here.
	tcp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	echo(t, tcp)
	socket := filepath.Join(t.TempDir(), "s")
	unix, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	echo(t, unix)
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", tcp.Addr().String())
	}
	ep := startEndpoint(lns, socket, dial, slog.New(slog.DiscardHandler))
	t.Cleanup(ep.Close)
	port := strconv.Itoa(ep.Addr().(*net.TCPAddr).Port)
	connect := func(host string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", net.JoinHostPort(host, port))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	var held []net.Conn
	for i := range max {
		c := connect(remote.String())
		if err := roundTrip(c); err != nil {
			t.Fatalf("connection %d of %d from %s: %v", i+1, max, remote, err)
		}
		held = append(held, c)
	}
	for i := range 5 {
		if err := roundTrip(connect(remote.String())); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("connection %d over the cap of %d from %s: %v, want closed", i+1, max, remote, err)
		}
	}
	t.Logf("attempt: %d connections from one client to a database port with --db-max-conns-per-ip %d -> %d relayed, the rest closed on accept", max+5, max, max)
	for i := range 2 * max {
		if err := roundTrip(connect("127.0.0.1")); err != nil {
			t.Errorf("loopback connection %d: %v; loopback is not capped", i+1, err)
		}
	}
	held[0].Close()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if roundTrip(connect(remote.String())) == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection did not free its place under the cap")
		}
	}
}
