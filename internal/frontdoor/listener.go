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
	cfg = cfg.withDefaults()
	if cfg.MaxConnsPerIP < 0 {
		return ln
	}
	return &limitListener{Listener: ln, max: cfg.MaxConnsPerIP, open: map[netip.Addr]int{}}
}

type limitListener struct {
	net.Listener
	max  int
	mu   sync.Mutex
	open map[netip.Addr]int // connections open per client IP; no entry when none
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := clientIP(c)
		if l.acquire(ip) {
			return &countedConn{Conn: c, release: func() { l.release(ip) }}, nil
		}
		c.Close()
	}
}

func (l *limitListener) acquire(ip netip.Addr) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip] >= l.max {
		return false
	}
	l.open[ip]++
	return true
}

func (l *limitListener) release(ip netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open[ip]--; l.open[ip] <= 0 {
		delete(l.open, ip)
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
