package frontdoor

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"math"
	"os"
	"time"

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
	h2ReadBuffer   = 18 << 10     // the read buffer: a whole frame with its 9-byte header (next), in a size class of Go's
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
	br   *bufio.Reader // from h2Readers; another after an idle wait (next)
	in   firstByte     // what br reads
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

	workers     map[*evloop.Task]*h2Worker // the raw path's tasks
	idleWorkers []*evloop.Task             // those waiting for a stream
	closed      bool                       // the connection ended: workers end too

	// The header block being read: its stream, the fields so far, their
	// size (RFC 9113's count), whether its HEADERS ended the stream, and
	// whether they made it depend on itself (a stream error, once the
	// block is decoded: the decoder's table is the connection's).
	blockID     uint32
	blockEnd    bool
	blockSelf   bool
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
		streams:    map[uint32]*h2Stream{},
		workers:    map[*evloop.Task]*h2Worker{},
		sendWindow: 65535, peerWindow: 65535, peerFrame: 16 << 10,
		recvWindow: h2ConnWindow, activeAt: time.Now(),
	}
	h.br = h2Readers.Get().(*bufio.Reader)
	h.br.Reset(c.tc)
	h.fr = http2.NewFramer(h, h)
	h.fr.SetMaxReadFrameSize(h2ReadFrame)
	h.fr.SetReuseFrames()
	h.dec = hpack.NewDecoder(4096, h.emit)
	h.dec.SetMaxStringLength(c.s.cfg.MaxHeaderBytes)
	h.enc = hpack.NewEncoder(&h.hbuf)
	c.isH2.Store(true)
	h.serve()
}

// Read is the framer's: it reads h.br, which awaitByte swaps.
func (h *h2Conn) Read(p []byte) (int, error) { return h.br.Read(p) }

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
				h.resetID(se.StreamID, se.Code)
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

// next returns the next frame, reading until all of it is in the buffer:
// a read interrupted to write (wake) must not end midway in a frame.
func (h *h2Conn) next() (http2.Frame, error) {
	if len(h.streams) == 0 && h.br.Buffered() == 0 {
		// Idle: no read buffer held while the client sends nothing.
		if err := awaitByte(h.c.tc, &h.br, &h2Readers, &h.in); err != nil {
			return nil, err
		}
	}
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
		// A client that takes nothing for BodyReadTimeout is gone, or an
		// attacker filling Hangar's buffers. The deadline moves only
		// once it is a slack short of that (moving it costs a wake-up).
		timeout := h.s.cfg.BodyReadTimeout
		if now := time.Now(); h.writeBy.Sub(now) < timeout-min(idleSlack, timeout/8) {
			h.writeBy = now.Add(timeout)
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
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID { // RFC 9113, 5.3.1
			h.resetID(f.StreamID, http2.ErrCodeProtocol)
		}
	case *http2.PushPromiseFrame:
		return http2.ConnectionError(http2.ErrCodeProtocol)
	}
	return nil // unknown frames
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

// resetID is a stream error on stream id: an open stream ends (reset),
// another gets RST_STREAM alone.
func (h *h2Conn) resetID(id uint32, code http2.ErrCode) {
	if s := h.streams[id]; s != nil {
		h.reset(s, code)
	} else {
		h.rstStream(id, code)
	}
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
	h.closed = true
	for _, s := range h.streams {
		h.reset(s, 0)
	}
	for _, t := range h.idleWorkers {
		t.CancelSoon()
	}
}
