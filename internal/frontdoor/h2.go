package frontdoor

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"math"
	"os"
	"strconv"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/hangar-oss/hangar/internal/evloop"
	"github.com/hangar-oss/hangar/internal/rawconn"
)

// HTTP/2 on the event loop (docs/h2-loop.md). A connection that negotiates
// h2 for an app's host is served by its loop task: the connection's task
// reads frames, answers SETTINGS and PING, keeps the windows, and starts a
// stream per request. A plain request (GET, HEAD, OPTIONS or TRACE without
// a body, for a host the proxy routes) is a task of the same loop that
// hands the router the HTTP/1.1 request head, as the HTTP/1.1 loop does,
// and turns the HTTP/1.1 response the router writes into frames
// (h2resp.go); any other request (a body, the API's host coalesced onto
// the connection) goes to the net/http handler on a goroutine
// (h2bridge.go). Streams add their frames to the connection's buffer, and
// the connection's task writes it once per turn of the loop.

// The server's HTTP/2 settings and bounds.
const (
	h2MaxStreams   = 100          // SETTINGS_MAX_CONCURRENT_STREAMS
	h2StreamWindow = 256 << 10    // SETTINGS_INITIAL_WINDOW_SIZE: a stream's request body buffered at most
	h2ConnWindow   = 1 << 20      // the connection's receive window: its request bodies buffered at most
	h2ReadFrame    = 16 << 10     // the largest frame read (the default SETTINGS_MAX_FRAME_SIZE)
	h2SendQueue    = 32 << 10     // a stream's response bytes queued before its producer waits
	h2OutHigh      = 256 << 10    // frames for the client past which streams stop adding DATA
	h2ResetBurst   = h2MaxStreams // streams in work a client may reset at once...
	h2ResetRate    = 20           // ...and per second after that (rapid reset, CVE-2023-44487)
	h2WindowMax    = math.MaxInt32
)

// h2Conn is an HTTP/2 connection served by an event loop's task.
type h2Conn struct {
	c    *http1Conn // the TLS connection, its task and server
	s    *Server
	task *evloop.Task
	loop *evloop.Loop
	raw  *rawconn.Conn
	br   *bufio.Reader
	fr   *http2.Framer // reads br, writes out
	dec  *hpack.Decoder
	enc  *hpack.Encoder
	hbuf bytes.Buffer // a header block being encoded

	out, sending []byte // frames for the client; those being written
	woken        bool   // the task is scheduled to write out
	writeBy      time.Time

	streams    map[uint32]*h2Stream // open: not yet closed both ways
	lastID     uint32               // the highest stream the client opened
	sendWindow int64                // the client's connection window
	peerWindow int64                // the client's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame  int                  // the largest frame the client takes
	recvWindow int64                // what the client may still send
	recvOwed   int64                // consumed, not yet given back
	blocked    []*h2Stream          // streams with queued bytes and no window or room in out

	// The header block being read: its stream, the fields so far, their
	// size (RFC 9113's count), and whether its HEADERS ended the stream.
	blockID     uint32
	blockEnd    bool
	blockBytes  int
	fields      []hpack.HeaderField
	fieldsBytes int

	goaway   bool // no new streams: GOAWAY sent or received
	resets   float64
	resetAt  time.Time
	activeAt time.Time            // when a stream last opened or closed
	readBy   time.Time            // the read deadline set
	tls      *tls.ConnectionState // for the requests that go to net/http, made once
}

// serveH2 serves c, whose client negotiated h2 for an app's host, on its
// loop task until it closes.
func (c *http1Conn) serveH2() {
	h := &h2Conn{
		c: c, s: c.s, task: c.task, loop: c.task.Loop().(*evloop.Loop), raw: c.raw,
		br:         bufio.NewReaderSize(c.tc, 2*h2ReadFrame),
		streams:    map[uint32]*h2Stream{},
		sendWindow: 65535, peerWindow: 65535, peerFrame: 16 << 10,
		recvWindow: h2ConnWindow, activeAt: time.Now(),
	}
	h.fr = http2.NewFramer(h, h.br)
	h.fr.SetMaxReadFrameSize(h2ReadFrame)
	h.fr.SetReuseFrames()
	h.dec = hpack.NewDecoder(4096, h.emit)
	h.dec.SetMaxStringLength(c.s.cfg.MaxHeaderBytes)
	h.enc = hpack.NewEncoder(&h.hbuf)
	c.isH2.Store(true)
	h.serve()
}

// Write adds a frame made by the framer to out.
func (h *h2Conn) Write(p []byte) (int, error) {
	h.out = append(h.out, p...)
	h.wake()
	return len(p), nil
}

// wake has the connection's task write out in this turn of the loop,
// once the task running now parks: a stream's frames, all of this turn's
// streams' together.
func (h *h2Conn) wake() {
	if h.woken || h.task.Running() {
		return
	}
	h.woken = true
	h.raw.Interrupt()
	h.task.Schedule()
}

func (h *h2Conn) serve() {
	defer h.closeAll()
	h.c.setReadDeadline(time.Now().Add(h.s.cfg.ReadHeaderTimeout))
	pre, err := h.br.Peek(len(http2.ClientPreface))
	if err != nil || string(pre) != http2.ClientPreface {
		return
	}
	h.br.Discard(len(pre))
	h.fr.WriteSettings(
		http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: h2MaxStreams},
		http2.Setting{ID: http2.SettingInitialWindowSize, Val: h2StreamWindow},
		http2.Setting{ID: http2.SettingMaxHeaderListSize, Val: uint32(h.s.cfg.MaxHeaderBytes)},
	)
	h.fr.WriteWindowUpdate(0, h2ConnWindow-65535)
	h.idle()
	for {
		if err := h.flush(); err != nil {
			return
		}
		if h.s.closing.Load() && !h.goaway {
			h.goaway = true
			h.fr.WriteGoAway(h.lastID, http2.ErrCodeNo, nil)
			continue
		}
		if h.goaway && len(h.streams) == 0 {
			return
		}
		f, err := h.next()
		switch {
		case errors.Is(err, rawconn.ErrInterrupted):
			continue
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !h.idle() {
				return
			}
			continue
		case err != nil:
			var se http2.StreamError
			if errors.As(err, &se) {
				if st := h.streams[se.StreamID]; st != nil {
					h.reset(st, se.Code)
				} else {
					h.rstStream(se.StreamID, se.Code)
				}
				continue
			}
			h.fail(err)
			return
		}
		if err := h.handle(f); err != nil {
			h.fail(err)
			return
		}
	}
}

// fail ends the connection on a connection error: GOAWAY with its code,
// when it is the client's fault, then close.
func (h *h2Conn) fail(err error) {
	code := http2.ErrCodeProtocol
	var ce http2.ConnectionError
	switch {
	case errors.As(err, &ce):
		code = http2.ErrCode(ce)
	case errors.Is(err, http2.ErrFrameTooLarge):
		code = http2.ErrCodeFrameSize
	default:
		return // the connection failed: nothing to tell
	}
	h.goaway = true
	h.fr.WriteGoAway(h.lastID, code, nil)
	h.flush()
}

// idle sets the read deadline: IdleTimeout after the last stream closed
// when none is open, BodyReadTimeout after the first stream stalled on a
// closed window, else IdleTimeout from now. It reports whether the
// connection stays: false once it was idle for IdleTimeout. A stream
// stalled for BodyReadTimeout is reset: a client that opens windows for
// nothing holds no executor's connection for longer.
func (h *h2Conn) idle() bool {
	now := time.Now()
	timeout := h.s.cfg.IdleTimeout
	if len(h.streams) == 0 && !now.Before(h.activeAt.Add(timeout)) {
		return false
	}
	by := h.activeAt.Add(timeout)
	if len(h.streams) > 0 || by.Before(now) {
		by = now.Add(timeout)
	}
	for _, s := range h.streams {
		if s.stalledAt.IsZero() {
			continue
		}
		if until := s.stalledAt.Add(h.s.cfg.BodyReadTimeout); !now.Before(until) {
			h.reset(s, http2.ErrCodeCancel)
		} else if until.Before(by) {
			by = until
		}
	}
	h.readBy = by
	h.c.setReadDeadline(by)
	return true
}

// stalled notes that s has bytes to send and no window for them.
func (h *h2Conn) stalled(s *h2Stream) {
	if !s.stalledAt.IsZero() {
		return
	}
	s.stalledAt = time.Now()
	if until := s.stalledAt.Add(h.s.cfg.BodyReadTimeout); until.Before(h.readBy) {
		h.readBy = until
		h.c.setReadDeadline(until)
	}
}

// next returns the next frame, reading until all of it is in the buffer:
// a read interrupted to write (wake) must not end midway in a frame.
func (h *h2Conn) next() (http2.Frame, error) {
	for {
		buf, _ := h.br.Peek(h.br.Buffered())
		if len(buf) >= 9 {
			n := int(buf[0])<<16 | int(buf[1])<<8 | int(buf[2])
			if len(buf) >= 9+n || n > h2ReadFrame {
				return h.fr.ReadFrame()
			}
		}
		if _, err := h.br.Peek(len(buf) + 1); err != nil {
			return nil, err
		}
	}
}

// flush writes out, and what streams waiting for room in it add meanwhile.
func (h *h2Conn) flush() error {
	for len(h.out) > 0 {
		h.woken = false
		h.out, h.sending = h.sending[:0], h.out
		if now := time.Now(); h.writeBy.Sub(now) < h.s.cfg.BodyReadTimeout-time.Second {
			// A client that takes nothing for BodyReadTimeout is gone,
			// or an attacker filling Hangar's buffers.
			h.writeBy = now.Add(h.s.cfg.BodyReadTimeout)
			h.c.tc.SetWriteDeadline(h.writeBy)
		}
		if _, err := h.c.tc.Write(h.sending); err != nil {
			return err
		}
		if cap(h.sending) > 1<<20 {
			h.sending = nil
		}
		h.unblock()
	}
	h.woken = false
	return nil
}

// unblock gives the streams waiting for a window or room in out another
// go.
func (h *h2Conn) unblock() {
	blocked := h.blocked
	h.blocked = nil
	for _, s := range blocked {
		s.blocked = false
		h.drain(s)
	}
}

func (h *h2Conn) handle(f http2.Frame) error {
	switch f := f.(type) {
	case *http2.HeadersFrame:
		return h.onHeaders(f)
	case *http2.ContinuationFrame:
		return h.onFragment(f.HeaderBlockFragment(), f.HeadersEnded())
	case *http2.DataFrame:
		return h.onData(f)
	case *http2.WindowUpdateFrame:
		return h.onWindowUpdate(f)
	case *http2.SettingsFrame:
		return h.onSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			h.fr.WritePing(true, f.Data)
		}
	case *http2.RSTStreamFrame:
		return h.onReset(f)
	case *http2.GoAwayFrame:
		h.goaway = true
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // PRIORITY and unknown frames
}

func (h *h2Conn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingHeaderTableSize:
			h.enc.SetMaxDynamicTableSizeLimit(min(s.Val, 4096))
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - h.peerWindow
			h.peerWindow = int64(s.Val)
			for _, st := range h.streams {
				if st.sendWindow += delta; st.sendWindow > h2WindowMax {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
		case http2.SettingMaxFrameSize:
			h.peerFrame = int(min(s.Val, 64<<10))
		}
		return nil
	})
	if err != nil {
		return err
	}
	h.fr.WriteSettingsAck()
	if h.peerWindow > 0 {
		for _, st := range h.streams {
			h.drain(st)
		}
	}
	return nil
}

func (h *h2Conn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	inc := int64(f.Increment)
	if f.StreamID == 0 {
		if h.sendWindow += inc; h.sendWindow > h2WindowMax {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		h.unblock()
		return nil
	}
	s := h.streams[f.StreamID]
	if s == nil {
		if f.StreamID > h.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol) // an idle stream
		}
		return nil
	}
	if s.sendWindow += inc; s.sendWindow > h2WindowMax {
		h.reset(s, http2.ErrCodeFlowControl)
		return nil
	}
	h.drain(s)
	return nil
}

func (h *h2Conn) onReset(f *http2.RSTStreamFrame) error {
	if f.StreamID > h.lastID {
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	s := h.streams[f.StreamID]
	if s == nil {
		return nil
	}
	// Each stream reset while it works costs a token; tokens come back
	// at h2ResetRate a second, up to h2ResetBurst.
	now := time.Now()
	if h.resetAt.IsZero() {
		h.resets = h2ResetBurst
	} else {
		h.resets = min(h2ResetBurst, h.resets+now.Sub(h.resetAt).Seconds()*h2ResetRate)
	}
	h.resetAt = now
	if h.resets--; h.resets < 0 {
		return http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	h.reset(s, 0)
	return nil
}

func (h *h2Conn) onData(f *http2.DataFrame) error {
	n := int64(f.Length)
	if h.recvWindow -= n; h.recvWindow < 0 {
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	s := h.streams[f.StreamID]
	if s == nil || s.remoteDone {
		if f.StreamID > h.lastID {
			return http2.ConnectionError(http2.ErrCodeProtocol)
		}
		h.credit(nil, n)
		h.rstStream(f.StreamID, http2.ErrCodeStreamClosed)
		return nil
	}
	if s.recvWindow -= n; s.recvWindow < 0 {
		h.credit(nil, n)
		h.reset(s, http2.ErrCodeFlowControl)
		return nil
	}
	data := f.Data()
	if pad := n - int64(len(data)); pad > 0 {
		h.credit(s, pad)
	}
	if f.StreamEnded() {
		s.remoteDone = true
	}
	if s.body == nil {
		// A stream whose handler finished: what comes is thrown away.
		h.credit(s, int64(len(data)))
	} else if !s.body.push(data, f.StreamEnded()) {
		h.reset(s, http2.ErrCodeProtocol) // more than its content-length
		return nil
	}
	h.closeIfDone(s)
	return nil
}

// credit gives n bytes of the client's window back once they were
// consumed: the connection's, and s's when not nil. WINDOW_UPDATEs go
// out once a quarter of a window is owed.
func (h *h2Conn) credit(s *h2Stream, n int64) {
	if h.recvOwed += n; h.recvOwed >= h2ConnWindow/4 {
		h.fr.WriteWindowUpdate(0, uint32(h.recvOwed))
		h.recvWindow += h.recvOwed
		h.recvOwed = 0
	}
	if s == nil || s.remoteDone || s.dead {
		return
	}
	if s.recvOwed += n; s.recvOwed >= h2StreamWindow/4 {
		h.fr.WriteWindowUpdate(s.id, uint32(s.recvOwed))
		s.recvWindow += s.recvOwed
		s.recvOwed = 0
	}
}

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
	if s := h.streams[id]; s != nil {
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
		h.task.Go(s.serveFast)
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

// writeBlock writes the header block in hbuf for stream id, in HEADERS
// and CONTINUATION frames of the client's frame size.
func (h *h2Conn) writeBlock(id uint32, endStream bool) {
	block := h.hbuf.Bytes()
	for first := true; first || len(block) > 0; first = false {
		frag := block[:min(len(block), h.peerFrame)]
		block = block[len(frag):]
		if first {
			h.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: frag, EndStream: endStream, EndHeaders: len(block) == 0})
		} else {
			h.fr.WriteContinuation(id, len(block) == 0, frag)
		}
	}
	h.hbuf.Reset()
}

func (h *h2Conn) rstStream(id uint32, code http2.ErrCode) {
	h.fr.WriteRSTStream(id, code)
}

// reset ends s at once, with RST_STREAM(code) unless code is 0 (the client
// reset it): its request's work is canceled.
func (h *h2Conn) reset(s *h2Stream, code http2.ErrCode) {
	if code != 0 && !s.localDone {
		h.rstStream(s.id, code)
	}
	s.localDone, s.remoteDone = true, true
	s.kill()
	h.closeIfDone(s)
}

// closeIfDone forgets s once it is closed both ways.
func (h *h2Conn) closeIfDone(s *h2Stream) {
	if !s.localDone || !s.remoteDone || h.streams[s.id] != s {
		return
	}
	delete(h.streams, s.id)
	h.activeAt = time.Now()
	if len(h.streams) == 0 {
		// The read deadline stays: when it passes, idle moves it to
		// IdleTimeout after activeAt.
		h.c.state.CompareAndSwap(stateActive, stateIdle)
	}
}

// closeAll ends every stream when the connection ends.
func (h *h2Conn) closeAll() {
	for _, s := range h.streams {
		h.reset(s, 0)
	}
}

// drain frames what s has queued as DATA, within the client's windows and
// while out has room; the end of the stream (END_STREAM, or trailers)
// follows its last byte.
func (h *h2Conn) drain(s *h2Stream) {
	if s.dead || s.localDone || !s.started {
		return
	}
	s.mu.Lock()
	for s.sendq.Len() > 0 {
		n := min(s.sendq.Len(), h.peerFrame, int(min(h.sendWindow, s.sendWindow)))
		if n <= 0 {
			h.stalled(s)
		}
		if n <= 0 || len(h.out) >= h2OutHigh {
			if !s.blocked && (len(h.out) >= h2OutHigh || h.sendWindow <= 0) {
				// The stream's own window reopens with its
				// WINDOW_UPDATE, which drains it.
				s.blocked = true
				h.blocked = append(h.blocked, s)
			}
			break
		}
		end := s.end && s.trailers == nil && n == s.sendq.Len()
		s.stalledAt = time.Time{}
		h.writeData(s.id, end, s.sendq.Next(n))
		h.sendWindow -= int64(n)
		s.sendWindow -= int64(n)
		if end {
			s.localDone = true
		}
	}
	if s.sendq.Len() == 0 && s.end && !s.localDone {
		if s.trailers != nil {
			for _, f := range s.trailers {
				h.enc.WriteField(f)
			}
			h.writeBlock(s.id, true)
		} else {
			h.writeData(s.id, true, nil)
		}
		s.localDone = true
	}
	room := s.sendq.Len() < h2SendQueue
	s.mu.Unlock()
	if room || s.localDone {
		s.room()
	}
	if s.localDone {
		h.ended(s)
	}
}

// ended closes s once its response is complete; when its handler is done
// with the request's body too, the client may stop sending the rest.
func (h *h2Conn) ended(s *h2Stream) {
	if s.finished && !s.remoteDone {
		h.rstStream(s.id, http2.ErrCodeNo)
		s.remoteDone = true
	}
	h.closeIfDone(s)
}

// writeData adds a DATA frame to out (the framer would copy data twice).
func (h *h2Conn) writeData(id uint32, end bool, data []byte) {
	var flags byte
	if end {
		flags = byte(http2.FlagDataEndStream)
	}
	n := len(data)
	h.out = append(h.out, byte(n>>16), byte(n>>8), byte(n), byte(http2.FrameData), flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	h.out = append(h.out, data...)
	h.wake()
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
