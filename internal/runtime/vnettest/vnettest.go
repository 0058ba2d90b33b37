// Package vnettest emulates the internet for tests of executor networks,
// without a packet leaving the machine: a network namespace on TEST-NET-2
// (198.51.100.0/24), a private and the cloud metadata address, routed from
// the host over a veth pair, and a DNS server that names it. Only tests
// under internal/runtime and e2e import it; it needs Linux, root and
// iproute2.
package vnettest

import (
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Greeting is what every listener of this package sends, then closes.
const Greeting = "hi"

// Metadata is the address where clouds serve instance metadata.
var Metadata = netip.MustParseAddr("169.254.169.254")

// Internet is the emulated world beyond the host: a namespace with a
// listener greeting on port 80 at each of its addresses.
type Internet struct {
	// NS is the namespace's name, under /run/netns; HostIf is the host end
	// of its veth pair.
	NS, HostIf string
	// Public is on TEST-NET-2; Private in 10.169.0.0/16; the namespace
	// also holds Metadata.
	Public, Private netip.Addr
}

// NewInternet builds the namespace, joined to the host by a veth pair that
// carries a random /30 of 198.51.100.0/24, one of 10.169.0.0/16, and a
// host route to Metadata. It fails the test unless the host routes each
// address through that pair, and removes everything when the test ends.
// The /30s are ones no interface of the host holds, chosen under a lock
// that every test process takes: test packages run in parallel, and two
// emulations on one /30 route each other's addresses.
func NewInternet(t testing.TB) *Internet {
	t.Helper()
	defer lockHost(t)()
	n := freeSlot(t)
	in := &Internet{NS: fmt.Sprintf("he-inet-%08x", n), HostIf: fmt.Sprintf("he%08x", n)}
	hostIf := in.HostIf
	pub := netip.AddrFrom4([4]byte{198, 51, 100, byte(4 * (n % 64))})
	priv := netip.AddrFrom4([4]byte{10, 169, byte(n >> 8), byte(4 * (n % 64))})
	in.Public, in.Private = pub.Next().Next(), priv.Next().Next()

	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", in.NS)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", in.NS).Run() })
	run("link", "add", hostIf, "type", "veth", "peer", "name", "eth0", "netns", in.NS)
	t.Cleanup(func() { exec.Command("ip", "link", "del", hostIf).Run() })
	run("addr", "add", pub.Next().String()+"/30", "dev", hostIf)
	run("addr", "add", priv.Next().String()+"/30", "dev", hostIf)
	run("link", "set", hostIf, "up")
	for _, a := range []string{in.Public.String() + "/30", in.Private.String() + "/30", Metadata.String() + "/32"} {
		run("-n", in.NS, "addr", "add", a, "dev", "eth0")
	}
	run("-n", in.NS, "link", "set", "eth0", "up")
	run("-n", in.NS, "link", "set", "lo", "up")
	// The rest of the world is behind the host.
	run("-n", in.NS, "route", "add", "default", "via", pub.Next().String())
	run("route", "replace", Metadata.String()+"/32", "dev", hostIf) // goes with the link
	// This link is the emulated internet's uplink: replies to executors
	// arrive on it, so it forwards, as the host's real uplink does once
	// Hangar turned forwarding on there.
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+hostIf+"/forwarding", []byte("1"), 0o644); err != nil {
		t.Fatal(err)
	}

	link, err := netlink.LinkByName(hostIf)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{in.Public, in.Private, Metadata} {
		routes, err := netlink.RouteGet(a.AsSlice())
		if err != nil || len(routes) == 0 || routes[0].LinkIndex != link.Attrs().Index {
			t.Fatalf("route to %s: got %+v, %v; want it through %s, on this machine", a, routes, err, hostIf)
		}
		Listen(t, "/run/netns/"+in.NS, net.JoinHostPort(a.String(), "80"))
	}
	return in
}

// lockHost takes the lock every test process takes to add addresses to
// the host, and returns its release.
func lockHost(t testing.TB) (unlock func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "hangar-vnettest.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	return func() { f.Close() } // closing releases the lock
}

// freeSlot returns a random n whose /30s (NewInternet) no interface of the
// host holds.
func freeSlot(t testing.TB) uint32 {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	used := map[[3]byte]bool{} // an address's second and third bytes and its /30's index
	for _, a := range addrs {
		if ip := a.IP.To4(); ip != nil {
			used[[3]byte{ip[1], ip[2], ip[3] / 4}] = true
		}
	}
	for range 1000 {
		n := rand.Uint32()
		if !used[[3]byte{51, 100, byte(n % 64)}] && !used[[3]byte{169, byte(n >> 8), byte(n % 64)}] {
			return n
		}
	}
	t.Fatal("no free /30 in 198.51.100.0/24 for another emulated internet")
	return 0
}

// InNS runs f on a thread in namespace path; the sockets f opens belong to
// that namespace for good. The thread returns to its namespace after f, or
// stays locked, and so ends with f, if it cannot: a thread left in the
// namespace would be killed with it, or, were it the main thread, make the
// whole test process count as a process of the namespace.
func InNS(t testing.TB, path string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		host, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer host.Close()
		h, err := netns.GetFromPath(path)
		if err != nil {
			done <- err
			return
		}
		defer h.Close()
		if err := netns.Set(h); err != nil {
			done <- err
			return
		}
		f()
		if err := netns.Set(host); err != nil {
			done <- err
			return
		}
		goruntime.UnlockOSThread()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter namespace %s: %v", path, err)
	}
}

// Serve accepts connections on ln and greets each with Greeting until the
// test ends.
func Serve(t testing.TB, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, Greeting)
			c.Close()
		}
	}()
}

// Listen listens on TCP addr inside namespace path and serves it.
func Listen(t testing.TB, path, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	InNS(t, path, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, path, err)
	}
	Serve(t, ln)
	return ln
}

// ServeDNS answers A queries for name (fully qualified, "internet.test.")
// with addr, over UDP and TCP on one port of the host's loopback, until
// the test ends, and returns its address. Over UDP, it forwards queries
// for other names to the host's first nameserver, so that build steps
// still find package registries.
func ServeDNS(t testing.TB, name string, addr netip.Addr) string {
	t.Helper()
	upstream := hostNameserver()
	// The UDP port picked may be taken on TCP (another test's connection
	// uses it as its local port): pick again.
	var pc net.PacketConn
	var ln net.Listener
	for i := 0; ln == nil; i++ {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp4", pc.LocalAddr().String()); err != nil {
			pc.Close()
			if i == 20 {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() { pc.Close(); ln.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if a := answer(buf[:n], name, addr); a != nil && a[3]&0x0f != 3 || upstream == "" {
				if a != nil {
					pc.WriteTo(a, from)
				}
			} else {
				go forward(pc, from, append([]byte(nil), buf[:n]...), upstream)
			}
		}
	}()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				// Over TCP each message has a two-byte length before it.
				var l [2]byte
				for {
					if _, err := io.ReadFull(c, l[:]); err != nil {
						return
					}
					q := make([]byte, binary.BigEndian.Uint16(l[:]))
					if _, err := io.ReadFull(c, q); err != nil {
						return
					}
					a := answer(q, name, addr)
					if a == nil {
						return
					}
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(a))), a...))
				}
			}()
		}
	}()
	return pc.LocalAddr().String()
}

// answer answers query q: addr for an A query of name, no records for
// another type, NXDOMAIN for another name.
func answer(q []byte, name string, addr netip.Addr) []byte {
	const header = 12
	i := header
	var labels []string
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		labels = append(labels, string(q[i+1:i+1+l]))
		i += 1 + l
	}
	if i+5 > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	a := append([]byte(nil), q[:i+5]...)
	a[2] = 0x80 | q[2]&0x01 // a response; recursion desired as asked
	a[3] = 0x80             // recursion available
	binary.BigEndian.PutUint16(a[4:], 1)
	clear(a[6:header])
	switch {
	case !strings.EqualFold(strings.Join(labels, ".")+".", name):
		a[3] |= 3 // NXDOMAIN
	case qtype == 1:
		binary.BigEndian.PutUint16(a[6:], 1)
		ip := addr.As4()
		a = append(a, 0xc0, header, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		a = append(a, ip[:]...)
	}
	return a
}

// hostNameserver returns the first nameserver of /etc/resolv.conf as
// ip:53, or "".
func hostNameserver() string {
	b, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return ""
	}
	for line := range strings.Lines(string(b)) {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "nameserver" {
			return net.JoinHostPort(f[1], "53")
		}
	}
	return ""
}

// forward relays query q from client to upstream and its answer back.
func forward(pc net.PacketConn, client net.Addr, q []byte, upstream string) {
	c, err := net.Dial("udp", upstream)
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write(q); err != nil {
		return
	}
	buf := make([]byte, 4096)
	n, err := c.Read(buf)
	if err != nil {
		return
	}
	pc.WriteTo(buf[:n], client)
}
