package frontdoor

// A stream's request: its header block decoded, checked (RFC 9113, 8.2
// and 8.3), and started on the router's raw path or the bridge (h2.go).

import (
	"errors"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

func (h *h2Conn) onHeaders(f *http2.HeadersFrame) error {
	id := f.StreamID
	if id%2 == 0 {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if s := h.streams[id]; s == nil && id <= h.lastID {
		return http2.ConnectionError(http2.ErrCodeStreamClosed)
	} else if s != nil && (s.remoteDone || !f.StreamEnded()) {
		// Trailers end the stream; nothing else may follow its headers.
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	h.blockID, h.blockEnd, h.blockBytes = id, f.StreamEnded(), 0
	h.blockSelf = f.HasPriority() && f.Priority.StreamDep == id
	h.fields, h.fieldsBytes = h.fields[:0], 0
	return h.onFragment(f.HeaderBlockFragment(), f.HeadersEnded())
}

// onFragment decodes a piece of the header block; at its end it starts
// the stream (or ends it, for trailers). A block larger than the header
// cap ends the connection: the decoder's table is shared, so the rest of
// it cannot be skipped, and a block that never ends (CONTINUATION flood,
// CVE-2024-27316) must not be read for as long as the client sends.
func (h *h2Conn) onFragment(frag []byte, end bool) error {
	if h.blockBytes += len(frag); h.blockBytes > h.s.cfg.MaxHeaderBytes+4096 {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	if _, err := h.dec.Write(frag); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return nil
	}
	if err := h.dec.Close(); err != nil {
		return http2.ConnectionError(http2.ErrCodeCompression)
	}
	id := h.blockID
	if s := h.streams[id]; s != nil && h.blockSelf {
		h.reset(s, http2.ErrCodeProtocol)
		return nil
	} else if s != nil {
		// Trailers of a request body: its end.
		s.remoteDone = true
		if s.body != nil {
			s.body.end(h.fields)
		}
		h.closeIfDone(s)
		return nil
	}
	h.lastID = id
	switch {
	case h.goaway || len(h.streams) >= h2MaxStreams:
		h.rstStream(id, http2.ErrCodeRefusedStream)
		return nil
	case h.blockSelf:
		h.rstStream(id, http2.ErrCodeProtocol)
		return nil
	case h.fieldsBytes > h.s.cfg.MaxHeaderBytes:
		h.respond(id, 431, h.blockEnd)
		return nil
	}
	r, ok := parseRequest(h.fields)
	if !ok {
		h.rstStream(id, http2.ErrCodeProtocol)
		return nil
	}
	if r.method == "CONNECT" {
		h.respond(id, 405, h.blockEnd)
		return nil
	}
	if len(h.streams) == 0 && !h.c.state.CompareAndSwap(stateIdle, stateActive) {
		return errClosing // closed by Shutdown
	}
	s := &h2Stream{h: h, id: id, sendWindow: h.peerWindow, recvWindow: h2StreamWindow, remoteDone: h.blockEnd}
	h.streams[id] = s
	h.activeAt = time.Now()
	if h.blockEnd && h.fast(s, &r) {
		h.startFast(s)
		return nil
	}
	return h.bridge(s, &r)
}

var errClosing = errors.New("server closing")

// emit receives the decoded fields of the header block being read,
// keeping those within the header cap.
func (h *h2Conn) emit(f hpack.HeaderField) {
	if h.fieldsBytes += int(f.Size()); h.fieldsBytes <= h.s.cfg.MaxHeaderBytes {
		h.fields = append(h.fields, f)
	}
}

// respond answers stream id with an empty response of status from the
// connection itself, and stops a body that would follow.
func (h *h2Conn) respond(id uint32, status int, ended bool) {
	h.enc.WriteField(hpack.HeaderField{Name: ":status", Value: strconv.Itoa(status)})
	h.writeBlock(id, true)
	if !ended {
		h.rstStream(id, http2.ErrCodeNo)
	}
}

// h2Request is a request's pseudo-header fields and its other fields.
type h2Request struct {
	method, scheme, authority, path string
	fields                          []hpack.HeaderField
	contentLength                   int64 // -1: none given
}

// parseRequest checks a request's header block (RFC 9113, 8.2 and 8.3):
// pseudo-header fields first, each once, the three a request needs; names
// in lowercase; no fields of HTTP/1.1's connection; valid values.
func parseRequest(fields []hpack.HeaderField) (r h2Request, ok bool) {
	r.contentLength = -1
	regular := false
	for i, f := range fields {
		if f.IsPseudo() {
			var p *string
			switch f.Name {
			case ":method":
				p = &r.method
			case ":scheme":
				p = &r.scheme
			case ":authority":
				p = &r.authority
			case ":path":
				p = &r.path
			default:
				return r, false
			}
			if regular || *p != "" || f.Value == "" {
				return r, false
			}
			*p = f.Value
			continue
		}
		if !regular {
			regular = true
			r.fields = fields[i:]
		}
		if !httpguts.ValidHeaderFieldName(f.Name) || !httpguts.ValidHeaderFieldValue(f.Value) || hasUpper(f.Name) {
			return r, false
		}
		switch f.Name {
		case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
			return r, false
		case "te":
			if f.Value != "trailers" {
				return r, false
			}
		case "content-length":
			n, err := strconv.ParseInt(f.Value, 10, 64)
			if err != nil || n < 0 || r.contentLength >= 0 && n != r.contentLength {
				return r, false
			}
			r.contentLength = n
		}
	}
	if r.method == "CONNECT" {
		return r, r.scheme == "" && r.path == "" && r.authority != ""
	}
	return r, r.method != "" && r.scheme != "" && r.path != ""
}

func hasUpper(s string) bool {
	for i := range len(s) {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// host returns the request's host: :authority, else the Host field.
func (r *h2Request) host() string {
	if r.authority != "" {
		return r.authority
	}
	for _, f := range r.fields {
		if f.Name == "host" {
			return f.Value
		}
	}
	return ""
}

// fast prepares s for the router's raw path, when the request allows it:
// a method without a body, a plain path, an app's host. It writes the
// HTTP/1.1 request head for the executor (the fields the HTTP/1.1 loop
// keeps, cookies in one field, X-Forwarded-* set).
func (h *h2Conn) fast(s *h2Stream, r *h2Request) bool {
	switch r.method {
	case "GET", "OPTIONS", "TRACE":
	case "HEAD":
		s.isHead = true
	default:
		return false
	}
	host := r.host()
	if r.contentLength >= 0 || r.path[0] != '/' || !validHost([]byte(host)) {
		return false
	}
	for i := range len(r.path) {
		if b := r.path[i]; b <= ' ' || b >= 0x7f {
			return false
		}
	}
	s.host = canonicalHost(s.host[:0], []byte(host))
	if !h.s.proxy.Routes(s.host) {
		return false
	}
	out := append(append(append(append(s.req[:0], r.method...), ' '), r.path...), " HTTP/1.1\r\n"...)
	cookies := 0
	for _, f := range r.fields {
		switch f.Name {
		case "host", "te", "trailer", "proxy-authorization", "proxy-authenticate",
			"x-forwarded-for", "x-forwarded-host", "x-forwarded-proto", "forwarded":
			continue
		case "cookie":
			if cookies++; cookies > 1 {
				continue
			}
			out = append(out, "cookie: "...)
			n := 0
			for _, c := range r.fields {
				if c.Name == "cookie" {
					if n++; n > 1 {
						out = append(out, "; "...)
					}
					out = append(out, c.Value...)
				}
			}
			out = append(out, "\r\n"...)
			continue
		}
		out = append(append(append(append(out, f.Name...), ": "...), f.Value...), "\r\n"...)
	}
	out = append(append(append(out, "Host: "...), host...), "\r\n"...)
	if len(h.c.ip) > 0 {
		out = append(append(append(out, "X-Forwarded-For: "...), h.c.ip...), "\r\n"...)
	}
	s.req = append(append(append(out, "X-Forwarded-Host: "...), host...), "\r\nX-Forwarded-Proto: https\r\n\r\n"...)
	return true
}
