package router

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// The raw path's bodies: relayed from the executor's buffered reader to the
// client's buffered writer, flushed whenever the executor makes the router
// wait.

// fill makes at least one byte of the body available in c.br, flushing w
// first when nothing is, so that what came reaches the client while the
// executor works on the rest.
func (c *conn) fill(w *bufio.Writer) error {
	if c.br.Buffered() > 0 {
		return nil
	}
	if w.Buffered() > 0 {
		if err := w.Flush(); err != nil {
			return err
		}
	}
	_, err := c.br.Peek(1)
	return err
}

// copyN relays n bytes of body.
func (c *conn) copyN(w *bufio.Writer, n int64) error {
	for n > 0 {
		if err := c.fill(w); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		b, _ := c.br.Peek(int(min(n, int64(c.br.Buffered()))))
		if _, err := w.Write(b); err != nil {
			return err
		}
		c.br.Discard(len(b))
		n -= int64(len(b))
	}
	return nil
}

// maxBodyLineBytes bounds a line of a chunked body: a chunk's size line
// (net/http takes 4 KiB) or a trailer (streamed to the client line by line,
// so only a line at a time is held).
const maxBodyLineBytes = 64 << 10

// copyChunks relays a chunked body as it is, chunk by chunk, its trailers
// included.
func (c *conn) copyChunks(w *bufio.Writer) error {
	for {
		if err := c.fill(w); err != nil {
			return err
		}
		line, err := c.readLine(maxBodyLineBytes)
		if err != nil {
			return err
		}
		size := line
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		n, ok := parseUint(bytes.TrimRight(size, " \t"), 16)
		if !ok {
			return fmt.Errorf("bad chunk size %q", truncate(line))
		}
		if n == 0 {
			w.WriteString("0\r\n")
			for {
				line, err := c.readLine(maxBodyLineBytes)
				if err != nil {
					return err
				}
				if _, _, ok := splitHeader(line); len(line) > 0 && !ok {
					return fmt.Errorf("malformed trailer %q", truncate(line))
				}
				w.Write(line)
				if _, err := w.WriteString("\r\n"); err != nil || len(line) == 0 {
					return err
				}
			}
		}
		w.Write(strconv.AppendInt(c.scratch[:0], n, 16))
		w.WriteString("\r\n")
		if err := c.copyN(w, n); err != nil {
			return err
		}
		if err := c.fill(w); err != nil {
			return err
		}
		if line, err := c.readLine(maxBodyLineBytes); err != nil || len(line) != 0 {
			return fmt.Errorf("chunk not followed by CRLF: %v", err)
		}
		w.WriteString("\r\n")
	}
}

// copyUntilEOF relays a body that ends when the executor closes the
// connection, as chunks.
func (c *conn) copyUntilEOF(w *bufio.Writer) error {
	for {
		err := c.fill(w)
		if err == io.EOF {
			_, err = w.WriteString("0\r\n\r\n")
			return err
		}
		if err != nil {
			return err
		}
		b, _ := c.br.Peek(c.br.Buffered())
		w.Write(strconv.AppendInt(c.scratch[:0], int64(len(b)), 16))
		w.WriteString("\r\n")
		w.Write(b)
		if _, err := w.WriteString("\r\n"); err != nil {
			return err
		}
		c.br.Discard(len(b))
	}
}
