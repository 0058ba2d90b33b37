package vnet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/vnettest"
)

// attemptTimeout bounds each attempt; denials are rejections and fail at once,
// so only a broken firewall would wait it out.
const attemptTimeout = 3 * time.Second

// attempt connects to addr from inside namespace ns and reads the greeting;
// nil means the connection worked.
func attempt(t testing.TB, ns, addr string) error {
	t.Helper()
	var err error
	vnettest.InNS(t, Path(ns), func() {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, attemptTimeout); err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(attemptTimeout))
		var b []byte
		if b, err = io.ReadAll(c); err == nil && string(b) != vnettest.Greeting {
			err = fmt.Errorf("got %q, want the greeting", b)
		}
	})
	return err
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

// TestEgress checks an executor network's firewall, NAT and resolver
// against the internet vnettest emulates, which checks that the host
// routes it locally before anything is sent.
func TestEgress(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	inet := vnettest.NewInternet(t)
	const name = "internet.test."
	dns := vnettest.ServeDNS(t, name, inet.Public)
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
	vnettest.Serve(t, hostLn)
	port := fmt.Sprint(hostLn.Addr().(*net.TCPAddr).Port)
	// A free port on the gateway: a fixed one collides with any service
	// on the host that listens on every address. Another test's listener
	// on every address may take it between the probe and the relay, so a
	// taken port is tried again with another.
	var relayPort int
	var fw *Forwards
	for try := 1; ; try++ {
		probe, err := net.Listen("tcp", net.JoinHostPort(n.Gateway, "0"))
		if err != nil {
			t.Fatal(err)
		}
		relayPort = probe.Addr().(*net.TCPAddr).Port
		probe.Close()
		fw, err = p.Forward(t.Context(), ns, n.Gateway, []runtime.Forward{{ListenPort: relayPort, Target: "127.0.0.1:" + port}}, slogDiscard)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EADDRINUSE) || try == 5 {
			t.Fatal(err)
		}
		t.Logf("port %d taken meanwhile, trying another: %v", relayPort, err)
	}
	t.Cleanup(fw.Close)
	// Another executor, listening.
	nsB, nB := setup("b")
	secure(t, p, nsB, nB)
	vnettest.Listen(t, Path(nsB), net.JoinHostPort(nB.Address, "80"))

	t.Run("Allowed", func(t *testing.T) {
		for _, addr := range []string{
			net.JoinHostPort(n.Gateway, fmt.Sprint(relayPort)), // its relay
			net.JoinHostPort(inet.Public.String(), "80"),       // the internet, by address
		} {
			if err := attempt(t, ns, addr); err != nil {
				t.Errorf("attempt: %s -> %v, want it to work", addr, err)
			} else {
				t.Logf("attempt: %s -> ok", addr)
			}
		}
		// By name, through the resolver on the gateway, over UDP and TCP.
		var addrs []string
		for _, proto := range []string{"udp", "tcp"} {
			r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var c net.Conn
				var err error
				vnettest.InNS(t, Path(ns), func() {
					var d net.Dialer
					c, err = d.DialContext(ctx, proto, net.JoinHostPort(n.Gateway, "53"))
				})
				return c, err
			}}
			addrs, err = r.LookupHost(t.Context(), name)
			if err != nil || len(addrs) != 1 || addrs[0] != inet.Public.String() {
				t.Fatalf("look up %s over %s from the executor: got %v, %v; want %s", name, proto, addrs, err, inet.Public)
			}
		}
		if err := attempt(t, ns, net.JoinHostPort(addrs[0], "80")); err != nil {
			t.Errorf("attempt: %s (%s) -> %v, want it to work", name, addrs[0], err)
		}
		// Programs run by `ip netns exec` resolve through it too.
		out, err := exec.Command("ip", "netns", "exec", ns, "getent", "hosts", strings.TrimSuffix(name, ".")).CombinedOutput()
		if err != nil || !strings.HasPrefix(string(out), inet.Public.String()) {
			t.Errorf("getent hosts %s in the executor: got %q, %v; want %s", name, out, err, inet.Public)
		}
	})

	t.Run("Denied", func(t *testing.T) {
		targets := []string{
			net.JoinHostPort(n.Gateway, port),                  // a host service through the gateway
			net.JoinHostPort(n.Gateway, "22"),                  // whatever else listens there
			net.JoinHostPort(nB.Address, "80"),                 // another executor
			net.JoinHostPort(nB.Gateway, port),                 // another executor's gateway
			net.JoinHostPort("127.0.0.1", port),                // loopback, its own: nothing listens
			net.JoinHostPort(inet.Private.String(), "80"),      // a private address
			net.JoinHostPort(vnettest.Metadata.String(), "80"), // cloud metadata
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

	// A neighbour that routes the pool through the host reaches no
	// executor: only replies go in.
	t.Run("FromOutside", func(t *testing.T) {
		addr := net.JoinHostPort(nB.Address, "80")
		if out, err := exec.Command("ip", "-n", inet.NS, "route", "add", nB.Address+"/32", "via", inet.Public.Prev().String()).CombinedOutput(); err != nil {
			t.Fatalf("route the executor from outside: %v: %s", err, out)
		}
		var err error
		vnettest.InNS(t, Path(inet.NS), func() {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, attemptTimeout); err == nil {
				c.Close()
			}
		})
		if err == nil {
			t.Errorf("attempt from the internet: %s -> connected, want it denied", addr)
		} else {
			t.Logf("attempt from the internet: %s -> denied (%v)", addr, err)
		}
	})

	// An uplink on which forwarding was off: Hangar turns it on, so that
	// replies reach executors, and records it in the host table, so that
	// the host forwards nothing else that arrives there.
	t.Run("Uplink", func(t *testing.T) {
		up := vnettest.NewInternet(t)
		if err := setSysctl("ipv4/conf/"+up.HostIf+"/forwarding", "0"); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			p.nft(context.Background(), fmt.Sprintf("delete element inet %s uplinks { %q }\n", hostTable, up.HostIf))
		})
		if err := p.openUplinks(t.Context(), []string{up.HostIf}); err != nil {
			t.Fatalf("openUplinks: %v", err)
		}
		if on, err := forwarding(up.HostIf); !on || err != nil {
			t.Errorf("forwarding on %s: got %v, %v; want on", up.HostIf, on, err)
		}
		if out, err := exec.Command("nft", "list", "set", "inet", hostTable, "uplinks").CombinedOutput(); err != nil || !strings.Contains(string(out), `"`+up.HostIf+`"`) {
			t.Errorf("host table's uplinks lack %s: %v\n%s", up.HostIf, err, out)
		}
		addr := net.JoinHostPort(up.Public.String(), "80")
		if err := attempt(t, ns, addr); err != nil {
			t.Errorf("attempt: %s through the uplink -> %v, want it to work", addr, err)
		}
		// A neighbour on the uplink that routes through the host to
		// another network (the first emulated internet, which routes
		// back through the host) is dropped.
		target := net.JoinHostPort(inet.Public.String(), "80")
		if out, err := exec.Command("ip", "-n", up.NS, "route", "add", inet.Public.String()+"/32", "via", up.Public.Prev().String()).CombinedOutput(); err != nil {
			t.Fatalf("route through the host: %v: %s", err, out)
		}
		var err error
		vnettest.InNS(t, Path(up.NS), func() {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", target, attemptTimeout); err == nil {
				c.Close()
			}
		})
		if err == nil {
			t.Errorf("attempt from the uplink's side: %s -> connected, want the host not to route it", target)
		}
	})

	t.Run("NoIPv6", func(t *testing.T) {
		for _, c := range [][]string{{"-n", ns, "-6", "addr", "show", "dev", "eth0"}, {"-6", "addr", "show", "dev", HostIf(ns)}} {
			if out := ip(t, c...); strings.TrimSpace(out) != "" {
				t.Errorf("ip %s: got %q, want no IPv6 address", strings.Join(c, " "), out)
			}
		}
	})

	// Connections beyond the cap are refused while the others stay open.
	t.Run("ConnectionCap", func(t *testing.T) {
		p3 := newTestPool(t, runtime.Egress{Resolvers: []string{dns}, MaxConnections: 2})
		ns3 := p3.Name("d")
		network, err := p3.Setup(t.Context(), ns3)
		if err != nil {
			p3.Teardown(t.Context(), ns3)
			t.Fatalf("Setup: %v", err)
		}
		defer p3.Teardown(t.Context(), ns3)
		secure(t, p3, ns3, network)
		// A listener that never closes: the kernel completes handshakes
		// for its backlog.
		var ln net.Listener
		vnettest.InNS(t, Path(inet.NS), func() { ln, err = net.Listen("tcp", net.JoinHostPort(inet.Public.String(), "81")) })
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addr := ln.Addr().String()
		for i := range 3 {
			var c net.Conn
			vnettest.InNS(t, Path(ns3), func() { c, err = net.DialTimeout("tcp", addr, attemptTimeout) })
			if i < 2 && err != nil {
				t.Fatalf("connection %d of 2 allowed: %v", i+1, err)
			}
			if i == 2 && err == nil {
				t.Errorf("connection 3 with MaxConnections 2: connected, want it refused")
			}
			if c != nil {
				defer c.Close()
			}
		}
	})

	t.Run("AllowPrivate", func(t *testing.T) {
		p2 := newTestPool(t, runtime.Egress{Resolvers: []string{dns}, Allow: []string{"10.169.0.0/16", "169.254.0.0/16"}})
		ns2 := p2.Name("c")
		network, err := p2.Setup(t.Context(), ns2)
		if err != nil {
			p2.Teardown(t.Context(), ns2)
			t.Fatalf("Setup: %v", err)
		}
		defer p2.Teardown(t.Context(), ns2)
		secure(t, p2, ns2, network)
		addr := net.JoinHostPort(inet.Private.String(), "80")
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

// secure starts the resolver of namespace ns, set up on n, with no relays,
// which installs its firewall, as an executor's start does.
func secure(t *testing.T, p *Pool, ns string, n runtime.Network) {
	t.Helper()
	fw, err := p.Forward(t.Context(), ns, n.Gateway, nil, slogDiscard)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fw.Close)
}
