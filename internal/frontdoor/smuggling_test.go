package frontdoor_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hangar-oss/hangar/internal/frontdoor"
)

// TestFrontDoor_HTTP1Smuggling sends the request-smuggling vectors an
// attacker would try at the loop, each on a connection of its own with a
// second request hidden where a lax parser would find it. Each must be
// answered as net/http answers it (the loop hands it over) or refused, and
// the executor must never see the hidden request.
func TestFrontDoor_HTTP1Smuggling(t *testing.T) {
	t.Parallel()
	const host = "app.apps.test"
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
	chunk := fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", len(smuggled), smuggled)
	get := "GET / HTTP/1.1\r\nHost: " + host + "\r\n"
	for _, tc := range []struct{ name, raw string }{
		{"ContentLengthAndChunked", get + "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk},
		{"ChunkedAndContentLength", get + "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n" + chunk},
		{"ChunkedGET", get + "Transfer-Encoding: chunked\r\n\r\n" + chunk},
		{"OtherEncodingGET", get + "Transfer-Encoding: gzip, chunked\r\n\r\n" + chunk},
		{"ContentLengthGET", get + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"ContentLengthZero", get + "Content-Length: 0\r\n\r\n"},
		{"DuplicateContentLength", get + fmt.Sprintf("Content-Length: 0\r\nContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"DuplicateHost", get + "Host: other.apps.test\r\n\r\n"},
		{"ObsFold", get + "X-A: 1\r\n Transfer-Encoding: chunked\r\n\r\n" + chunk},
		{"ObsFoldFirstLine", "GET / HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: " + host + "\r\n\r\n" + chunk},
		{"BareLF", "GET / HTTP/1.1\nHost: " + host + fmt.Sprintf("\nContent-Length: %d\n\n", len(smuggled)) + smuggled},
		{"BareLFInHeader", get + "X-A: 1\nTransfer-Encoding: chunked\r\n\r\n" + chunk},
		{"BareCRInHeader", get + fmt.Sprintf("X-A: 1\rContent-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"SpaceBeforeColon", get + fmt.Sprintf("Content-Length : %d\r\n\r\n", len(smuggled)) + smuggled},
		{"TabBeforeColon", get + "Transfer-Encoding\t: chunked\r\n\r\n" + chunk},
		{"NULInValue", get + "X-A: 1\x00\r\n\r\n"},
		{"NULInTarget", "GET /\x00 HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"InvalidNameChar", get + "X(A): 1\r\n\r\n"},
		{"AbsoluteFormOtherHost", "GET http://other.apps.test/ HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"AbsoluteFormSameHost", "GET https://" + host + "/abs HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
		{"HTTP10KeepAlive", "GET /first HTTP/1.0\r\nHost: " + host + "\r\nConnection: keep-alive\r\n\r\nGET /second HTTP/1.0\r\nHost: " + host + "\r\n\r\n"},
		{"HTTP10", "GET /first HTTP/1.0\r\nHost: " + host + "\r\n\r\n" + smuggled},
		{"ConnectionNamesContentLength", get + "Connection: Content-Length\r\n" + fmt.Sprintf("Content-Length: %d\r\n\r\n", len(smuggled)) + smuggled},
		{"Pipelined", get + "\r\n" + "GET /second HTTP/1.1\r\nHost: " + host + "\r\n\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// net/http alone, routing as the router does: its answers and
			// what its handler saw are the reference.
			want, wantSeen := exchange(t, tc.raw, false, func(h http.Handler) func() net.Conn {
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				return func() net.Conn {
					c, err := net.Dial("tcp", srv.Listener.Addr().String())
					if err != nil {
						t.Fatal(err)
					}
					return c
				}
			})
			got, seen := exchange(t, tc.raw, true, func(h http.Handler) func() net.Conn {
				f := throughRouter(t, frontdoor.Config{}, host, h)
				return func() net.Conn { return f.dial(t) }
			})
			if !slices.Equal(got, want) {
				t.Errorf("statuses: got %v, want %v (net/http's)", got, want)
			}
			if !slices.Equal(seen, wantSeen) {
				t.Errorf("the executor saw %q, want %q (net/http's handler)", seen, wantSeen)
			}
			if slices.Contains(seen, "/smuggled") {
				t.Errorf("the executor saw the smuggled request")
			}
		})
	}
}

// exchange starts a server of a handler that records the paths it sees
// (answering 404 for hosts other than app.apps.test, as the router does)
// with serve, sends raw and a last request on a connection of its own, and
// returns the statuses of the responses until the server closes it, and
// the paths.
func exchange(t *testing.T, raw string, viaRouter bool, serve func(http.Handler) func() net.Conn) (statuses []int, seen []string) {
	t.Helper()
	var mu sync.Mutex
	dial := serve(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, _, _ := strings.Cut(r.Host, ":"); !viaRouter && h != "app.apps.test" {
			http.NotFound(w, r)
			return
		}
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		seen = append(seen, r.URL.Path)
		mu.Unlock()
		io.WriteString(w, "ok")
	}))
	c := dial()
	defer c.Close()
	// A last request asks the server to close the connection once it has
	// answered the rest (half-closing would cancel requests in flight).
	end := "GET /end HTTP/1.1\r\nHost: app.apps.test\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(c, raw+end); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil && len(b) == 0 {
		t.Fatal(err)
	}
	br := bufio.NewReader(bytes.NewReader(b))
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodGet})
		if err != nil {
			break
		}
		io.Copy(io.Discard, resp.Body)
		statuses = append(statuses, resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	return statuses, slices.Clone(seen)
}
