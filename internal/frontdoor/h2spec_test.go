package frontdoor_test

import (
	"io"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/summerwind/h2spec"
	"github.com/summerwind/h2spec/config"

	"github.com/hangar-oss/hangar/internal/frontdoor"
)

// TestFrontDoor_H2Spec runs h2spec's conformance suite (RFC 7540 and 9113,
// HPACK; its strict cases too) against the loop's HTTP/2: the app's host
// is "localhost", which h2spec dials by name and sends as the TLS server
// name, so the loop serves its connections. h2spec prints its report; a
// failed case names the section and what the server sent.
func TestFrontDoor_H2Spec(t *testing.T) {
	t.Parallel()
	f := throughRouter(t, frontdoor.Config{}, "localhost", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		io.WriteString(w, "ok")
	}))
	_, port, _ := net.SplitHostPort(f.addr)
	p, _ := strconv.Atoi(port)
	ok, err := h2spec.Run(&config.Config{
		Host: "localhost", Port: p, Path: "/", TLS: true, Insecure: true, Strict: true,
		Timeout: 5 * time.Second, MaxHeaderLen: 4000,
	})
	if err != nil || !ok {
		t.Errorf("h2spec failed (its report above): %v", err)
	}
}
