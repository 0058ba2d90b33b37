package sandbox

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
	"github.com/hangar-oss/hangar/internal/runtime/vnettest"
)

// greetPy prints "<label> ok" when it can connect to host:port (a name or
// an address) and read vnettest's greeting, "<label> denied" otherwise.
const greetPy = `
import socket, sys
try:
    with socket.create_connection((sys.argv[2], int(sys.argv[3])), timeout=2) as s:
        print(sys.argv[1], "ok" if s.recv(2) == b"hi" else "denied")
except OSError:
    print(sys.argv[1], "denied")
`

// TestDriver_Egress runs probes inside an executor against an emulated
// internet: the app reaches it by address and by name, through the
// resolver its /etc/resolv.conf names, and reaches neither a private nor
// the metadata address, nor a host service through any host address.
func TestDriver_Egress(t *testing.T) {
	t.Parallel()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	inet := vnettest.NewInternet(t)
	dns := vnettest.ServeDNS(t, "internet.test.", inet.Public)
	d := newTestDriver(t, func(c *Config) { c.Egress = runtime.Egress{Resolvers: []string{dns}} })
	hostPort := echoServer(t)
	if _, err := d.Prepare(t.Context(), "egress"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(t.Context(), "egress", time.Second) })
	n, _ := d.Inspect(t.Context(), "egress")
	lines := []string{
		"py() { /usr/bin/python3 -c '" + greetPy + "' \"$@\"; }",
		"grep -q '^nameserver " + n.Network.Gateway + "$' /etc/resolv.conf && echo resolv.conf ok",
		"py by-address " + inet.Public.String() + " 80",
		"py by-name internet.test 80",
		"py private " + inet.Private.String() + " 80",
		"py metadata " + vnettest.Metadata.String() + " 80",
		"py gateway " + n.Network.Gateway + " " + hostPort,
		"py host " + hostAddr(t) + " " + hostPort,
	}
	out := &runtimetest.SyncBuffer{}
	if _, err := d.Start(t.Context(), runtime.Spec{
		ID: "egress", Dir: t.TempDir(), Command: []string{"/bin/sh", "-c", strings.Join(lines, "\n")}, Port: 3000, Stdout: out,
	}); err != nil {
		t.Fatal(err)
	}
	if st, err := d.Wait(t.Context(), "egress"); err != nil || st.ExitCode != 0 {
		t.Fatalf("Wait: %+v, %v; output:\n%s", st, err, out)
	}
	got := out.String()
	t.Logf("output:\n%s", got)
	for check, want := range map[string]string{
		"resolv.conf": "ok", "by-address": "ok", "by-name": "ok",
		"private": "denied", "metadata": "denied", "gateway": "denied", "host": "denied",
	} {
		if !strings.Contains(got, check+" "+want+"\n") {
			t.Errorf("%s: want %s", check, want)
		}
	}
}
