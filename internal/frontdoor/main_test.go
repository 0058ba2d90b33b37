package frontdoor_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"testing"
)

// TestMain keeps name lookups on this machine: h2spec
// (TestFrontDoor_H2Spec) dials "localhost" by name, and a hosts file
// without it must fail the test, not send a DNS query off the machine.
// Names resolve from /etc/hosts only.
func TestMain(m *testing.M) {
	net.DefaultResolver = &net.Resolver{PreferGo: true, Dial: func(_ context.Context, _, server string) (net.Conn, error) {
		return nil, fmt.Errorf("tests resolve names from /etc/hosts only, not by DNS (%s)", server)
	}}
	os.Exit(m.Run())
}
