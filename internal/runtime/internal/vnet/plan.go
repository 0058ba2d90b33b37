package vnet

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// This file holds the pure parts of the package: names, addressing and the
// plans of ip commands, so that they are tested without root.

// peerIf is the name of the executor's end of its veth pair, inside its
// namespace.
const peerIf = "eth0"

// HostIf returns the name of the host end of namespace ns's veth pair. It is
// derived from ns so that Cleanup finds it without recorded state; 48 bits
// of hash keep it unique across instances within the 15-byte limit.
func HostIf(ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return "hgh" + hex.EncodeToString(sum[:6])
}

// slot is one /30 of the pool: .0 network, .1 host (gateway), .2 executor.
type slot struct{ base netip.Addr }

func (s slot) gateway() netip.Addr { return s.base.Next() }
func (s slot) address() netip.Addr { return s.base.Next().Next() }

// parseSubnet validates the pool: IPv4 with room for at least one /30.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("subnet %q: %w", s, err)
	}
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Prefix{}, fmt.Errorf("subnet %q: want an IPv4 prefix of /30 or larger", s)
	}
	return p.Masked(), nil
}

func addrToUint(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func uintToAddr(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// freeSlot returns the lowest /30 of pool that overlaps no IPv4 network in
// addrs, the output of `ip -o -4 addr show` on the host. Every prepared
// executor, of any Hangar instance, holds its gateway address on the host, so
// the host's addresses are the allocation table.
func freeSlot(pool netip.Prefix, addrs []byte) (slot, bool) {
	var used []netip.Prefix
	sc := bufio.NewScanner(bytes.NewReader(addrs))
	for sc.Scan() {
		// "4: hgh0123456789ab    inet 10.213.0.1/30 scope global hgh0123456789ab ..."
		f := strings.Fields(sc.Text())
		if len(f) < 4 || f[2] != "inet" {
			continue
		}
		if p, err := netip.ParsePrefix(f[3]); err == nil && p.Overlaps(pool) {
			used = append(used, p)
		}
	}
	first := addrToUint(pool.Addr())
	n := uint64(1) << (32 - pool.Bits()) / 4
next:
	for i := range n {
		s := netip.PrefixFrom(uintToAddr(first+uint32(i*4)), 30)
		for _, p := range used {
			if p.Overlaps(s) {
				continue next
			}
		}
		return slot{base: s.Addr()}, true
	}
	return slot{}, false
}

// claimPlan lists the ip commands that create namespace ns and its veth
// pair, and claim slot s by putting its gateway address on the host end.
// They run under the host-wide allocation lock.
func claimPlan(ns string, s slot) [][]string {
	host := HostIf(ns)
	return [][]string{
		{"netns", "add", ns},
		{"link", "add", host, "type", "veth", "peer", "name", peerIf, "netns", ns},
		{"addr", "add", s.gateway().String() + "/30", "dev", host},
	}
}

// configurePlan lists the ip commands that finish the network claimPlan
// started: links up, the executor's address, its default route.
func configurePlan(ns string, s slot) [][]string {
	return [][]string{
		{"link", "set", HostIf(ns), "up"},
		{"-n", ns, "link", "set", "lo", "up"},
		{"-n", ns, "addr", "add", s.address().String() + "/30", "dev", peerIf},
		{"-n", ns, "link", "set", peerIf, "up"},
		{"-n", ns, "route", "add", "default", "via", s.gateway().String()},
	}
}

// teardownPlan lists the ip commands that remove what claimPlan created.
// Deleting the host end first removes the pair at once; the kernel would
// otherwise drop it only after the namespace's last process is gone.
func teardownPlan(ns string) [][]string {
	return [][]string{
		{"link", "del", HostIf(ns)},
		{"netns", "del", ns},
	}
}

// ExecArgs returns the argv of ip that runs command inside namespace ns.
func ExecArgs(ns string, command []string) []string {
	return append([]string{"netns", "exec", ns}, command...)
}

// ParseNetnsList returns the names in `ip netns list` output ("name (id: 3)").
func ParseNetnsList(out []byte) []string {
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

// parsePIDs parses `ip netns pids` output, one PID a line.
func parsePIDs(out []byte) ([]int, error) {
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse pid %q: %w", f, err)
		}
		pids = append(pids, pid)
	}
	return pids, nil
}

// IPError is a failed ip command with its stderr.
type IPError struct {
	Args   []string
	Stderr string
	Err    error
}

func (e *IPError) Error() string {
	return fmt.Sprintf("ip %s: %v: %s", strings.Join(e.Args, " "), e.Err, e.Stderr)
}

func (e *IPError) Unwrap() error { return e.Err }

// IsNotExist reports whether err is ip's complaint that the device or
// namespace to act on does not exist, which teardown treats as done.
func IsNotExist(err error) bool {
	var ie *IPError
	if !errors.As(err, &ie) {
		return false
	}
	return strings.Contains(ie.Stderr, "Cannot find device") ||
		strings.Contains(ie.Stderr, "No such file or directory")
}
