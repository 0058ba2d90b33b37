package vnet

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/hangar-oss/hangar/internal/relay"
)

// This file builds and removes executor networks through netlink, and
// their named namespaces as `ip netns add` and `ip netns del` do.

// hostPrefixes returns the networks of the host's IPv4 addresses.
func hostPrefixes() ([]netip.Prefix, error) {
	var addrs []netlink.Addr
	var err error
	// A dump that raced with a change may be incomplete: take another.
	for range 5 {
		if addrs, err = netlink.AddrList(nil, netlink.FAMILY_V4); !errors.Is(err, netlink.ErrDumpInterrupted) {
			break
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]netip.Prefix, 0, len(addrs))
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP.To4())
		bits, _ := a.Mask.Size()
		if ok {
			out = append(out, netip.PrefixFrom(ip, bits))
		}
	}
	return out, nil
}

// ipNet converts p for netlink.
func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// createNS creates the named network namespace ns. /run/netns is made a
// shared mount first, as ip does: the unmount of a namespace then reaches
// the mount namespaces that copied it (each `ip netns exec` makes one),
// which would otherwise keep it alive.
func createNS(ns string) error {
	if err := shareNSDir(); err != nil {
		return err
	}
	// Creating a namespace switches the calling thread into it; a thread
	// of its own keeps that from every other goroutine.
	return relay.InThread(func() error {
		h, err := netns.NewNamed(ns)
		if err != nil {
			return err
		}
		h.Close()
		// Links made from now on, the executor's end of its veth pair,
		// have no IPv6: the executor gets none, so nothing reaches the
		// host or beyond over it. Loopback keeps ::1.
		return ipv6Off("default")
	})
}

// shareNSDir makes nsDir a mount point with shared propagation.
func shareNSDir() error {
	if err := os.MkdirAll(nsDir, 0o755); err != nil {
		return err
	}
	err := syscall.Mount("", nsDir, "none", syscall.MS_SHARED|syscall.MS_REC, "")
	if errors.Is(err, syscall.EINVAL) { // not a mount point yet
		if err = syscall.Mount(nsDir, nsDir, "none", syscall.MS_BIND|syscall.MS_REC, ""); err == nil {
			err = syscall.Mount("", nsDir, "none", syscall.MS_SHARED|syscall.MS_REC, "")
		}
	}
	if err != nil {
		return fmt.Errorf("make %s a shared mount: %w", nsDir, err)
	}
	return nil
}

// removeNS removes the named network namespace ns; the kernel frees it
// once no process or open file holds it. One already gone, or half made
// (the file without the mount), is fine.
func removeNS(ns string) error {
	path := Path(ns)
	err := syscall.Unmount(path, syscall.MNT_DETACH)
	if err != nil && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.ENOENT) {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// nsPIDs lists the processes in namespace ns, as `ip netns pids` does;
// none when ns does not exist.
func nsPIDs(ns string) ([]int, error) {
	var want syscall.Stat_t
	if err := syscall.Stat(Path(ns), &want); err != nil {
		if errors.Is(err, syscall.ENOENT) {
			return nil, nil
		}
		return nil, err
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		// A process that exits meanwhile fails the stat; it needs no kill.
		if syscall.Stat("/proc/"+e.Name()+"/ns/net", &st) == nil && st.Dev == want.Dev && st.Ino == want.Ino {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// addVeth creates the veth pair of namespace ns, its peer inside ns, and
// puts s's gateway address on the host end, which claims s.
func addVeth(ns string, s slot) error {
	h, err := netns.GetFromPath(Path(ns))
	if err != nil {
		return err
	}
	defer h.Close()
	attrs := netlink.NewLinkAttrs()
	attrs.Name = HostIf(ns)
	veth := &netlink.Veth{LinkAttrs: attrs, PeerName: peerIf, PeerNamespace: netlink.NsFd(h), PeerTxQLen: -1}
	if err := netlink.LinkAdd(veth); err != nil {
		return err
	}
	if err := netlink.AddrAdd(veth, &netlink.Addr{IPNet: ipNet(s.gateway())}); err != nil {
		return fmt.Errorf("add address %s: %w", s.gateway(), err)
	}
	return nil
}

// configure finishes the network addVeth started: both ends up, loopback
// up, the executor's address and its default route. Inside the namespace
// it works through a netlink socket opened there, so no thread of ours
// switches namespace.
func configure(ns string, s slot) error {
	host, err := netlink.LinkByName(HostIf(ns))
	if err != nil {
		return err
	}
	if err := ipv6Off(HostIf(ns)); err != nil {
		return fmt.Errorf("turn IPv6 off on %s: %w", HostIf(ns), err)
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return fmt.Errorf("set %s up: %w", HostIf(ns), err)
	}
	nsh, err := netns.GetFromPath(Path(ns))
	if err != nil {
		return err
	}
	defer nsh.Close()
	h, err := netlink.NewHandleAt(nsh, syscall.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("open netlink in the namespace: %w", err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := h.LinkSetUp(lo); err != nil {
		return fmt.Errorf("set lo up: %w", err)
	}
	peer, err := h.LinkByName(peerIf)
	if err != nil {
		return err
	}
	if err := h.AddrAdd(peer, &netlink.Addr{IPNet: ipNet(s.address())}); err != nil {
		return fmt.Errorf("add address %s: %w", s.address(), err)
	}
	if err := h.LinkSetUp(peer); err != nil {
		return fmt.Errorf("set %s up: %w", peerIf, err)
	}
	if err := h.RouteAdd(&netlink.Route{LinkIndex: peer.Attrs().Index, Gw: s.gateway().Addr().AsSlice()}); err != nil {
		return fmt.Errorf("add default route via %s: %w", s.gateway().Addr(), err)
	}
	return nil
}

// removeLink deletes link name; one already gone is fine.
func removeLink(name string) error {
	link, err := netlink.LinkByName(name)
	if _, ok := errors.AsType[netlink.LinkNotFoundError](err); ok {
		return nil
	}
	if err != nil {
		return err
	}
	if err := netlink.LinkDel(link); err != nil && !errors.Is(err, syscall.ENODEV) {
		return err
	}
	return nil
}

// uplinks returns the links of the host's IPv4 default routes.
func uplinks() ([]string, error) {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		return nil, err
	}
	var idx []int
	for _, r := range routes {
		if r.Dst != nil {
			if ones, _ := r.Dst.Mask.Size(); ones != 0 {
				continue
			}
		}
		idx = append(idx, r.LinkIndex)
		for _, nh := range r.MultiPath {
			idx = append(idx, nh.LinkIndex)
		}
	}
	var names []string
	for _, i := range idx {
		if i == 0 {
			continue
		}
		link, err := netlink.LinkByIndex(i)
		if err != nil {
			return nil, err
		}
		if !slices.Contains(names, link.Attrs().Name) {
			names = append(names, link.Attrs().Name)
		}
	}
	return names, nil
}
