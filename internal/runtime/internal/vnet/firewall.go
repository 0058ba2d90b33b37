package vnet

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os/exec"
	"slices"
	"strings"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// Each executor network has a firewall: an nftables table of its own, named
// after the host end of its veth pair, in which
//   - the input chain rejects whatever the executor sends to any of the
//     host's addresses, except replies on connections the host opened (the
//     router's) and new connections to its resolver and relays on its
//     gateway. Without it an executor reaches every host service that
//     listens on a wildcard address (0.0.0.0:22, a database on *:5432,
//     Hangar's own port) through its gateway, since the host accepts
//     packets for any of its addresses on any interface; SO_BINDTODEVICE on
//     the relays alone cannot prevent that;
//   - the forward chain applies the egress policy to what the executor
//     sends beyond the host, and lets nothing into the executor but replies;
//   - the postrouting chain masquerades what leaves the host.
// One table per executor keeps executors independent: adding or removing
// one touches no other's rules, and a table is removed whole.

// alwaysDeny are the IPv4 ranges no policy opens: "this network",
// loopback, link-local (where clouds serve instance metadata, at
// 169.254.169.254), multicast and the reserved range with the broadcast
// address.
var alwaysDeny = []string{"0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4"}

// hostIfGlob matches the host end of every executor network on the host,
// of any Hangar instance; see HostIf.
const hostIfGlob = "hgh*"

// defaultMaxConnections is runtime.Egress.MaxConnections's default.
const defaultMaxConnections = 4096

// policy is a parsed runtime.Egress.
type policy struct {
	deny, allow, private []netip.Prefix
	maxConns             int
}

// parsePolicy checks e and adds the fixed parts: pool joins the ranges no
// policy opens.
func parsePolicy(e runtime.Egress, pool netip.Prefix) (policy, error) {
	deny, err := parsePrefixes("deny", append(append(slices.Clone(alwaysDeny), pool.String()), e.Deny...))
	if err != nil {
		return policy{}, err
	}
	allow, err := parsePrefixes("allow", e.Allow)
	if err != nil {
		return policy{}, err
	}
	private, err := parsePrefixes("deny", runtime.DefaultEgressDeny)
	if err != nil {
		return policy{}, err
	}
	maxConns := e.MaxConnections
	if maxConns == 0 {
		maxConns = defaultMaxConnections
	}
	if maxConns < 1 {
		return policy{}, fmt.Errorf("egress: max connections %d: want a positive number", maxConns)
	}
	return policy{deny: deny, allow: allow, private: private, maxConns: maxConns}, nil
}

// parsePrefixes parses IPv4 prefixes and leaves out those inside another,
// which nft would reject as overlapping elements of one set.
func parsePrefixes(what string, ss []string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(strings.TrimSpace(s))
		if err != nil {
			return nil, fmt.Errorf("egress %s %q: want an IPv4 prefix such as 10.1.0.0/16", what, s)
		}
		if !p.Addr().Is4() {
			return nil, fmt.Errorf("egress %s %q: executors have no IPv6, which is all denied: want an IPv4 prefix", what, s)
		}
		ps = append(ps, p.Masked())
	}
	// Shortest first, so that a prefix is checked against all that could
	// contain it.
	slices.SortFunc(ps, func(a, b netip.Prefix) int {
		if a.Bits() != b.Bits() {
			return a.Bits() - b.Bits()
		}
		return a.Addr().Compare(b.Addr())
	})
	var out []netip.Prefix
next:
	for _, p := range ps {
		for _, q := range out {
			if q.Overlaps(p) {
				continue next
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// nftSet renders ps as an anonymous nft set.
func nftSet(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return "{ " + strings.Join(s, ", ") + " }"
}

// firewallRules returns the nft script that (re)creates the firewall of
// namespace ns, whose gateway is gateway and whose relays listen on ports.
func firewallRules(ns, gateway string, ports []int, pol policy) string {
	dev, table := HostIf(ns), HostIf(ns)
	var b strings.Builder
	// Declaring then deleting makes the script idempotent; nft applies it
	// as one transaction, so the executor is never unguarded meanwhile.
	fmt.Fprintf(&b, "table inet %s\ndelete table inet %s\ntable inet %s {\n", table, table, table)
	in := func(rule string, args ...any) {
		fmt.Fprintf(&b, "\t\tiifname %q "+rule+"\n", append([]any{dev}, args...)...)
	}

	fmt.Fprintf(&b, "\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n")
	in("ct state established,related accept")
	in("ip daddr %s udp dport 53 accept", gateway)
	tcp := []string{"53"}
	for _, p := range ports {
		tcp = append(tcp, fmt.Sprint(p))
	}
	in("ip daddr %s tcp dport { %s } accept", gateway, strings.Join(tcp, ", "))
	in("jump refuse")
	fmt.Fprintf(&b, "\t}\n")

	fmt.Fprintf(&b, "\tchain forward {\n\t\ttype filter hook forward priority 0; policy accept;\n")
	// Into the executor: replies only, neither other executors nor hosts
	// that route to the pool through the host's uplink.
	fmt.Fprintf(&b, "\t\toifname %q ct state established,related accept\n\t\toifname %q jump refuse\n", dev, dev)
	in("ct state established,related accept")
	in("oifname %q jump refuse", hostIfGlob)
	in("ct state new ct count over %d jump refuse", pol.maxConns)
	in("ip daddr %s jump refuse", nftSet(pol.deny))
	if len(pol.allow) > 0 {
		in("ip daddr %s accept", nftSet(pol.allow))
	}
	in("ip daddr %s jump refuse", nftSet(pol.private))
	in("meta nfproto ipv4 accept")
	in("jump refuse")
	fmt.Fprintf(&b, "\t}\n")

	fmt.Fprintf(&b, "\tchain postrouting {\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n")
	in("oifname != %q masquerade", hostIfGlob)
	fmt.Fprintf(&b, "\t}\n")

	// Reject rather than drop, so that the app fails at once instead of
	// waiting for a timeout.
	fmt.Fprintf(&b, "\tchain refuse {\n\t\tmeta l4proto tcp reject with tcp reset\n\t\treject with icmpx admin-prohibited\n\t}\n}\n")
	return b.String()
}

// hostTable is the host-wide table that keeps the host from routing for
// others through the uplinks on which Hangar turned forwarding on (see
// uplinkRules). All Hangar instances on the host share it.
const hostTable = "hangar"

// uplinkRules returns the nft script that records dev as an uplink on
// which Hangar turned IPv4 forwarding on, and forwards what arrives there
// only to executor networks (whose firewalls let replies through and
// nothing else). Forwarding is a property of the receiving interface, and
// replies to executors arrive on the uplink; without this rule the host
// would route whatever its neighbours send it.
func uplinkRules(dev string) string {
	return fmt.Sprintf(`add table inet %[1]s
add set inet %[1]s uplinks { type ifname; }
add chain inet %[1]s forward { type filter hook forward priority 0; policy accept; }
flush chain inet %[1]s forward
add rule inet %[1]s forward iifname @uplinks oifname != %[2]q drop
add element inet %[1]s uplinks { %[3]q }
`, hostTable, hostIfGlob, dev)
}

// NFT runs nft with a script on stdin.
type NFT func(ctx context.Context, script string) error

// ExecNFT returns the NFT that runs the nft binary at path.
func ExecNFT(path string) NFT {
	return func(ctx context.Context, script string) error {
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, path, "-f", "-")
		cmd.Stdin, cmd.Stderr = strings.NewReader(script), &stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
		return nil
	}
}

// removeFirewall removes the firewall of namespace ns; one already gone is
// fine.
func removeFirewall(ctx context.Context, nft NFT, ns string) error {
	table := HostIf(ns)
	if err := nft(ctx, fmt.Sprintf("table inet %s\ndelete table inet %s\n", table, table)); err != nil {
		return fmt.Errorf("remove executor network firewall: %w", err)
	}
	return nil
}
