// Package upload decodes the deploy request body of the official DBOS Cloud
// CLI, {"application_archive": "<base64 zip>"} or {"previous_version": …},
// without holding the archive in memory: the base64 text is decoded as it
// streams in, written to a caller's writer and hashed on the way. A body
// may approach 667 MB (a 500 MB zip), so encoding/json, which buffers a
// whole value, cannot be used for it.
//
// It is a leaf: it imports only the standard library and internal/hangar.
// The API's deploy handlers use it.
package upload

import (
	"bufio"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Keys of the deploy body.
const (
	keyArchive         = "application_archive"
	keyPreviousVersion = "previous_version"
	keyTargetDatabase  = "target_database_name"
)

// MaxValueBytes bounds the raw JSON text of every value other than the
// archive, and of every key.
const MaxValueBytes = 64 << 10

// Request is a decoded deploy body.
type Request struct {
	// PreviousVersion is the version to redeploy ("" when absent or null).
	PreviousVersion string
	// TargetDatabaseName is the database instance to move to
	// (changedbinstance only; "" when absent or null).
	TargetDatabaseName string
	// HasArchive reports whether application_archive was a string (possibly
	// empty); it is false when the key is absent or null.
	HasArchive bool
	// ArchiveBytes is the decoded size of the archive written out.
	ArchiveBytes int64
	// ArchiveSHA256 is the lower-case hex SHA-256 of the decoded archive, or
	// "" without one.
	ArchiveSHA256 string
}

// Decode reads a deploy body from r: one JSON object whose
// application_archive string is base64-decoded as it streams and written to
// archive while its SHA-256 is computed. Other values are decoded normally,
// each bounded by MaxValueBytes; unknown keys are ignored. maxArchive bounds
// the decoded archive size (≤ 0: no bound). Decode does not judge which keys
// a deploy needs; the caller does.
//
// Errors: KindInvalid for malformed JSON or base64, or a truncated body;
// KindTooLarge naming the limit when the archive or another value is too
// large. Errors reading r or writing archive are returned wrapped, as
// internal errors. On error, archive may hold part of the data.
func Decode(r io.Reader, archive io.Writer, maxArchive int64) (Request, error) {
	d := &decoder{br: bufio.NewReaderSize(r, 64<<10)}
	req, err := d.object(archive, maxArchive)
	if err != nil {
		return Request{}, err
	}
	return req, nil
}

// decoder scans one top-level JSON object. off counts the bytes consumed,
// for error messages.
type decoder struct {
	br  *bufio.Reader
	off int64
}

func (d *decoder) object(archive io.Writer, maxArchive int64) (Request, error) {
	var req Request
	c, err := d.nonSpace()
	if err != nil {
		return req, err
	}
	if c != '{' {
		return req, d.invalidf("expected a JSON object")
	}
	seen := make(map[string]bool) // known keys only, so it stays small
	for first := true; ; first = false {
		c, err := d.nonSpace()
		if err != nil {
			return req, err
		}
		if c == '}' && first {
			break
		}
		if c != '"' {
			return req, d.invalidf("expected a quoted key")
		}
		key, err := d.key()
		if err != nil {
			return req, err
		}
		switch key {
		case keyArchive, keyPreviousVersion, keyTargetDatabase:
			if seen[key] {
				return req, d.invalidf("duplicate key %q", key)
			}
			seen[key] = true
		}
		if c, err = d.nonSpace(); err != nil {
			return req, err
		}
		if c != ':' {
			return req, d.invalidf("expected ':' after key %q", key)
		}
		if key == keyArchive {
			if err := d.archive(&req, archive, maxArchive); err != nil {
				return req, err
			}
		} else if err := d.value(&req, key); err != nil {
			return req, err
		}
		if c, err = d.nonSpace(); err != nil {
			return req, err
		}
		if c == '}' {
			break
		}
		if c != ',' {
			return req, d.invalidf("expected ',' or '}' after the value of %q", key)
		}
	}
	// Only whitespace may follow the object.
	for {
		c, err := d.br.ReadByte()
		switch {
		case err == io.EOF:
			return req, nil
		case err != nil:
			return req, d.readErr(err)
		case c != ' ' && c != '\t' && c != '\n' && c != '\r':
			return req, d.invalidf("unexpected data after the JSON object")
		}
		d.off++
	}
}

// key reads a key after its opening quote and unescapes it.
func (d *decoder) key() (string, error) {
	raw := []byte{'"'}
	escaped := false
	for {
		c, err := d.byte()
		if err != nil {
			return "", err
		}
		raw = append(raw, c)
		if len(raw) > MaxValueBytes {
			return "", tooLarge("a key", MaxValueBytes)
		}
		if escaped {
			escaped = false
		} else if c == '\\' {
			escaped = true
		} else if c == '"' {
			break
		}
	}
	var key string
	if err := json.Unmarshal(raw, &key); err != nil {
		return "", d.invalidf("malformed key")
	}
	return key, nil
}

// value reads a non-archive value and stores the ones Request holds.
func (d *decoder) value(req *Request, key string) error {
	raw, err := d.rawValue(key)
	if err != nil {
		return err
	}
	var dst *string
	switch key {
	case keyPreviousVersion:
		dst = &req.PreviousVersion
	case keyTargetDatabase:
		dst = &req.TargetDatabaseName
	default:
		if !json.Valid(raw) {
			return d.invalidf("malformed JSON in the value of %q", key)
		}
		return nil
	}
	var s *string
	if err := json.Unmarshal(raw, &s); err != nil {
		if !json.Valid(raw) {
			return d.invalidf("malformed JSON in the value of %q", key)
		}
		return hangar.Errorf(hangar.KindInvalid, "invalid deploy request: %s must be a string", key)
	}
	if s != nil {
		*dst = *s
	}
	return nil
}

// rawValue captures the text of one JSON value, following strings, escapes
// and nesting just enough to find where it ends; json.Unmarshal validates
// it afterwards.
func (d *decoder) rawValue(key string) ([]byte, error) {
	c, err := d.nonSpace()
	if err != nil {
		return nil, err
	}
	switch c {
	case ',', '}', ']', ':':
		d.unread()
		return nil, d.invalidf("missing value for key %q", key)
	}
	raw := []byte{c}
	scalar := c != '"' && c != '{' && c != '['
	depth := 0
	if c == '{' || c == '[' {
		depth = 1
	}
	inString, escaped := c == '"', false
	for !(depth == 0 && !inString) || scalar {
		c, err := d.byte()
		if err != nil {
			return nil, err
		}
		if scalar {
			// A number or literal ends at the first delimiter.
			switch c {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				d.unread()
				return raw, nil
			}
		}
		raw = append(raw, c)
		if len(raw) > MaxValueBytes {
			return nil, tooLarge(fmt.Sprintf("the value of %q", key), MaxValueBytes)
		}
		switch {
		case inString && escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case inString && c == '"':
			inString = false
		case inString:
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			depth++
		case c == '}' || c == ']':
			depth--
		}
	}
	return raw, nil
}

// archive streams the application_archive value into w.
func (d *decoder) archive(req *Request, w io.Writer, max int64) error {
	c, err := d.nonSpace()
	if err != nil {
		return err
	}
	if c == 'n' {
		d.unread()
		raw, err := d.rawValue(keyArchive)
		if err != nil {
			return err
		}
		if string(raw) != "null" {
			return d.invalidf("malformed JSON in the value of %q", keyArchive)
		}
		return nil
	}
	if c != '"' {
		return hangar.Errorf(hangar.KindInvalid, "invalid deploy request: %s must be a base64 string", keyArchive)
	}
	sr := &stringReader{d: d}
	dec := base64.NewDecoder(base64.StdEncoding, sr)
	lw := &limitWriter{w: w, h: sha256.New(), max: max}
	_, err = io.CopyBuffer(lw, dec, make([]byte, 48<<10))
	var corrupt base64.CorruptInputError
	switch {
	case sr.err != nil && sr.err != io.EOF:
		// The body failed under the base64 decoder: truncated, a bad
		// escape, or a read error.
		return sr.err
	case lw.err != nil:
		return lw.err
	case errors.As(err, &corrupt):
		return hangar.Errorf(hangar.KindInvalid, "invalid deploy request: %s is not valid base64", keyArchive)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return hangar.Errorf(hangar.KindInvalid, "invalid deploy request: %s is not valid base64 (its length is not a multiple of 4)", keyArchive)
	case err != nil:
		return fmt.Errorf("decode %s: %w", keyArchive, err)
	}
	req.HasArchive = true
	req.ArchiveBytes = lw.n
	req.ArchiveSHA256 = hex.EncodeToString(lw.h.Sum(nil))
	return nil
}

// special marks the bytes a JSON string's fast path stops at: the closing
// quote, an escape, a control character (invalid in JSON strings) and the
// base64 padding character, after which only more padding may come.
var special = func() (t [256]bool) {
	for c := 0; c < 0x20; c++ {
		t[c] = true
	}
	t['"'], t['\\'], t['='] = true, true, true
	return t
}()

// limitWriter writes to w and h until max bytes, then fails without
// writing the excess.
type limitWriter struct {
	w   io.Writer
	h   hash.Hash
	n   int64
	max int64
	err error
}

func (l *limitWriter) Write(p []byte) (int, error) {
	if l.max > 0 && l.n+int64(len(p)) > l.max {
		l.err = tooLarge("the application archive", l.max)
		return 0, l.err
	}
	if _, err := l.w.Write(p); err != nil {
		l.err = fmt.Errorf("write archive: %w", err)
		return 0, l.err
	}
	l.h.Write(p)
	l.n += int64(len(p))
	return len(p), nil
}

// byte reads one byte; the end of the body is an invalid request.
func (d *decoder) byte() (byte, error) {
	c, err := d.br.ReadByte()
	if err != nil {
		return 0, d.readErr(err)
	}
	d.off++
	return c, nil
}

func (d *decoder) unread() {
	_ = d.br.UnreadByte()
	d.off--
}

func (d *decoder) discard(n int) {
	_, _ = d.br.Discard(n)
	d.off += int64(n)
}

// nonSpace returns the next byte that is not JSON whitespace.
func (d *decoder) nonSpace() (byte, error) {
	for {
		c, err := d.byte()
		if err != nil {
			return 0, err
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		return c, nil
	}
}

// readErr turns the end of the body (or a body cut short, which net/http
// reports as io.ErrUnexpectedEOF) into an invalid-request error; other read
// errors stay internal.
func (d *decoder) readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return hangar.Errorf(hangar.KindInvalid, "invalid deploy request: unexpected end of body after %d bytes", d.off)
	}
	return fmt.Errorf("read deploy request: %w", err)
}

func (d *decoder) invalidf(format string, args ...any) error {
	return hangar.Errorf(hangar.KindInvalid, "invalid deploy request: %s at byte %d", fmt.Sprintf(format, args...), d.off)
}

func tooLarge(what string, limit int64) error {
	return hangar.Errorf(hangar.KindTooLarge, "%s exceeds the size limit of %s", what, size(limit))
}

// size formats a byte count for messages: "500 MiB", "64 KiB" or "1234 bytes".
func size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
