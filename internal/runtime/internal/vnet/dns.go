package vnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/relay"
)

const (
	// maxQueries bounds the UDP queries one executor has in flight; more
	// are dropped, as a busy resolver does, so that no executor takes the
	// host's resolvers (or Hangar's goroutines) from the others.
	maxQueries = 64
	// queryTimeout bounds how long a query waits for one upstream resolver
	// before it tries the next.
	queryTimeout = 2 * time.Second
	// dnsHeaderLen is the size of a DNS message's fixed header.
	dnsHeaderLen = 12
)

// resolver answers one executor's DNS queries on its gateway, port 53, by
// passing them to the host's resolvers, so that executors resolve names as
// the host does without reaching the host's resolvers, which often sit at
// private or loopback addresses. UDP queries go to each upstream in turn
// until one answers; TCP connections are relayed to the first. It forwards
// messages as they are: the executor may ask anything the host may.
type resolver struct {
	pc        net.PacketConn
	tcp       *relay.Server
	upstreams []string
	logger    *slog.Logger
	ctx       context.Context // canceled by close; the resolver's own lifetime
	cancel    context.CancelFunc
	slots     chan struct{} // one per query in flight
	wg        sync.WaitGroup
}

// startResolver listens on gateway:53 over UDP and TCP, bound to dev, and
// serves until close.
func startResolver(ctx context.Context, dev, gateway string, upstreams []string, logger *slog.Logger) (*resolver, error) {
	addr := net.JoinHostPort(gateway, "53")
	pc, err := listenPacketDevice(ctx, dev, addr)
	if err != nil {
		return nil, fmt.Errorf("resolver on %s: %w", addr, err)
	}
	ln, err := listenDevice(ctx, dev, addr)
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("resolver on %s: %w", addr, err)
	}
	rctx, cancel := context.WithCancel(context.Background())
	r := &resolver{
		pc: pc, tcp: relay.Start([]net.Listener{ln}, relay.To(upstreams[0], logger), logger), upstreams: upstreams, logger: logger,
		ctx: rctx, cancel: cancel, slots: make(chan struct{}, maxQueries),
	}
	r.wg.Add(1)
	go r.serve()
	return r, nil
}

func (r *resolver) serve() {
	defer r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := r.pc.ReadFrom(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // a transient error of one datagram
		}
		// Only queries (QR bit clear) are forwarded; anything else is
		// dropped, like a query beyond maxQueries.
		if n < dnsHeaderLen || buf[2]&0x80 != 0 {
			continue
		}
		select {
		case r.slots <- struct{}{}:
		default:
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.slots }()
			if a := r.ask(q); a != nil {
				r.pc.WriteTo(a, from)
			}
		}()
	}
}

// ask sends query q to each upstream in turn and returns the first answer,
// or nil when none answered.
func (r *resolver) ask(q []byte) []byte {
	buf := make([]byte, 65535)
	for _, up := range r.upstreams {
		if a := r.askOne(up, q, buf); a != nil {
			return a
		}
		if r.ctx.Err() != nil {
			return nil
		}
	}
	return nil
}

func (r *resolver) askOne(upstream string, q, buf []byte) []byte {
	var d net.Dialer
	c, err := d.DialContext(r.ctx, "udp", upstream)
	if err != nil {
		return nil
	}
	defer c.Close()
	stop := context.AfterFunc(r.ctx, func() { c.Close() })
	defer stop()
	c.SetDeadline(time.Now().Add(queryTimeout))
	if _, err := c.Write(q); err != nil {
		return nil
	}
	for {
		n, err := c.Read(buf)
		if err != nil {
			r.logger.Debug("DNS upstream", "upstream", upstream, "err", err)
			return nil
		}
		// A connected socket takes datagrams from upstream only; the ID
		// must still match, or it answers an earlier query.
		if n >= dnsHeaderLen && buf[0] == q[0] && buf[1] == q[1] {
			return append([]byte(nil), buf[:n]...)
		}
	}
}

// close stops the resolver and waits for its queries to end.
func (r *resolver) close() {
	r.cancel()
	r.pc.Close()
	r.tcp.Close()
	r.wg.Wait()
}

// Nameservers reads the nameservers of a resolv.conf, as "ip:53".
func Nameservers(rd io.Reader) []string {
	var out []string
	sc := bufio.NewScanner(rd)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		if a, err := netip.ParseAddr(f[1]); err == nil {
			out = append(out, net.JoinHostPort(a.String(), "53"))
		}
	}
	return out
}

// upstreamAddrs normalizes resolver addresses to "ip:port", port 53 unless
// given.
func upstreamAddrs(ss []string) ([]string, error) {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		if ap, err := netip.ParseAddrPort(s); err == nil {
			out = append(out, ap.String())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("egress resolver %q: want an IP address, optionally with a port", s)
		}
		out = append(out, net.JoinHostPort(a.String(), "53"))
	}
	return out, nil
}

// ResolvConf returns the resolv.conf of an executor whose gateway is
// gateway: its resolver is there.
func ResolvConf(gateway string) string {
	return "# The executor's resolver, on its gateway, asks the host's.\nnameserver " + gateway + "\noptions timeout:2 attempts:2\n"
}
