// el: prototype of an epoll-loop TLS reverse proxy (GET, Content-Length
// responses only), to see whether serving ready connections in the
// kernel's order shortens the tail against nginx.
// Command looproto is the prototype behind docs/performance.md, "What an
// event loop does to the tail": run beside bench/router/run.sh's nginx
// (-listen, -upstream an executor, -cert/-key nginx's), with -loops 1.
package main

import (
	"bytes"
	"crypto/tls"
	"errors"
	"flag"
	"log"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
)

var errWouldBlock = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// swConn: net.Conn for tls; goroutine mode until loop != nil.
type swConn struct {
	*net.TCPConn
	fd      int
	inLoop  bool
	pending []byte
	c       *cconn
}

func (s *swConn) Read(p []byte) (int, error) {
	if !s.inLoop {
		return s.TCPConn.Read(p)
	}
	for {
		n, err := syscall.Read(s.fd, p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, errWouldBlock
		case err != nil:
			return 0, err
		case n == 0:
			return 0, errors.New("EOF")
		}
		return n, nil
	}
}

func (s *swConn) Write(p []byte) (int, error) {
	if !s.inLoop {
		return s.TCPConn.Write(p)
	}
	if len(s.pending) > 0 {
		s.pending = append(s.pending, p...)
		return len(p), nil
	}
	w := 0
	for w < len(p) {
		n, err := syscall.Write(s.fd, p[w:])
		if err == syscall.EINTR {
			continue
		}
		if err == syscall.EAGAIN {
			s.pending = append(s.pending, p[w:]...)
			s.c.l.mod(s.fd, true)
			return len(p), nil
		}
		if err != nil {
			return w, err
		}
		w += n
	}
	return len(p), nil
}

type uconn struct {
	fd  int
	buf []byte
	c   *cconn
}

type cconn struct {
	l   *loop
	sw  *swConn
	tc  *tls.Conn
	in  []byte
	out []byte
	up  *uconn
}

type loop struct {
	ep    int
	mu    sync.Mutex
	conns map[int]any
	idle  []*uconn
	ev    []syscall.EpollEvent
}

var upstream = flag.String("upstream", "", "")

func (l *loop) add(fd int, v any) {
	l.mu.Lock()
	l.conns[fd] = v
	l.mu.Unlock()
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | (1 << 31), Fd: int32(fd)}
	if err := syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		log.Fatal(err)
	}
}

func (l *loop) mod(fd int, out bool) {
	e := uint32(syscall.EPOLLIN | syscall.EPOLLRDHUP | (1 << 31))
	if out {
		e |= syscall.EPOLLOUT
	}
	ev := syscall.EpollEvent{Events: e, Fd: int32(fd)}
	syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_MOD, fd, &ev)
}

func (l *loop) del(fd int) {
	syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_DEL, fd, nil)
	l.mu.Lock()
	delete(l.conns, fd)
	l.mu.Unlock()
	syscall.Close(fd)
}

func (l *loop) run() {
	runtime.LockOSThread()
	for {
		n, err := syscall.EpollWait(l.ep, l.ev, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			log.Fatal(err)
		}
		for _, e := range l.ev[:n] {
			l.mu.Lock()
			v := l.conns[int(e.Fd)]
			l.mu.Unlock()
			switch v := v.(type) {
			case *cconn:
				if e.Events&syscall.EPOLLOUT != 0 && len(v.sw.pending) > 0 {
					v.flushPending()
				}
				v.readable()
			case *uconn:
				if v.c != nil {
					v.c.upReadable()
				} else {
					// idle upstream closed or sent junk
					l.dropIdle(v)
				}
			}
		}
	}
}

func (l *loop) dropIdle(u *uconn) {
	for i, x := range l.idle {
		if x == u {
			l.idle = append(l.idle[:i], l.idle[i+1:]...)
			break
		}
	}
	l.del(u.fd)
}

func (c *cconn) flushPending() {
	s := c.sw
	for len(s.pending) > 0 {
		n, err := syscall.Write(s.fd, s.pending)
		if err == syscall.EAGAIN {
			return
		}
		if err != nil {
			c.close()
			return
		}
		s.pending = s.pending[n:]
	}
	s.pending = nil
	c.l.mod(s.fd, false)
}

func (c *cconn) close() {
	if c.up != nil {
		c.l.del(c.up.fd)
		c.up = nil
	}
	c.l.del(c.sw.fd)
}

func (c *cconn) readable() {
	if c.up != nil {
		// mid-request: peek for EOF only would need care; read into in.
	}
	for {
		if cap(c.in)-len(c.in) < 4096 {
			c.in = append(c.in, make([]byte, 8192)...)[:len(c.in)]
		}
		n, err := c.tc.Read(c.in[len(c.in):cap(c.in)])
		c.in = c.in[:len(c.in)+n]
		if err != nil {
			if _, ok := err.(wouldBlock); ok {
				break
			}
			c.close()
			return
		}
	}
	c.next()
}

func (c *cconn) next() {
	if c.up != nil {
		return
	}
	end := bytes.Index(c.in, []byte("\r\n\r\n"))
	if end < 0 {
		return
	}
	head := c.in[:end+2]
	// Rewrite: request line and headers, minus Host, plus forwarded headers.
	out := c.out[:0]
	var host []byte
	for i, line := range bytes.Split(head, []byte("\r\n")) {
		if len(line) == 0 {
			continue
		}
		if i > 0 && len(line) > 5 && bytes.EqualFold(line[:5], []byte("host:")) {
			host = bytes.TrimSpace(line[5:])
			continue
		}
		out = append(append(out, line...), "\r\n"...)
	}
	out = append(append(append(out, "Host: "...), host...), "\r\n"...)
	out = append(out, "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	c.out = out
	c.in = c.in[:copy(c.in, c.in[end+4:])]
	u := c.l.get()
	if u == nil {
		c.close()
		return
	}
	u.c = c
	c.up = u
	if _, err := syscall.Write(u.fd, out); err != nil {
		c.close()
		return
	}
}

func (l *loop) get() *uconn {
	if n := len(l.idle); n > 0 {
		u := l.idle[n-1]
		l.idle = l.idle[:n-1]
		return u
	}
	nc, err := net.Dial("tcp", *upstream)
	if err != nil {
		log.Print(err)
		return nil
	}
	f, _ := nc.(*net.TCPConn).File()
	nc.Close()
	fd := int(f.Fd())
	fd2, _ := syscall.Dup(fd)
	f.Close()
	syscall.SetNonblock(fd2, true)
	u := &uconn{fd: fd2, buf: make([]byte, 0, 16384)}
	l.add(fd2, u)
	return u
}

func (c *cconn) upReadable() {
	u := c.up
	for {
		if cap(u.buf)-len(u.buf) < 4096 {
			u.buf = append(u.buf, make([]byte, 16384)...)[:len(u.buf)]
		}
		n, err := syscall.Read(u.fd, u.buf[len(u.buf):cap(u.buf)])
		if err == syscall.EAGAIN {
			break
		}
		if err != nil || n == 0 {
			c.close()
			return
		}
		u.buf = u.buf[:len(u.buf)+n]
	}
	end := bytes.Index(u.buf, []byte("\r\n\r\n"))
	if end < 0 {
		return
	}
	cl := -1
	for _, line := range bytes.Split(u.buf[:end], []byte("\r\n")) {
		if len(line) > 15 && bytes.EqualFold(line[:15], []byte("content-length:")) {
			cl, _ = strconv.Atoi(string(bytes.TrimSpace(line[15:])))
		}
	}
	if cl < 0 {
		log.Fatal("no content-length")
	}
	total := end + 4 + cl
	if len(u.buf) < total {
		return
	}
	if _, err := c.tc.Write(u.buf[:total]); err != nil {
		c.close()
		return
	}
	u.buf = u.buf[:copy(u.buf, u.buf[total:])]
	u.c = nil
	c.up = nil
	c.l.idle = append(c.l.idle, u)
	c.next()
}

func main() {
	listen := flag.String("listen", "", "")
	cert := flag.String("cert", "", "")
	key := flag.String("key", "", "")
	nloops := flag.Int("loops", runtime.GOMAXPROCS(0), "")
	flag.Parse()
	kp, err := tls.LoadX509KeyPair(*cert, *key)
	if err != nil {
		log.Fatal(err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{kp}, NextProtos: []string{"http/1.1"}}
	var loops []*loop
	for range *nloops {
		ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			log.Fatal(err)
		}
		l := &loop{ep: ep, conns: map[int]any{}, ev: make([]syscall.EpollEvent, 256)}
		loops = append(loops, l)
		go l.run()
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	var rr atomic.Uint64
	for {
		nc, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go func() {
			sw := &swConn{TCPConn: nc.(*net.TCPConn)}
			tc := tls.Server(sw, cfg)
			if err := tc.Handshake(); err != nil {
				nc.Close()
				return
			}
			rc, _ := sw.TCPConn.SyscallConn()
			var fd int
			rc.Control(func(f uintptr) { fd, _ = syscall.Dup(int(f)) })
			sw.TCPConn.Close()
			sw.fd = fd
			sw.inLoop = true
			l := loops[rr.Add(1)%uint64(len(loops))]
			c := &cconn{l: l, sw: sw, tc: tc, in: make([]byte, 0, 8192)}
			sw.c = c
			l.add(fd, c)
		}()
	}
}
