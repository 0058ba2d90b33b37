package frontdoor

// Flow control both ways (h2.go): the client's windows for responses, and
// the windows given back for request bodies as they are consumed.

import (
	"time"

	"golang.org/x/net/http2"
)

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
	// A stream still receiving went to the bridge, with a body: once its
	// handler is done, the body throws away what comes (and gives it back).
	if !s.body.push(data, f.StreamEnded()) {
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
