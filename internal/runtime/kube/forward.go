package kube

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// A Pod reaches its forwards on Hangar's own address (Config.ForwardAddr),
// at the forward's ListenPort: one relay listens there per port for every
// executor, and hands each connection to the forward of the Pod it comes
// from, told by its source address (docs/kubernetes.md, "Forwards").

// unknownSourceWait bounds how long a relay holds a connection from an
// address no forward is registered for: the app may dial its database
// before the informer reported its Pod's IP. The connection is then closed
// unanswered.
const unknownSourceWait = 2 * time.Second

// relays are the process's relays by listen address: drivers in one
// process (tests, or two prefixes) share them, as they share the port.
var relays = struct {
	sync.Mutex
	m map[string]*relay
}{m: make(map[string]*relay)}

// relay is a listener on ForwardAddr:port that relays each connection to
// the target registered for its source IP.
type relay struct {
	key    string // its address in relays
	ln     net.Listener
	logger *slog.Logger

	mu      sync.Mutex
	refs    int
	targets map[string]route // by source IP
	changed chan struct{}    // closed and replaced when targets change
}

// route is where one Pod's connections go, and whose forward it is.
type route struct {
	target string
	hold   <-chan struct{} // runtime.Forward.Hold
	owner  *forwards
}

// acquireRelay returns the relay on addr, listening on it first if it is
// the first forward there.
func acquireRelay(addr string, logger *slog.Logger) (*relay, error) {
	relays.Lock()
	defer relays.Unlock()
	if r := relays.m[addr]; r != nil {
		r.mu.Lock()
		r.refs++
		r.mu.Unlock()
		return r, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, hangar.Errorf(hangar.KindUnavailable, "forward relay: %v", err)
	}
	r := &relay{key: addr, ln: ln, logger: logger, refs: 1, targets: make(map[string]route), changed: make(chan struct{})}
	relays.m[addr] = r
	go r.serve()
	return r, nil
}

// release drops one reference; the last closes the listener.
func (r *relay) release() {
	relays.Lock()
	defer relays.Unlock()
	r.mu.Lock()
	r.refs--
	last := r.refs == 0
	r.mu.Unlock()
	if last {
		delete(relays.m, r.key)
		r.ln.Close()
	}
}

// set registers rt for source IP ip: a Pod that now has the IP of a
// deleted one takes its place.
func (r *relay) set(ip string, rt route) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.targets[ip] = rt
	close(r.changed)
	r.changed = make(chan struct{})
}

// unset removes the route of ip, if it is still owner's.
func (r *relay) unset(ip string, owner *forwards) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.targets[ip].owner == owner {
		delete(r.targets, ip)
	}
}

// lookup returns the route of source IP ip, waiting up to
// unknownSourceWait for it to be registered.
func (r *relay) lookup(ip string) route {
	deadline := time.NewTimer(unknownSourceWait)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		rt, ch := r.targets[ip], r.changed
		r.mu.Unlock()
		if rt.target != "" {
			return rt
		}
		select {
		case <-ch:
		case <-deadline.C:
			return route{}
		}
	}
}

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		go r.handle(c)
	}
}

func (r *relay) handle(c net.Conn) {
	defer c.Close()
	src, _, _ := net.SplitHostPort(c.RemoteAddr().String())
	rt := r.lookup(src)
	target := rt.target
	if target == "" {
		r.logger.Warn("forward: connection from an address with no forward here, closed", "from", src, "on", r.ln.Addr().String())
		return
	}
	if rt.hold != nil {
		t := time.NewTimer(holdLimit)
		defer t.Stop()
		select {
		case <-rt.hold:
		case <-rt.owner.closed:
			return
		case <-t.C:
			return
		}
		select {
		case <-rt.owner.closed: // both were ready: a stopped executor never dials
			return
		default:
		}
	}
	up, err := net.DialTimeout("tcp", target, 10*time.Second)
	if err != nil {
		r.logger.Warn("forward: dial target", "from", src, "target", target, "err", err)
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		io.Copy(up, c)
		up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	io.Copy(c, up)
	c.(*net.TCPConn).CloseWrite()
	<-done
}

// holdLimit bounds how long a connection waits for its forward's Hold.
const holdLimit = 10 * time.Second

// forwards are one executor's registrations on the relays.
type forwards struct {
	ip      string
	targets map[*relay]runtime.Forward
	closed  chan struct{} // closed by close: held connections end
}

// openForwards acquires the relays of spec's forwards on host; register
// then routes the Pod's connections.
func openForwards(host string, fs []runtime.Forward, logger *slog.Logger) (*forwards, error) {
	f := &forwards{targets: make(map[*relay]runtime.Forward, len(fs)), closed: make(chan struct{})}
	for _, fw := range fs {
		if _, _, err := net.SplitHostPort(fw.Target); err != nil {
			f.close()
			return nil, hangar.Errorf(hangar.KindInvalid, "forward to %q: %v", fw.Target, err)
		}
		r, err := acquireRelay(net.JoinHostPort(host, strconv.Itoa(fw.ListenPort)), logger)
		if err != nil {
			f.close()
			return nil, err
		}
		f.targets[r] = fw
	}
	return f, nil
}

// register routes connections from ip to the forwards' targets once the
// Pod's IP is known; a Pod keeps its IP, so later calls change nothing.
// Its caller serializes calls with close.
func (f *forwards) register(ip string) {
	if f == nil || ip == "" || f.ip != "" || f.targets == nil {
		return
	}
	f.ip = ip
	for r, fw := range f.targets {
		r.set(ip, route{target: fw.Target, hold: fw.Hold, owner: f})
	}
}

// close removes the registrations, ends held connections and releases
// the relays.
func (f *forwards) close() {
	if f == nil || f.targets == nil {
		return
	}
	close(f.closed)
	for r := range f.targets {
		if f.ip != "" {
			r.unset(f.ip, f)
		}
		r.release()
	}
	f.targets = nil
}

// forwardAddr returns the address Pods reach Hangar at when cfg names
// none: Hangar's own address on its route to the API server (in a
// cluster, its Pod IP). A loopback address is no use to Pods: "".
func forwardAddr(ctx context.Context, apiURL string) string {
	u, err := url.Parse(apiURL)
	if err != nil || u.Hostname() == "" {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = "443"
	}
	c, err := (&net.Dialer{}).DialContext(ctx, "udp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return ""
	}
	defer c.Close()
	ip := c.LocalAddr().(*net.UDPAddr).IP
	if ip.IsLoopback() {
		return ""
	}
	return ip.String()
}
