package frontdoor

import (
	"bufio"
	"crypto/tls"
	"io"
	"sync"
)

// The buffers connections read requests and write responses through:
// taken from pools for a request, so that an idle connection holds none.

// awaitRequest waits for the next request to begin, holding no read
// buffer while nothing is buffered (awaitByte).
func (c *http1Conn) awaitRequest() error {
	if c.br != nil && c.br.Buffered() > 0 {
		return nil // pipelined
	}
	return awaitByte(c.tc, &c.br, &readers, &c.in)
}

// awaitByte waits for the next byte from tc without a read buffer: it
// puts *br (if any) back in pool, reads one byte alone into in (crypto/tls
// keeps the rest of its record, which the socket no longer shows), and
// takes a buffer from pool again that reads in's byte first. *br is set
// on error too.
func awaitByte(tc *tls.Conn, br **bufio.Reader, pool *sync.Pool, in *firstByte) (err error) {
	if *br != nil {
		(*br).Reset(nil)
		pool.Put(*br)
	}
	*in = firstByte{tc: tc}
	for in.n == 0 && err == nil {
		in.n, err = tc.Read(in.b[:])
	}
	*br = pool.Get().(*bufio.Reader)
	(*br).Reset(in)
	return err
}

// firstByte reads the byte awaitByte read, then the connection.
type firstByte struct {
	tc *tls.Conn
	b  [1]byte
	n  int // of b, not yet read
}

func (f *firstByte) Read(p []byte) (int, error) {
	if f.n == 0 || len(p) == 0 {
		return f.tc.Read(p)
	}
	p[0], f.n = f.b[0], 0
	return 1, nil
}

// readers and writers hold the 8 KiB buffers connections read requests
// and write responses through, h2Readers the HTTP/2 connections' read
// buffers: a connection waiting for its next request holds none (2,000
// idle HTTP/1.1 connections held 32 MiB of them).
var (
	readers   = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, http1ReadBuffer) }}
	writers   = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
	h2Readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, h2ReadBuffer) }}
)

func getWriter(w io.Writer) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(w)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}
