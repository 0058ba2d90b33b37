// Package vnet builds the network of an executor: a named network namespace
// joined to the host by a veth pair on a /30 of its own; a firewall that
// keeps it off the host and other executors and applies the egress policy
// to what it sends beyond the host, through NAT; and on its gateway a DNS
// resolver and the TCP relays that let it reach chosen host services. Any
// sandbox that joins such a namespace (executors of either driver, builds)
// gets all of it. It speaks netlink to the kernel; the
// namespaces are the ones `ip netns` knows (bind mounts under /run/netns),
// since the drivers share them: netns runs the app inside the namespace with
// `ip netns exec`, sandbox has runc join it by path. Only drivers under
// internal/runtime import it.
package vnet

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/relay"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// LockPath is the host-wide allocation lock. It is not configurable: every
// Hangar instance on the host, whatever its driver, must use the same file.
const LockPath = "/run/hangar-netns.lock"

// Config configures a Pool.
type Config struct {
	// Subnet is the IPv4 pool from which each executor gets a /30; the host
	// end is the first address, the executor the second. Default
	// "10.213.0.0/16" (16384 executors).
	Subnet string
	// Prefix names this instance's namespaces "<Prefix>-<executor ID>".
	// Leftovers lists every namespace with this prefix, so instances that
	// share a host need distinct prefixes. 1 to 16 characters of a-z and
	// 0-9. Default "hg".
	Prefix string
	// Egress is the policy for what executors reach beyond the host and
	// where their DNS queries go. Default runtime.Egress's zero value.
	Egress runtime.Egress
}

var prefixRE = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// Pool allocates executor networks. It keeps no state of its own: the
// host's addresses and namespaces are the allocation table, so it is safe
// for concurrent use and survives restarts.
type Pool struct {
	prefix    string
	subnet    netip.Prefix
	lockPath  string
	nft       NFT
	policy    policy
	resolvers []string
}

// New returns a pool that takes the allocation lock at lockPath and
// installs firewalls with nft. Its errors are KindInvalid.
func New(cfg Config, lockPath string, nft NFT) (*Pool, error) {
	if cfg.Subnet == "" {
		cfg.Subnet = "10.213.0.0/16"
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "hg"
	}
	subnet, err := parseSubnet(cfg.Subnet)
	if err != nil {
		return nil, hangar.Errorf(hangar.KindInvalid, "executor network: %v", err)
	}
	if !prefixRE.MatchString(cfg.Prefix) {
		return nil, hangar.Errorf(hangar.KindInvalid, "executor network: prefix %q: use 1 to 16 characters of a-z and 0-9", cfg.Prefix)
	}
	pol, err := parsePolicy(cfg.Egress, subnet)
	if err != nil {
		return nil, hangar.Errorf(hangar.KindInvalid, "executor network: %v", err)
	}
	resolvers := cfg.Egress.Resolvers
	if len(resolvers) == 0 {
		if resolvers, err = hostNameservers(); err != nil {
			return nil, hangar.Errorf(hangar.KindInvalid, "executor network: %v", err)
		}
	}
	upstreams, err := upstreamAddrs(resolvers)
	if err != nil {
		return nil, hangar.Errorf(hangar.KindInvalid, "executor network: %v", err)
	}
	return &Pool{prefix: cfg.Prefix, subnet: subnet, lockPath: lockPath, nft: nft, policy: pol, resolvers: upstreams}, nil
}

// hostNameservers returns the nameservers of the host's /etc/resolv.conf,
// or the one the C library then assumes, 127.0.0.1.
func hostNameservers() ([]string, error) {
	f, err := os.Open("/etc/resolv.conf")
	if errors.Is(err, fs.ErrNotExist) {
		return []string{"127.0.0.1"}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ns := Nameservers(f)
	if len(ns) == 0 {
		ns = []string{"127.0.0.1"}
	}
	return ns, nil
}

// Prefix returns the pool's name prefix.
func (p *Pool) Prefix() string { return p.prefix }

// Name returns the namespace name of executor id.
func (p *Pool) Name(id string) string { return p.prefix + "-" + id }

// Setup allocates a /30 and builds namespace ns on it, without its
// firewall: until Forward installs it (one nft run per executor, not two)
// and turns forwarding on, a process in ns would reach the host's own
// services through the veth pair, though nothing beyond. Callers start
// nothing in ns before Forward returned. The allocation runs under the host-wide lock, so that no other
// instance takes the same /30 meanwhile; the lock is held only until the
// /30 is claimed. On failure the caller must call Teardown.
func (p *Pool) Setup(ctx context.Context, ns string) (runtime.Network, error) {
	s, err := p.claim(ns)
	if err != nil {
		return runtime.Network{}, err
	}
	if err := configure(ns, s); err != nil {
		return runtime.Network{}, fmt.Errorf("configure network namespace %s: %w", ns, err)
	}
	gateway := s.gateway().Addr().String()
	// `ip netns exec` binds this over /etc/resolv.conf.
	conf := filepath.Join(etcDir(ns), "resolv.conf")
	if err := os.MkdirAll(etcDir(ns), 0o755); err != nil {
		return runtime.Network{}, fmt.Errorf("write %s: %w", conf, err)
	}
	if err := os.WriteFile(conf, []byte(ResolvConf(gateway)), 0o644); err != nil {
		return runtime.Network{}, fmt.Errorf("write %s: %w", conf, err)
	}
	return runtime.Network{Gateway: gateway, Address: s.address().Addr().String()}, nil
}

// openUplinks turns IPv4 forwarding on for the host's uplinks devs (the
// links of its default routes) where it is off, so that replies reach
// executors, after recording each in the host table, which keeps the host
// from routing anything else through it. See uplinkRules.
func (p *Pool) openUplinks(ctx context.Context, devs []string) error {
	for _, dev := range devs {
		on, err := forwarding(dev)
		if err != nil {
			return fmt.Errorf("read forwarding of %s: %w", dev, err)
		}
		if on {
			continue
		}
		if err := p.nft(ctx, uplinkRules(dev)); err != nil {
			return fmt.Errorf("restrict forwarding from uplink %s: %w", dev, err)
		}
		if err := setSysctl("ipv4/conf/"+dev+"/forwarding", "1"); err != nil {
			return fmt.Errorf("turn forwarding on for uplink %s: %w", dev, err)
		}
	}
	return nil
}

// claim creates namespace ns and its veth pair, and claims a free /30 by
// putting its gateway address on the host end.
func (p *Pool) claim(ns string) (slot, error) {
	unlock, err := lockHost(p.lockPath)
	if err != nil {
		return slot{}, err
	}
	defer unlock()
	used, err := hostPrefixes()
	if err != nil {
		return slot{}, fmt.Errorf("list host addresses: %w", err)
	}
	s, ok := freeSlot(p.subnet, used)
	if !ok {
		return slot{}, hangar.Errorf(hangar.KindUnavailable, "no free executor network left in %s", p.subnet)
	}
	if err := createNS(ns); err != nil {
		return slot{}, fmt.Errorf("create network namespace %s: %w", ns, err)
	}
	if err := addVeth(ns, s); err != nil {
		return slot{}, fmt.Errorf("create veth pair %s: %w", HostIf(ns), err)
	}
	return s, nil
}

// KillAll kills every process left in namespace ns, such as descendants
// that left the executor's process group; while one lives, the namespace
// does. A namespace that does not exist has none.
func (p *Pool) KillAll(_ context.Context, ns string) error {
	pids, err := nsPIDs(ns)
	if err != nil {
		return fmt.Errorf("list processes of network namespace %s: %w", ns, err)
	}
	var errs []error
	for _, pid := range pids {
		if err := killPID(pid); err != nil {
			errs = append(errs, fmt.Errorf("kill %d: %w", pid, err))
		}
	}
	return errors.Join(errs...)
}

// Teardown kills what is left in namespace ns and removes it with its veth
// pair and firewall. Parts already gone count as removed, so Teardown can
// be repeated.
// Deleting the host end first removes the pair at once; the kernel would
// otherwise drop it only after the namespace's last process is gone.
func (p *Pool) Teardown(ctx context.Context, ns string) error {
	if err := p.KillAll(ctx, ns); err != nil {
		return err
	}
	if err := removeLink(HostIf(ns)); err != nil {
		return fmt.Errorf("remove veth pair %s: %w", HostIf(ns), err)
	}
	if err := removeFirewall(context.WithoutCancel(ctx), p.nft, ns); err != nil {
		return err
	}
	if err := os.RemoveAll(etcDir(ns)); err != nil {
		return fmt.Errorf("remove network namespace %s: %w", ns, err)
	}
	// The namespace goes last: Leftovers finds what is left by it.
	if err := removeNS(ns); err != nil {
		return fmt.Errorf("remove network namespace %s: %w", ns, err)
	}
	return nil
}

// Leftovers lists the host's namespaces named with the pool's prefix.
func (p *Pool) Leftovers(context.Context) ([]string, error) {
	ents, err := os.ReadDir(nsDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list network namespaces: %w", err)
	}
	var names []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), p.prefix+"-") {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Forwards are the services on one executor's gateway: its DNS resolver
// and its TCP relays.
type Forwards struct {
	dns *resolver
	fs  []*relay.Server
}

// Forward starts the services on the gateway of the executor whose
// namespace is ns: the DNS resolver, and a relay for each forward. Each
// listens on the gateway bound to the host end of ns's veth pair, so only
// that executor reaches it, and the firewall opens to the relays' ports.
// They run until Close. A sandbox without forwards calls it too: without
// the resolver it resolves no names.
func (p *Pool) Forward(ctx context.Context, ns, gateway string, forwards []runtime.Forward, logger *slog.Logger) (*Forwards, error) {
	dns, err := startResolver(ctx, HostIf(ns), gateway, p.resolvers, logger)
	if err != nil {
		return nil, err
	}
	f := &Forwards{dns: dns}
	ports := make([]int, len(forwards))
	for i, fw := range forwards {
		addr := net.JoinHostPort(gateway, strconv.Itoa(fw.ListenPort))
		ln, err := listenDevice(ctx, HostIf(ns), addr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("forward %s: %w", addr, err)
		}
		f.fs = append(f.fs, relay.Start([]net.Listener{ln}, relay.Held(fw.Hold, relay.To(fw.Target, logger)), logger))
		ports[i] = fw.ListenPort
	}
	if err := p.secure(ctx, ns, gateway, ports); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// secure installs the firewall of namespace ns, open to the relays on
// ports, then turns IPv4 forwarding on for the host end of its veth pair
// and, where it is off, for the host's uplinks.
func (p *Pool) secure(ctx context.Context, ns, gateway string, ports []int) error {
	if err := p.nft(ctx, firewallRules(ns, gateway, ports, p.policy)); err != nil {
		return fmt.Errorf("install executor network firewall: %w", err)
	}
	// Only once the firewall is in place: forwarding on the host end lets
	// the executor's packets leave the host.
	if err := setSysctl("ipv4/conf/"+HostIf(ns)+"/forwarding", "1"); err != nil {
		return fmt.Errorf("turn forwarding on for %s: %w", HostIf(ns), err)
	}
	devs, err := uplinks()
	if err != nil {
		return fmt.Errorf("find the host's uplinks: %w", err)
	}
	return p.openUplinks(ctx, devs)
}

// Len returns the number of relays.
func (f *Forwards) Len() int {
	if f == nil {
		return 0
	}
	return len(f.fs)
}

// Close stops the resolver and the relays and ends their connections. A
// nil *Forwards is fine.
func (f *Forwards) Close() {
	if f == nil {
		return
	}
	if f.dns != nil {
		f.dns.close()
		f.dns = nil
	}
	for _, fw := range f.fs {
		fw.Close()
	}
	f.fs = nil
}
