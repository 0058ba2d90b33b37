package vnet

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"path/filepath"
)

// This file holds the pure parts of the package, names and addressing, so
// that they are tested without root.

const (
	// nsDir holds the named network namespaces, bind mounts of their nsfs
	// files, where `ip netns` keeps and looks for them.
	nsDir = "/run/netns"
	// etcNetnsDir holds a directory per named namespace whose files
	// `ip netns exec` binds over those of /etc.
	etcNetnsDir = "/etc/netns"
	// peerIf is the name of the executor's end of its veth pair, inside its
	// namespace.
	peerIf = "eth0"
)

// Path returns the file that holds namespace ns open, which runc and setns
// accept.
func Path(ns string) string { return filepath.Join(nsDir, ns) }

// etcDir returns the /etc overlay of namespace ns.
func etcDir(ns string) string { return filepath.Join(etcNetnsDir, ns) }

// HostIf returns the name of the host end of namespace ns's veth pair. It is
// derived from ns so that Cleanup finds it without recorded state; 48 bits
// of hash keep it unique across instances within the 15-byte limit.
func HostIf(ns string) string {
	sum := sha256.Sum256([]byte(ns))
	return "hgh" + hex.EncodeToString(sum[:6])
}

// ExecArgs returns the argv of ip that runs command inside namespace ns.
func ExecArgs(ns string, command []string) []string {
	return append([]string{"netns", "exec", ns}, command...)
}

// slot is one /30 of the pool: .0 network, .1 host (gateway), .2 executor.
type slot struct{ base netip.Addr }

func (s slot) gateway() netip.Prefix { return netip.PrefixFrom(s.base.Next(), 30) }
func (s slot) address() netip.Prefix { return netip.PrefixFrom(s.base.Next().Next(), 30) }

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

// freeSlot returns the lowest /30 of pool that overlaps none of the
// networks of the host's IPv4 addresses, used. Every prepared executor, of
// any Hangar instance, holds its gateway address on the host, so the host's
// addresses are the allocation table.
func freeSlot(pool netip.Prefix, used []netip.Prefix) (slot, bool) {
	var inPool []netip.Prefix
	for _, p := range used {
		if p.Overlaps(pool) {
			inPool = append(inPool, p)
		}
	}
	first := addrToUint(pool.Addr())
	n := uint64(1) << (32 - pool.Bits()) / 4
next:
	for i := range n {
		s := netip.PrefixFrom(uintToAddr(first+uint32(i*4)), 30)
		for _, p := range inPool {
			if p.Overlaps(s) {
				continue next
			}
		}
		return slot{base: s.Addr()}, true
	}
	return slot{}, false
}
