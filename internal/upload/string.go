package upload

import "io"

// The JSON string reader the decoder streams the archive through.

// stringReader reads the content of a JSON string whose opening quote is
// consumed, unescaping it, and reports io.EOF at the closing quote. Runs
// without escapes are copied straight from the bufio buffer. It also rejects
// text after base64 padding, which base64.NewDecoder would accept when the
// padding falls at the end of one of its internal chunks.
type stringReader struct {
	d       *decoder
	padding bool
	err     error // sticky; io.EOF after the closing quote
}

func (s *stringReader) Read(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := 0
	for n < len(p) {
		if n > 0 && s.d.br.Buffered() == 0 {
			return n, nil // don't block while holding data
		}
		buf, err := s.d.br.Peek(1)
		if err != nil {
			s.err = s.d.readErr(err)
			return n, s.err
		}
		buf, _ = s.d.br.Peek(s.d.br.Buffered())
		i := 0
		for i < len(buf) && n+i < len(p) && !special[buf[i]] {
			i++
		}
		if i > 0 {
			if s.padding {
				s.err = s.d.invalidf("%s is not valid base64 (data after padding)", keyArchive)
				return n, s.err
			}
			copy(p[n:], buf[:i])
			s.d.discard(i)
			n += i
			continue
		}
		c, _ := s.d.byte() // buffered, cannot fail
		switch {
		case c == '"':
			s.err = io.EOF
			if n > 0 {
				return n, nil
			}
			return 0, io.EOF
		case c == '\\':
			if c, err = s.escape(); err != nil {
				s.err = err
				return n, err
			}
		case c < 0x20:
			s.err = s.d.invalidf("control character in a string")
			return n, s.err
		}
		switch {
		case c == '=':
			s.padding = true
		case s.padding && c != '\n' && c != '\r':
			s.err = s.d.invalidf("%s is not valid base64 (data after padding)", keyArchive)
			return n, s.err
		}
		p[n] = c
		n++
	}
	return n, nil
}

// escape decodes the escape sequence after a backslash. Only ASCII can be
// base64, so a \u escape beyond it is an error here rather than later.
func (s *stringReader) escape() (byte, error) {
	c, err := s.d.byte()
	if err != nil {
		return 0, err
	}
	switch c {
	case '"', '\\', '/':
		return c, nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		var r rune
		for range 4 {
			h, err := s.d.byte()
			if err != nil {
				return 0, err
			}
			v, ok := unhex(h)
			if !ok {
				return 0, s.d.invalidf("malformed \\u escape in a string")
			}
			r = r<<4 | v
		}
		if r >= 0x80 {
			return 0, s.d.invalidf("%s is not valid base64 (non-ASCII character)", keyArchive)
		}
		return byte(r), nil
	}
	return 0, s.d.invalidf("malformed escape \\%c in a string", c)
}

func unhex(c byte) (rune, bool) {
	switch {
	case '0' <= c && c <= '9':
		return rune(c - '0'), true
	case 'a' <= c && c <= 'f':
		return rune(c - 'a' + 10), true
	case 'A' <= c && c <= 'F':
		return rune(c - 'A' + 10), true
	}
	return 0, false
}
