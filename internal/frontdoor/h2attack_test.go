package frontdoor_test

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/http"
	"runtime"
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

// h2Servers are the two servers of HTTP/2 behind the port: net/http's,
// for a connection that names no app's host (the API's), and the event
// loop's, for one that names an app's host. Each attack test runs against
// both.
var h2Servers = []struct{ name, sni string }{{"net/http", ""}, {"loop", "h2.apps.test"}}

// h2Dial opens an HTTP/2 connection to the front door, naming sni in the
// handshake (none: no name), and sends the client's preface and settings;
// it returns the framer and the connection.
func (f *front) h2Dial(t *testing.T, sni string) (*http2.Framer, *tls.Conn) {
	t.Helper()
	tc := f.tlsConfig(true)
	tc.NextProtos = []string{"h2"}
	if sni != "" {
		tc.ServerName = sni
	}
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
	for _, srv := range h2Servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			f := throughRouter(t, frontdoor.Config{MaxHeaderBytes: 16 << 10}, "h2.apps.test", hello)
			continuationFlood(t, f, srv.sni)
		})
	}
}

func continuationFlood(t *testing.T, f *front, sni string) {
	fr, _ := f.h2Dial(t, sni)
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("h2.apps.test", "/"), EndStream: true}); err != nil {
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
// closes the connection instead of queueing without end (net/http's past
// a count of frames; the loop's stops reading while its acknowledgements
// wait, and closes once they waited BodyReadTimeout).
func TestFrontDoor_H2ControlFrameFlood(t *testing.T) {
	t.Parallel()
	for _, srv := range h2Servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			f := throughRouter(t, frontdoor.Config{BodyReadTimeout: 2 * time.Second}, "h2.apps.test", hello)
			controlFrameFlood(t, f, srv.sni)
		})
	}
}

func controlFrameFlood(t *testing.T, f *front, sni string) {
	fr, c := f.h2Dial(t, sni)
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
	for _, srv := range h2Servers {
		t.Run(srv.name, func(t *testing.T) {
			t.Parallel()
			streamsBounded(t, srv.sni)
		})
	}
}

func streamsBounded(t *testing.T, sni string) {
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
	fr, _ := f.h2Dial(t, sni)
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

// TestFrontDoor_H2RapidReset: a client that opens streams and resets them
// at once (CVE-2023-44487) makes the server start work it never finishes;
// the loop lets a connection reset only so many streams in work, then
// sends GOAWAY and closes it. (net/http's server bounds it by how many
// handlers run at once, which depends on how fast they end: no crisp
// count to test.)
func TestFrontDoor_H2RapidReset(t *testing.T) {
	t.Parallel()
	var started atomic.Int64
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-r.Context().Done()
	}))
	fr, _ := f.h2Dial(t, "h2.apps.test")
	block := headerBlock("h2.apps.test", "/")
	id := uint32(1)
	closedBefore(t, fr, 100_000, func() error {
		if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block, EndStream: true, EndHeaders: true}); err != nil {
			return err
		}
		err := fr.WriteRSTStream(id, http2.ErrCodeCancel)
		id += 2
		return err
	})
	if n := started.Load(); n > 1000 {
		t.Errorf("the executor started %d requests of a client that reset them all", n)
	}
}

// TestFrontDoor_H2HPACKBomb: a header block of a few KiB that decodes to
// 64 MiB (one large field in the dynamic table, then 16,000 one-byte
// references to it) is refused (431, or the connection closed: net/http's
// server does that) without the server making the 64 MiB.
// Not parallel: it counts the process's allocations.
func TestFrontDoor_H2HPACKBomb(t *testing.T) {
	for _, srv := range h2Servers {
		t.Run(srv.name, func(t *testing.T) {
			f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", hello)
			fr, _ := f.h2Dial(t, srv.sni)
			var buf bytes.Buffer
			enc := hpack.NewEncoder(&buf)
			for _, hf := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "https"},
				{Name: ":authority", Value: "h2.apps.test"}, {Name: ":path", Value: "/"}, {Name: "x-bomb", Value: strings.Repeat("b", 4000)}} {
				enc.WriteField(hf)
			}
			// The field just added is the dynamic table's first entry:
			// index 62, one byte to refer to it.
			buf.Write(bytes.Repeat([]byte{0x80 | 62}, 16000))
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			// In frames of 8 KiB: both servers take 16 KiB ones.
			block := buf.Bytes()
			if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:8<<10], EndStream: true}); err != nil {
				t.Fatal(err)
			}
			for block = block[8<<10:]; len(block) > 0; {
				frag := block[:min(len(block), 8<<10)]
				block = block[len(frag):]
				if err := fr.WriteContinuation(1, len(block) == 0, frag); err != nil {
					t.Fatal(err)
				}
			}
			status := ""
			dec := hpack.NewDecoder(4096, func(hf hpack.HeaderField) {
				if hf.Name == ":status" {
					status = hf.Value
				}
			})
			for status == "" {
				fr2, err := fr.ReadFrame()
				if err != nil {
					break // the connection closed: refused too
				}
				if h, ok := fr2.(*http2.HeadersFrame); ok {
					dec.Write(h.HeaderBlockFragment())
				}
			}
			runtime.ReadMemStats(&after)
			if status != "" && status != "431" {
				t.Errorf("a 64 MiB header list: status %s, want 431 or the connection closed", status)
			}
			if grew := after.TotalAlloc - before.TotalAlloc; grew > 16<<20 {
				t.Errorf("the server allocated %d MiB for a 20 KiB header block", grew>>20)
			}
		})
	}
}

// TestFrontDoor_H2ZeroWindow: a client that asks for a response and never
// opens a window for it (SETTINGS_INITIAL_WINDOW_SIZE 0) holds the
// executor's connection for BodyReadTimeout, not for ever: the loop
// resets the stream, and the executor's request ends.
func TestFrontDoor_H2ZeroWindow(t *testing.T) {
	t.Parallel()
	ended := make(chan struct{})
	f := throughRouter(t, frontdoor.Config{BodyReadTimeout: time.Second}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(ended)
		for r.Context().Err() == nil {
			if _, err := w.Write(make([]byte, 64<<10)); err != nil {
				return
			}
		}
	}))
	fr, _ := f.h2Dial(t, "h2.apps.test")
	if err := fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0}); err != nil {
		t.Fatal(err)
	}
	if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: headerBlock("h2.apps.test", "/"), EndStream: true, EndHeaders: true}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no RST_STREAM for a stream whose window stayed closed: %v", err)
		}
		if rst, ok := f.(*http2.RSTStreamFrame); ok && rst.StreamID == 1 {
			break
		}
		if _, ok := f.(*http2.DataFrame); ok {
			t.Fatal("DATA sent past a zero window")
		}
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("the stream was reset after %v, want about BodyReadTimeout (1s)", d)
	}
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Error("the executor's request did not end after the stream was reset")
	}
}

// TestFrontDoor_H2EndlessTrailers: an executor (the tenant's code) whose
// chunked response ends in trailers that never end cannot make the loop
// hold them all for the one HEADERS frame they would go out in: past
// 64 KiB the stream is reset and the executor's connection closed.
func TestFrontDoor_H2EndlessTrailers(t *testing.T) {
	t.Parallel()
	written := make(chan int, 1)
	f := throughRouter(t, frontdoor.Config{}, "h2.apps.test", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		n := 0
		defer func() { written <- n }()
		c.SetWriteDeadline(time.Now().Add(time.Minute))
		brw.WriteString("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n")
		line := "X-Trailer: " + strings.Repeat("t", 1000) + "\r\n"
		for n < 64<<20 {
			if _, err := brw.WriteString(line); err != nil {
				return
			}
			n += len(line)
		}
		brw.Flush()
	}))
	resp, err := f.appClient("h2.apps.test").Get("https://h2.apps.test/")
	if err == nil {
		_, err = io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	if err == nil {
		t.Error("a response with endless trailers came back whole, want the stream reset")
	}
	if n := <-written; n >= 64<<20 {
		t.Errorf("the executor wrote %d MiB of trailers and the front door took them all", n>>20)
	}
}
