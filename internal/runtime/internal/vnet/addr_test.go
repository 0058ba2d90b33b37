package vnet

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/runtime"
)

func TestHostIf(t *testing.T) {
	t.Parallel()
	long := "abcdefghijklmnop-" + strings.Repeat("x", 63)
	for _, ns := range []string{"hg-a", long} {
		if got := HostIf(ns); len(got) > 15 || !strings.HasPrefix(got, "hgh") {
			t.Errorf("HostIf(%q) = %q, want hgh… of at most 15 bytes", ns, got)
		}
	}
	if HostIf("hg-a") == HostIf("hg-b") || HostIf("hg-a") != HostIf("hg-a") {
		t.Error("HostIf is not a deterministic function of the namespace")
	}
}

func TestFreeSlot(t *testing.T) {
	t.Parallel()
	host := []string{"127.0.0.1/8", "192.0.2.2/24"}
	for _, tc := range []struct {
		name, pool string
		used       []string
		want       string // slot base, "" for none free
	}{
		{"Empty", "10.213.0.0/16", host, "10.213.0.0"},
		{"FirstUsed", "10.213.0.0/16", append(host, "10.213.0.1/30"), "10.213.0.4"},
		{"Gap", "10.213.0.0/16", append(host, "10.213.0.1/30", "10.213.0.9/30"), "10.213.0.4"},
		{"WiderNetwork", "10.213.0.0/16", []string{"10.213.0.77/26"}, "10.213.0.0"},
		{"WiderNetworkAtStart", "10.213.0.0/16", []string{"10.213.0.1/26"}, "10.213.0.64"},
		{"Full", "10.213.0.0/29", []string{"10.213.0.1/30", "10.213.0.5/30"}, ""},
		{"Covered", "10.213.0.0/16", []string{"10.0.0.1/8"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var used []netip.Prefix
			for _, p := range tc.used {
				used = append(used, netip.MustParsePrefix(p))
			}
			s, ok := freeSlot(netip.MustParsePrefix(tc.pool), used)
			got := ""
			if ok {
				got = s.base.String()
			}
			if got != tc.want {
				t.Errorf("got slot %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSlot_Addresses(t *testing.T) {
	t.Parallel()
	s := slot{base: netip.MustParseAddr("10.213.1.252")}
	if got, want := s.gateway().String()+" "+s.address().String(), "10.213.1.253/30 10.213.1.254/30"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestExecArgs(t *testing.T) {
	t.Parallel()
	got := ExecArgs("hg-app-v1-0", []string{"/bin/sh", "-c", "npm start"})
	if diff := cmp.Diff([]string{"netns", "exec", "hg-app-v1-0", "/bin/sh", "-c", "npm start"}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if got, want := Path("hg-a"), "/run/netns/hg-a"; got != want {
		t.Errorf("Path: got %s, want %s", got, want)
	}
}

func TestNew_Config(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"Defaults", Config{}, true},
		{"Custom", Config{Subnet: "172.31.128.0/20", Prefix: "t1"}, true},
		{"IPv6", Config{Subnet: "fd00::/64"}, false},
		{"TooSmall", Config{Subnet: "10.0.0.0/31"}, false},
		{"NotAPrefix", Config{Subnet: "10.0.0.1"}, false},
		{"DashInPrefix", Config{Prefix: "hg-x"}, false},
		{"Egress", Config{Egress: runtime.Egress{Allow: []string{"10.1.0.0/16"}, Deny: []string{"203.0.113.0/24"}, Resolvers: []string{"127.0.0.1:5353", "::1"}}}, true},
		{"EgressNotAPrefix", Config{Egress: runtime.Egress{Allow: []string{"10.1.0.0"}}}, false},
		{"EgressIPv6", Config{Egress: runtime.Egress{Deny: []string{"fd00:ec2::254/128"}}}, false},
		{"ResolverNotAnIP", Config{Egress: runtime.Egress{Resolvers: []string{"dns.example"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, "", nil)
			if (err == nil) != tc.ok {
				t.Errorf("got error %v, want ok: %v", err, tc.ok)
			}
		})
	}
}
