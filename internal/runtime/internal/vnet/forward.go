package vnet

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds how long a forward waits for its target to accept.
const dialTimeout = 10 * time.Second

// forwarder relays every TCP connection accepted on a listener to a target
// address, copying both ways, until it is closed.
type forwarder struct {
	ln     net.Listener
	target string
	logger *slog.Logger
	ctx    context.Context // canceled by close; this is the forwarder's own lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startForwarder serves ln until close is called.
func startForwarder(ln net.Listener, target string, logger *slog.Logger) *forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &forwarder{ln: ln, target: target, logger: logger, ctx: ctx, cancel: cancel, conns: make(map[net.Conn]struct{})}
	f.wg.Add(1)
	go f.serve()
	return f
}

func (f *forwarder) serve() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Temporary trouble such as running out of file descriptors:
			// back off rather than spin or give up on the forward.
			f.logger.Warn("accept forwarded connection", "listen", f.ln.Addr().String(), "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-f.ctx.Done():
				return
			}
			continue
		}
		if !f.track(c) {
			return
		}
		f.wg.Add(1)
		go f.relay(c)
	}
}

func (f *forwarder) relay(in net.Conn) {
	defer f.wg.Done()
	defer f.untrack(in)
	d := net.Dialer{Timeout: dialTimeout}
	out, err := d.DialContext(f.ctx, "tcp", f.target)
	if err != nil {
		f.logger.Warn("dial forward target", "target", f.target, "err", err)
		return
	}
	if !f.track(out) {
		return
	}
	defer f.untrack(out)
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(out, in)
	}()
	pipe(in, out)
	<-done
}

// pipe copies src to dst, then passes the end of the stream on with a half
// close so that the other direction can finish; on an error it closes both
// connections, which ends the other direction too.
func pipe(dst, src net.Conn) {
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	dst.Close()
}

// track records c so that close can end it; it closes c and returns false
// when the forwarder is already closed.
func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	c.Close()
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

// close stops accepting, ends every relayed connection and waits for the
// forwarder's goroutines to return.
func (f *forwarder) close() {
	f.cancel()
	f.ln.Close()
	f.mu.Lock()
	f.closed = true
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}
