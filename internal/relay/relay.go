// Package relay relays TCP connections between the host and network
// namespaces: Start serves listeners by copying each accepted connection
// both ways to one its dial function opens, and DialIn (Linux) connects
// from inside another process's network namespace. Executors' gateway
// services (runtime/internal/vnet) and the ports of sandboxed database
// instances (dbinstance, pgcluster) use it. It is a leaf: it imports
// nothing internal.
package relay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// DialTimeout bounds how long a relay waits for its dial function.
const DialTimeout = 10 * time.Second

// Dial opens the connection that in is relayed to. It may read from in
// first (to choose a target) and write what it read to the connection it
// returns. On an error in is closed: the client sees a closed connection.
type Dial func(ctx context.Context, in net.Conn) (net.Conn, error)

// Server relays the connections accepted on its listeners until Close.
type Server struct {
	lns  []net.Listener
	dial Dial
	log  *slog.Logger

	ctx    context.Context // canceled by Close: the server's own lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{} // nil once closed
}

// Start serves lns with dial until Close; log receives accept errors.
func Start(lns []net.Listener, dial Dial, log *slog.Logger) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{lns: lns, dial: dial, log: log, ctx: ctx, cancel: cancel, conns: map[net.Conn]struct{}{}}
	for _, ln := range lns {
		s.wg.Go(func() { s.serve(ln) })
	}
	return s
}

// To returns a Dial to the TCP address target that logs its failures.
func To(target string, log *slog.Logger) Dial {
	return func(ctx context.Context, _ net.Conn) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		if err != nil {
			log.Warn("dial forward target", "target", target, "err", err)
		}
		return c, err
	}
}

// Held returns a Dial that waits until hold is closed, then dials with
// dial. A nil hold waits for nothing. The wait counts in DialTimeout, and
// ends with the Server.
func Held(hold <-chan struct{}, dial Dial) Dial {
	if hold == nil {
		return dial
	}
	return func(ctx context.Context, in net.Conn) (net.Conn, error) {
		select {
		case <-hold:
			// Both may be ready: a closed relay never dials.
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return dial(ctx, in)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// Addr is the address of the first listener.
func (s *Server) Addr() net.Addr { return s.lns[0].Addr() }

func (s *Server) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Temporary trouble such as running out of file descriptors:
			// back off rather than spin or give up.
			s.log.Warn("accept relayed connection", "listen", ln.Addr().String(), "err", err)
			select {
			case <-time.After(100 * time.Millisecond):
			case <-s.ctx.Done():
				return
			}
			continue
		}
		if !s.track(c) {
			return
		}
		s.wg.Go(func() { s.relay(c) })
	}
}

func (s *Server) relay(in net.Conn) {
	defer s.untrack(in)
	ctx, cancel := context.WithTimeout(s.ctx, DialTimeout)
	out, err := s.dial(ctx, in)
	cancel()
	if out != nil {
		if !s.track(out) {
			return
		}
		defer s.untrack(out)
	}
	if err != nil {
		return
	}
	Pipe(in, out)
}

// Pipe copies a to b and b to a until both directions end, passing the
// end of each stream on with a half close; an error in one direction
// closes both connections, which ends the other.
func Pipe(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, a)
	}()
	pipe(a, b)
	<-done
}

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

// track records c so that Close can end it; it closes c and returns false
// when the server is already closed.
func (s *Server) track(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conns == nil {
		c.Close()
		return false
	}
	s.conns[c] = struct{}{}
	return true
}

func (s *Server) untrack(c net.Conn) {
	c.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, c)
}

// Close stops accepting, ends every relayed connection and waits for the
// server's goroutines to return.
func (s *Server) Close() {
	s.cancel()
	for _, ln := range s.lns {
		ln.Close()
	}
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
	s.wg.Wait()
}
