package frontdoor

import (
	"net"
	"net/netip"
	"sync"
)

// LimitPerIP returns ln with at most cfg.MaxConnsPerIP connections open
// from each client IP address: Accept closes a connection over the cap at
// once, before its TLS handshake, and goes on accepting. So one client
// cannot take all of the server's connections (and their goroutines and
// buffers), however slowly it sends.
func LimitPerIP(ln net.Listener, cfg Config) net.Listener {
	return NewPerIP(cfg.withDefaults().MaxConnsPerIP).Limit(ln, nil)
}

// PerIP counts the connections open from each client IP address across
// the listeners it limits, under one cap: the public database ports share
// one, so that a client cannot take the host's connections by spreading
// them over many ports.
type PerIP struct {
	max  int // negative: no cap
	mu   sync.Mutex
	open map[netip.Addr]int // connections open per client IP; no entry when none
}

// NewPerIP returns a PerIP that allows max connections per client IP
// address; negative means no cap.
func NewPerIP(max int) *PerIP { return &PerIP{max: max, open: map[netip.Addr]int{}} }

// Limit returns ln under p's cap: Accept closes a connection over it at
// once and goes on accepting. Connections from addresses for which exempt
// reports true (nil: none) are not counted.
func (p *PerIP) Limit(ln net.Listener, exempt func(netip.Addr) bool) net.Listener {
	if p.max < 0 {
		return ln
	}
	return &limitListener{Listener: ln, p: p, exempt: exempt}
}

type limitListener struct {
	net.Listener
	p      *PerIP
	exempt func(netip.Addr) bool
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c)
		if l.exempt != nil && l.exempt(ip) {
			return c, nil
		}
		if l.p.acquire(ip) {
			return &countedConn{Conn: c, release: func() { l.p.release(ip) }}, nil
		}
		c.Close()
	}
}

func (p *PerIP) acquire(ip netip.Addr) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[ip] >= p.max {
		return false
	}
	p.open[ip]++
	return true
}

func (p *PerIP) release(ip netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open[ip]--; p.open[ip] <= 0 {
		delete(p.open, ip)
	}
}

// clientIP returns the IP address c comes from; IPv4-mapped IPv6 addresses
// count as the IPv4 address they map.
func clientIP(c net.Conn) netip.Addr {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		return a.AddrPort().Addr().Unmap()
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap.Addr().Unmap()
}

// countedConn releases its place under the cap when closed, once however
// often Close is called (the TLS layer and the server may both close it).
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes the connection when the underlying one can (TCP),
// so that relays keep working on a counted connection.
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return c.Close()
}
