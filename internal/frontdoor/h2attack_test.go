package frontdoor_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/hangar-oss/hangar/internal/frontdoor"
)

// HTTP/2 attacks on the front door, by a client that writes frames itself
// (golang.org/x/net/http2's Framer). Each bound here holds for whatever
// serves HTTP/2 behind the port (docs/h2-loop.md).

// h2Dial opens an HTTP/2 connection to the front door and sends the
// client's preface and settings; it returns the framer and the connection.
func (f *front) h2Dial(t *testing.T) (*http2.Framer, *tls.Conn) {
	t.Helper()
	tc := f.tlsConfig(true)
	tc.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", f.addr, tc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(2 * time.Minute)) // a failing test must not hang
	if p := c.ConnectionState().NegotiatedProtocol; p != "h2" {
		t.Fatalf("negotiated %q, want h2", p)
	}
	if _, err := io.WriteString(c, http2.ClientPreface); err != nil {
		t.Fatal(err)
	}
	fr := http2.NewFramer(c, c)
	if err := fr.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	return fr, c
}

// headerBlock encodes a GET of path on host.
func headerBlock(host, path string) []byte {
	return encode(
		hpack.HeaderField{Name: ":method", Value: "GET"}, hpack.HeaderField{Name: ":scheme", Value: "https"},
		hpack.HeaderField{Name: ":authority", Value: host}, hpack.HeaderField{Name: ":path", Value: path})
}

// padding encodes n fields of size bytes, never indexed: the same bytes
// decode anywhere in a header block, however often repeated.
func padding(n, size int) []byte {
	fields := make([]hpack.HeaderField, n)
	for i := range fields {
		fields[i] = hpack.HeaderField{Name: "x-pad", Value: strings.Repeat("a", size), Sensitive: true}
	}
	return encode(fields...)
}

func encode(fields ...hpack.HeaderField) []byte {
	var buf bytes.Buffer
	enc := hpack.NewEncoder(&buf)
	for _, f := range fields {
		enc.WriteField(f)
	}
	return buf.Bytes()
}

// closedBefore runs write until it fails, the server's frames end (EOF or
// GOAWAY) or limit calls went by; it returns how many calls went by.
func closedBefore(t *testing.T, fr *http2.Framer, limit int, write func() error) int {
	t.Helper()
	var ended atomic.Bool
	go func() {
		// The server's frames are read only to see it end the connection:
		// an attacker that never reads is the PING test's case.
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				break
			}
			if _, ok := f.(*http2.GoAwayFrame); ok {
				break
			}
		}
		ended.Store(true)
	}()
	for i := range limit {
		if ended.Load() || write() != nil {
			return i
		}
	}
	t.Fatalf("the connection was still open after %d writes", limit)
	return limit
}

// TestFrontDoor_H2ContinuationFlood: a header block that never ends
// (HEADERS without END_HEADERS, then CONTINUATION frames without end,
// CVE-2024-27316) is cut once it passes the header cap, not read for as
// long as the client sends.
func TestFrontDoor_H2ContinuationFlood(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{MaxHeaderBytes: 16 << 10}, hello)
	fr, _ := f.h2Dial(t)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("127.0.0.1", "/"), EndStream: true}); err != nil {
		t.Fatal(err)
	}
	// 8 KiB a frame, up to 256 MiB: far past the cap and any socket
	// buffers between the two.
	frag := padding(8, 1000)
	n := closedBefore(t, fr, 32<<10, func() error { return fr.WriteContinuation(1, false, frag) })
	// The cap, plus what the sockets between the two can hold.
	if sent := n * len(frag); sent > 16<<20 {
		t.Errorf("the server read %d MiB of one header block before closing", sent>>20)
	}
}

// TestFrontDoor_H2ControlFrameFlood: a client that sends PINGs and never
// reads their acknowledgements makes the server queue them; the server
// closes the connection instead of queueing without end.
func TestFrontDoor_H2ControlFrameFlood(t *testing.T) {
	t.Parallel()
	f := start(t, frontdoor.Config{}, hello)
	fr, c := f.h2Dial(t)
	var data [8]byte
	sent := 0
	for sent < 4_000_000 {
		if err := fr.WritePing(false, data); err != nil {
			break
		}
		sent++
	}
	if sent == 4_000_000 {
		t.Fatalf("the server took %d PINGs without reading acknowledgements and kept the connection", sent)
	}
	// The connection ended: the server closed it, not a deadline.
	var ne interface{ Timeout() bool }
	if _, err := c.Write(make([]byte, 1)); err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		t.Fatalf("write after the flood: %v, want the connection closed", err)
	}
}

// TestFrontDoor_H2StreamsBounded: one connection cannot hold more
// requests on an app's executor at once than the streams the server
// advertises, however many it opens.
func TestFrontDoor_H2StreamsBounded(t *testing.T) {
	t.Parallel()
	var inflight, peak atomic.Int64
	release := make(chan struct{})
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		defer inflight.Add(-1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release) }) // before the executor closes
	fr, _ := f.h2Dial(t)
	// The server's first SETTINGS: its stream limit, or 0 for none.
	advertised := make(chan uint32, 1)
	go func() {
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				v, _ := sf.Value(http2.SettingMaxConcurrentStreams)
				select {
				case advertised <- v:
				default:
				}
			}
		}
	}()
	const streams = 600
	for i := range streams {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: headerBlock("h2.apps.test", "/"), EndStream: true, EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
	}
	var limit uint32
	select {
	case limit = <-advertised:
	case <-time.After(30 * time.Second):
		t.Fatal("no SETTINGS from the server")
	}
	if limit == 0 {
		t.Fatal("the server advertises no stream limit")
	}
	// The count stops rising once every stream the server took is in.
	for last, stable, deadline := int64(-1), 0, time.Now().Add(30*time.Second); stable < 10 && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if n := inflight.Load(); n == last && n > 0 {
			stable++
		} else {
			last, stable = n, 0
		}
	}
	if p := peak.Load(); p > int64(limit) || p == 0 {
		t.Fatalf("%d of %d streams reached the executor at once; the server advertised %d", p, streams, limit)
	}
}
