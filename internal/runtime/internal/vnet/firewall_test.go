package vnet

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hangar-oss/hangar/internal/golden"
	"github.com/hangar-oss/hangar/internal/runtime"
)

func TestFirewallRules_Golden(t *testing.T) {
	t.Parallel()
	pool := netip.MustParsePrefix("10.213.0.0/16")
	def, err := parsePolicy(runtime.Egress{}, pool)
	if err != nil {
		t.Fatal(err)
	}
	custom, err := parsePolicy(runtime.Egress{Allow: []string{"10.1.0.0/16", "10.1.2.0/24"}, Deny: []string{"203.0.113.7/24", "127.0.0.1/32"}}, pool)
	if err != nil {
		t.Fatal(err)
	}
	golden.Check(t, golden.File("firewall"),
		"# default policy, relays on 5432 and 6379\n"+firewallRules("hg-app-v1-0", "10.213.0.5", []int{5432, 6379}, def)+
			"# --egress-allow 10.1.0.0/16,10.1.2.0/24 --egress-deny 203.0.113.7/24,127.0.0.1/32, no relays\n"+
			firewallRules("hg-app-v1-0", "10.213.0.5", nil, custom)+
			"# uplink\n"+uplinkRules("eth0"))
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	got, err := parsePrefixes("deny", []string{"10.1.0.0/16", " 10.0.0.0/8", "192.168.1.7/24", "10.2.3.4/32", "192.168.0.0/16"})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.0.0/16")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("parsePrefixes (-want +got):\n%s", diff)
	}
}

func TestNameservers(t *testing.T) {
	t.Parallel()
	got := Nameservers(strings.NewReader("# comment\nsearch example.com\nnameserver 10.255.255.53\nnameserver fe80::1%eth0\nnameserver bogus\noptions ndots:2\n"))
	want := []string{"10.255.255.53:53", "[fe80::1%eth0]:53"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Nameservers (-want +got):\n%s", diff)
	}
}
