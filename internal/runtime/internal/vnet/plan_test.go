package vnet

import (
	"fmt"
	"github.com/hangar-oss/hangar/internal/golden"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func formatPlan(plan [][]string) string {
	var b strings.Builder
	for _, args := range plan {
		fmt.Fprintf(&b, "ip %s\n", strings.Join(args, " "))
	}
	return b.String()
}

func TestPlan_Golden(t *testing.T) {
	t.Parallel()
	s := slot{base: netip.MustParseAddr("10.213.0.4")}
	var b strings.Builder
	b.WriteString("# claim\n")
	b.WriteString(formatPlan(claimPlan("hg-app-v1-0", s)))
	b.WriteString("# configure\n")
	b.WriteString(formatPlan(configurePlan("hg-app-v1-0", s)))
	b.WriteString("# start\n")
	b.WriteString(formatPlan([][]string{ExecArgs("hg-app-v1-0", []string{"/bin/sh", "-c", "npm start"})}))
	b.WriteString("# teardown\n")
	b.WriteString(formatPlan(teardownPlan("hg-app-v1-0")))
	golden.Check(t, golden.File("plan"), b.String())
}

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
	const host = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n" +
		"4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\       valid_lft forever preferred_lft forever\n"
	for _, tc := range []struct {
		name, pool, addrs string
		want              string // slot base, "" for none free
	}{
		{"Empty", "10.213.0.0/16", host, "10.213.0.0"},
		{"FirstUsed", "10.213.0.0/16", host + "7: hghaaaaaaaaaaaa    inet 10.213.0.1/30 scope global hghaaaaaaaaaaaa\n", "10.213.0.4"},
		{"Gap", "10.213.0.0/16", host +
			"7: hgh1    inet 10.213.0.1/30 scope global hgh1\n" +
			"9: hgh3    inet 10.213.0.9/30 scope global hgh3\n", "10.213.0.4"},
		{"WiderNetwork", "10.213.0.0/16", "5: br0    inet 10.213.0.77/26 scope global br0\n", "10.213.0.0"},
		{"WiderNetworkAtStart", "10.213.0.0/16", "5: br0    inet 10.213.0.1/26 scope global br0\n", "10.213.0.64"},
		{"Full", "10.213.0.0/29", "7: a    inet 10.213.0.1/30\n8: b    inet 10.213.0.5/30\n", ""},
		{"Covered", "10.213.0.0/16", "5: eth1    inet 10.0.0.1/8 scope global eth1\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s, ok := freeSlot(netip.MustParsePrefix(tc.pool), []byte(tc.addrs))
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
	if got, want := s.gateway().String()+" "+s.address().String(), "10.213.1.253 10.213.1.254"; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

func TestParse(t *testing.T) {
	t.Parallel()
	names := ParseNetnsList([]byte("hg-b (id: 3)\nother\nhg-a\n"))
	if diff := cmp.Diff([]string{"hg-b", "other", "hg-a"}, names); diff != "" {
		t.Errorf("ParseNetnsList (-want +got):\n%s", diff)
	}
	pids, err := parsePIDs([]byte("12\n345\n"))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{12, 345}, pids); diff != "" {
		t.Errorf("parsePIDs (-want +got):\n%s", diff)
	}
	if _, err := parsePIDs([]byte("12\nx\n")); err == nil {
		t.Error("parsePIDs accepted a non-number")
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tc.cfg, nil, "")
			if (err == nil) != tc.ok {
				t.Errorf("got error %v, want ok: %v", err, tc.ok)
			}
		})
	}
}
