// Package vnet builds the network of an executor: a named network namespace
// joined to the host by a veth pair on a /30 of its own, plus the TCP
// forwards that let the executor reach chosen host services on its gateway
// address and nothing else through it. The executor drivers share it: netns
// runs the app inside the namespace with `ip netns exec`, sandbox has runc
// join it by path. Only drivers under internal/runtime import it.
package vnet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

const (
	// LockPath is the host-wide allocation lock. It is not configurable:
	// every Hangar instance on the host, whatever its driver, must use the
	// same file.
	LockPath = "/run/hangar-netns.lock"
	// teardownTimeout bounds the ip commands that release a namespace; they
	// run even when the caller's context is done, or they would leak.
	teardownTimeout = 30 * time.Second
)

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
}

var prefixRE = regexp.MustCompile(`^[a-z0-9]{1,16}$`)

// Runner runs ip with args and returns its stdout; failures are *IPError.
// It is the seam that lets tests check the plan of ip commands without root.
type Runner func(ctx context.Context, args ...string) ([]byte, error)

// ExecIP returns the Runner that runs the ip binary at path.
func ExecIP(path string) Runner {
	return func(ctx context.Context, args ...string) ([]byte, error) {
		var stdout, stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			return nil, &IPError{Args: args, Stderr: string(bytes.TrimSpace(stderr.Bytes())), Err: err}
		}
		return stdout.Bytes(), nil
	}
}

// Pool allocates executor networks. It keeps no state of its own: the
// host's addresses and namespaces are the allocation table, so it is safe
// for concurrent use and survives restarts.
type Pool struct {
	prefix   string
	subnet   netip.Prefix
	ip       Runner
	lockPath string
}

// New returns a pool that runs ip commands through ip and takes the
// allocation lock at lockPath. Its errors are KindInvalid.
func New(cfg Config, ip Runner, lockPath string) (*Pool, error) {
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
	return &Pool{prefix: cfg.Prefix, subnet: subnet, ip: ip, lockPath: lockPath}, nil
}

// Prefix returns the pool's name prefix.
func (p *Pool) Prefix() string { return p.prefix }

// Name returns the namespace name of executor id.
func (p *Pool) Name(id string) string { return p.prefix + "-" + id }

// Path returns the file that holds namespace ns open, which runc and setns
// accept.
func Path(ns string) string { return "/var/run/netns/" + ns }

// Setup allocates a /30 and builds namespace ns on it. The allocation runs
// under the host-wide lock, so that no other instance takes the same /30
// meanwhile; the lock is held only until the /30 is claimed. On failure the
// caller must call Teardown.
func (p *Pool) Setup(ctx context.Context, ns string) (runtime.Network, error) {
	s, err := p.claim(ctx, ns)
	if err != nil {
		return runtime.Network{}, err
	}
	for _, args := range configurePlan(ns, s) {
		if _, err := p.ip(ctx, args...); err != nil {
			return runtime.Network{}, err
		}
	}
	return runtime.Network{Gateway: s.gateway().String(), Address: s.address().String()}, nil
}

func (p *Pool) claim(ctx context.Context, ns string) (slot, error) {
	unlock, err := lockHost(p.lockPath)
	if err != nil {
		return slot{}, err
	}
	defer unlock()
	addrs, err := p.ip(ctx, "-o", "-4", "addr", "show")
	if err != nil {
		return slot{}, err
	}
	s, ok := freeSlot(p.subnet, addrs)
	if !ok {
		return slot{}, hangar.Errorf(hangar.KindUnavailable, "no free executor network left in %s", p.subnet)
	}
	for _, args := range claimPlan(ns, s) {
		if _, err := p.ip(ctx, args...); err != nil {
			return slot{}, err
		}
	}
	return s, nil
}

// KillAll kills every process left in namespace ns, such as descendants
// that left the executor's process group; while one lives, the namespace
// does.
func (p *Pool) KillAll(ctx context.Context, ns string) error {
	out, err := p.ip(ctx, "netns", "pids", ns)
	if IsNotExist(err) {
		return nil
	}
	if err != nil {
		return err
	}
	pids, err := parsePIDs(out)
	if err != nil {
		return err
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
// pair. Parts already gone count as removed, so Teardown can be repeated. It
// runs to the end even when ctx is done.
func (p *Pool) Teardown(ctx context.Context, ns string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), teardownTimeout)
	defer cancel()
	if err := p.KillAll(ctx, ns); err != nil {
		return err
	}
	for _, args := range teardownPlan(ns) {
		if _, err := p.ip(ctx, args...); err != nil && !IsNotExist(err) {
			return err
		}
	}
	return nil
}

// Leftovers lists the host's namespaces named with the pool's prefix.
func (p *Pool) Leftovers(ctx context.Context) ([]string, error) {
	out, err := p.ip(ctx, "netns", "list")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, ns := range ParseNetnsList(out) {
		if strings.HasPrefix(ns, p.prefix+"-") {
			names = append(names, ns)
		}
	}
	return names, nil
}

// Forwards are the running TCP relays of one executor.
type Forwards struct{ fs []*forwarder }

// Forward starts a relay for each forward of an executor whose namespace is
// ns and whose gateway is gateway. Each listens on the gateway bound to the
// host end of ns's veth pair, so only that executor reaches it. The relays
// run until Close.
func Forward(ctx context.Context, ns, gateway string, forwards []runtime.Forward, logger *slog.Logger) (*Forwards, error) {
	f := &Forwards{}
	for _, fw := range forwards {
		addr := net.JoinHostPort(gateway, strconv.Itoa(fw.ListenPort))
		ln, err := listenDevice(ctx, HostIf(ns), addr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("forward %s: %w", addr, err)
		}
		f.fs = append(f.fs, startForwarder(ln, fw.Target, logger))
	}
	return f, nil
}

// Len returns the number of relays.
func (f *Forwards) Len() int {
	if f == nil {
		return 0
	}
	return len(f.fs)
}

// Close stops the relays and ends their connections. A nil *Forwards is
// fine.
func (f *Forwards) Close() {
	if f == nil {
		return
	}
	for _, fw := range f.fs {
		fw.close()
	}
	f.fs = nil
}
