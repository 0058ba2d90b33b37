package vnet

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	goruntime "runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// These tests emulate the internet in a namespace of their own, on a
// TEST-NET-2 address (198.51.100.0/24) and a private one, routed over a
// veth pair from the host; they check that the route to each is that pair
// before they send anything, so that no packet leaves the machine.

// attemptTimeout bounds each attempt; denials are rejections and fail at once,
// so only a broken firewall would wait it out.
const attemptTimeout = 3 * time.Second

// inNS runs f on a thread in namespace path; the sockets f opens belong
// to that namespace for good. The thread returns to the host's namespace
// after f, or stays locked, and so ends with f, if it cannot: a thread left
// in the namespace would be killed with it, or, were it the main thread,
// make the whole test process count as a process of the namespace.
func inNS(t testing.TB, path string, f func()) {
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

// serve accepts connections on ln and greets each with "hi".
func serve(t testing.TB, ln net.Listener) {
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "hi")
			c.Close()
		}
	}()
}

// listenIn listens on TCP addr inside namespace path and serves it.
func listenIn(t testing.TB, path, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	var err error
	inNS(t, path, func() { ln, err = net.Listen("tcp", addr) })
	if err != nil {
		t.Fatalf("listen on %s in %s: %v", addr, path, err)
	}
	serve(t, ln)
	return ln
}

// attempt connects to addr from inside namespace ns and reads the greeting;
// nil means the connection worked.
func attempt(t testing.TB, ns, addr string) error {
	t.Helper()
	var err error
	inNS(t, Path(ns), func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, attemptTimeout); err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(attemptTimeout))
		var b []byte
		if b, err = io.ReadAll(c); err == nil && string(b) != "hi" {
			err = fmt.Errorf("got %q, want the greeting", b)
		}
	})
	return err
}

// internet is the emulated world beyond the host.
type internet struct {
	ns             string // its namespace's name, under /run/netns
	public, priv   netip.Addr
	hostIf         string
	publicLn       net.Listener
	privLn, metaLn net.Listener
}

// newInternet builds a namespace joined to the host by a veth pair that
// carries a random /30 of 198.51.100.0/24, one of 10.169.0.0/16 and
// 169.254.169.254 (the cloud metadata address); a listener greets on each.
// It checks that the host routes each through the pair.
func newInternet(t *testing.T) *internet {
	t.Helper()
	n := rand.Uint32()
	in := &internet{ns: fmt.Sprintf("he-inet-%08x", n), hostIf: fmt.Sprintf("he%08x", n)}
	pub := netip.AddrFrom4([4]byte{198, 51, 100, byte(4 * (n % 64))})
	priv := netip.AddrFrom4([4]byte{10, 169, byte(n >> 8), byte(4 * (n % 64))})
	in.public, in.priv = pub.Next().Next(), priv.Next().Next()
	meta := netip.MustParseAddr("169.254.169.254")

	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	run("netns", "add", in.ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", in.ns).Run() })
	run("link", "add", in.hostIf, "type", "veth", "peer", "name", "eth0", "netns", in.ns)
	t.Cleanup(func() { exec.Command("ip", "link", "del", in.hostIf).Run() })
	run("addr", "add", pub.Next().String()+"/30", "dev", in.hostIf)
	run("addr", "add", priv.Next().String()+"/30", "dev", in.hostIf)
	run("link", "set", in.hostIf, "up")
	run("-n", in.ns, "addr", "add", in.public.String()+"/30", "dev", "eth0")
	run("-n", in.ns, "addr", "add", in.priv.String()+"/30", "dev", "eth0")
	run("-n", in.ns, "addr", "add", meta.String()+"/32", "dev", "eth0")
	run("-n", in.ns, "link", "set", "eth0", "up")
	run("-n", in.ns, "link", "set", "lo", "up")
	run("route", "replace", meta.String()+"/32", "dev", in.hostIf) // goes with the link
	// This link is the emulated internet's uplink: replies to executors
	// arrive on it, so it forwards, as the host's real uplink does once
	// Hangar turned forwarding on there.
	if err := setSysctl("ipv4/conf/"+in.hostIf+"/forwarding", "1"); err != nil {
		t.Fatal(err)
	}

	link, err := netlink.LinkByName(in.hostIf)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []netip.Addr{in.public, in.priv, meta} {
		routes, err := netlink.RouteGet(a.AsSlice())
		if err != nil || len(routes) == 0 || routes[0].LinkIndex != link.Attrs().Index {
			t.Fatalf("route to %s: got %+v, %v; want it through %s, on this machine", a, routes, err, in.hostIf)
		}
	}
	in.publicLn = listenIn(t, Path(in.ns), net.JoinHostPort(in.public.String(), "80"))
	in.privLn = listenIn(t, Path(in.ns), net.JoinHostPort(in.priv.String(), "80"))
	in.metaLn = listenIn(t, Path(in.ns), net.JoinHostPort(meta.String(), "80"))
	return in
}

// serveDNS answers A queries for name with addr, over UDP on the host's
// loopback, and returns its address.
func serveDNS(t testing.TB, name string, addr netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if a := dnsAnswer(buf[:n], name, addr); a != nil {
				pc.WriteTo(a, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// dnsAnswer answers query q: addr for an A query of name, no records for
// another type, NXDOMAIN for another name.
func dnsAnswer(q []byte, name string, addr netip.Addr) []byte {
	i := dnsHeaderLen
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
	clear(a[6:12])
	switch {
	case !strings.EqualFold(strings.Join(labels, ".")+".", name):
		a[3] |= 3 // NXDOMAIN
	case qtype == 1:
		binary.BigEndian.PutUint16(a[6:], 1)
		ip := addr.As4()
		a = append(a, 0xc0, dnsHeaderLen, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
		a = append(a, ip[:]...)
	}
	return a
}

// hostAddrs returns every address of the host's interfaces, link-local
// IPv6 ones with their zone.
func hostAddrs(t testing.TB) []string {
	t.Helper()
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, a := range addrs {
		s := a.IP.String()
		if a.IP.IsLinkLocalUnicast() && a.IP.To4() == nil {
			link, err := netlink.LinkByIndex(a.LinkIndex)
			if err != nil {
				continue // gone meanwhile
			}
			s += "%" + link.Attrs().Name
		}
		out = append(out, s)
	}
	return out
}

func TestEgress(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	inet := newInternet(t)
	const name = "internet.test."
	dns := serveDNS(t, name, inet.public)
	p := newTestPool(t, runtime.Egress{Resolvers: []string{dns}})

	setup := func(id string) (string, runtime.Network) {
		t.Helper()
		ns := p.Name(id)
		n, err := p.Setup(t.Context(), ns)
		t.Cleanup(func() { p.Teardown(t.Context(), ns) })
		if err != nil {
			t.Fatalf("Setup: %v", err)
		}
		return ns, n
	}
	ns, n := setup("a")
	// A host service on every address, and a relay to it on the gateway.
	hostLn, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	serve(t, hostLn)
	port := fmt.Sprint(hostLn.Addr().(*net.TCPAddr).Port)
	relayPort := 15432
	fw, err := p.Forward(t.Context(), ns, n.Gateway, []runtime.Forward{{ListenPort: relayPort, Target: "127.0.0.1:" + port}}, slogDiscard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fw.Close)
	// Another executor, listening.
	nsB, nB := setup("b")
	listenIn(t, Path(nsB), net.JoinHostPort(nB.Address, "80"))

	t.Run("Allowed", func(t *testing.T) {
		for _, addr := range []string{
			net.JoinHostPort(n.Gateway, fmt.Sprint(relayPort)), // its relay
			net.JoinHostPort(inet.public.String(), "80"),       // the internet, by address
		} {
			if err := attempt(t, ns, addr); err != nil {
				t.Errorf("attempt: %s -> %v, want it to work", addr, err)
			} else {
				t.Logf("attempt: %s -> ok", addr)
			}
		}
		// By name, through the resolver on the gateway.
		var addrs []string
		inNS(t, Path(ns), func() {
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
				var c net.Conn
				var err error
				inNS(t, Path(ns), func() {
					var d net.Dialer
					c, err = d.DialContext(ctx, network, net.JoinHostPort(n.Gateway, "53"))
				})
				return c, err
			}}
			addrs, err = r.LookupHost(t.Context(), name)
		})
		if err != nil || len(addrs) != 1 || addrs[0] != inet.public.String() {
			t.Fatalf("look up %s from the executor: got %v, %v; want %s", name, addrs, err, inet.public)
		}
		if err := attempt(t, ns, net.JoinHostPort(addrs[0], "80")); err != nil {
			t.Errorf("attempt: %s (%s) -> %v, want it to work", name, addrs[0], err)
		}
		// Programs run by `ip netns exec` resolve through it too.
		out, err := exec.Command("ip", "netns", "exec", ns, "getent", "hosts", strings.TrimSuffix(name, ".")).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), inet.public.String()) {
			t.Errorf("getent hosts %s in the executor: got %q, %v; want %s", name, out, err, inet.public)
		}
	})

	t.Run("Denied", func(t *testing.T) {
		targets := []string{
			net.JoinHostPort(n.Gateway, port),          // a host service through the gateway
			net.JoinHostPort(n.Gateway, "22"),          // whatever else listens there
			net.JoinHostPort(nB.Address, "80"),         // another executor
			net.JoinHostPort(nB.Gateway, port),         // another executor's gateway
			net.JoinHostPort("127.0.0.1", port),        // loopback, its own: nothing listens
			net.JoinHostPort(inet.priv.String(), "80"), // a private address
			"169.254.169.254:80",                       // cloud metadata
		}
		for _, a := range hostAddrs(t) {
			targets = append(targets, net.JoinHostPort(a, port)) // every host address
		}
		for _, addr := range targets {
			if err := attempt(t, ns, addr); err == nil {
				t.Errorf("attempt: %s -> connected, want it denied", addr)
			} else {
				t.Logf("attempt: %s -> denied (%v)", addr, err)
			}
		}
	})

	t.Run("NoIPv6", func(t *testing.T) {
		for _, c := range [][]string{{"-n", ns, "-6", "addr", "show", "dev", "eth0"}, {"-6", "addr", "show", "dev", HostIf(ns)}} {
			if out := ip(t, c...); strings.TrimSpace(out) != "" {
				t.Errorf("ip %s: got %q, want no IPv6 address", strings.Join(c, " "), out)
			}
		}
	})

	t.Run("AllowPrivate", func(t *testing.T) {
		p2 := newTestPool(t, runtime.Egress{Resolvers: []string{dns}, Allow: []string{"10.169.0.0/16", "169.254.0.0/16"}})
		ns2 := p2.Name("c")
		if _, err := p2.Setup(t.Context(), ns2); err != nil {
			p2.Teardown(t.Context(), ns2)
			t.Fatalf("Setup: %v", err)
		}
		defer p2.Teardown(t.Context(), ns2)
		addr := net.JoinHostPort(inet.priv.String(), "80")
		if err := attempt(t, ns2, addr); err != nil {
			t.Errorf("attempt with --egress-allow 10.169.0.0/16: %s -> %v, want it to work", addr, err)
		}
		// Link-local stays closed whatever the policy says.
		if err := attempt(t, ns2, "169.254.169.254:80"); err == nil {
			t.Errorf("attempt with --egress-allow 169.254.0.0/16: 169.254.169.254:80 -> connected, want it denied")
		}
	})
}

var slogDiscard = slog.New(slog.DiscardHandler)
