package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/runtime/vnettest"
)

// netProbe connects to each target of the JSON array in argv[2], in
// order, and prints "<name> ok" when it connected (and, for a vnettest
// listener, read its greeting), "<name> denied: <why>" otherwise.
const netProbe = `const net = require("node:net");
(async () => {
  for (const c of JSON.parse(process.argv[2])) {
    const r = await new Promise((done) => {
      const s = net.connect({ host: c.host, port: c.port, timeout: 2000 });
      let got = "";
      s.on("connect", () => { if (!c.greets) { s.destroy(); done("ok"); } });
      s.on("data", (d) => { got += d; });
      s.on("end", () => done(got === "hi" ? "ok" : "denied: got " + JSON.stringify(got)));
      s.on("timeout", () => { s.destroy(); done("denied: timeout"); });
      s.on("error", (e) => done("denied: " + (e.code || e.message)));
    });
    console.log(c.name + " " + r);
  }
})();
`

// probeTarget is one connection netProbe attempts.
type probeTarget struct {
	Name   string `json:"name"`
	Host   string `json:"host"`
	Port   int    `json:"port"`
	Greets bool   `json:"greets,omitempty"`
}

// execNet is an executor's network as the host sees it.
type execNet struct{ Addr, Gateway string }

// executorNets maps the hostname of each app Hangar h runs (its
// DBOS_APP_HOSTNAME) to the network of one of its executors, found through
// the executor's cgroup (/hangar/<prefix>/<executor ID>) and its namespace,
// <prefix>-<executor ID>.
func executorNets(t *testing.T, h *Hangar) map[string]execNet {
	t.Helper()
	nets := map[string]execNet{}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cg, err := os.ReadFile(filepath.Join(p, "cgroup"))
		_, rest, ok := strings.Cut(string(cg), "/hangar/"+h.Prefix+"/")
		if err != nil || !ok {
			continue
		}
		id, _, _ := strings.Cut(strings.TrimSpace(rest), "\n")
		environ, _ := os.ReadFile(filepath.Join(p, "environ"))
		var host string
		for _, kv := range strings.Split(string(environ), "\x00") {
			if v, ok := strings.CutPrefix(kv, "DBOS_APP_HOSTNAME="); ok {
				host = v
			}
		}
		if host == "" {
			continue
		}
		out, err := exec.Command("ip", "-n", h.Prefix+"-"+id, "-4", "-o", "addr", "show", "dev", "eth0").Output()
		f := strings.Fields(string(out))
		if err != nil || len(f) < 4 {
			continue
		}
		pfx, err := netip.ParsePrefix(f[3])
		if err != nil {
			continue
		}
		// The executor is the second address of its /30, its gateway the
		// first.
		nets[host] = execNet{Addr: pfx.Addr().String(), Gateway: pfx.Masked().Addr().Next().String()}
	}
	return nets
}

// TestIsolation_Network deploys an app for each of two orgs, each on a
// database instance of its own, and tries from inside an executor of the
// first to reach what it must not: a host service bound on 0.0.0.0
// through every host address and its gateway, the other app's executor,
// gateway, relay and database instance, the cloud metadata address and a
// private address. Then it checks the legitimate paths: its own relay to
// its database, and an emulated internet host by address and by a name
// the host resolves; and that --egress-allow opens the private address.
func TestIsolation_Network(t *testing.T) {
	t.Parallel()
	inet := vnettest.NewInternet(t) // fails unless routed on this machine
	const name = "internet.test"
	dns := vnettest.ServeDNS(t, name+".", inet.Public)
	h := startHangar(t, "--egress-resolver", dns)

	// A host service on every address of the host.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Fatal(err)
	}
	vnettest.Serve(t, ln)
	hostPort := ln.Addr().(*net.TCPAddr).Port

	deploy := func(org string) (dir string, dbPort int) {
		t.Helper()
		refresh := h.AddUser(t, org)
		dir = fixture(t, "greeter", nil)
		if err := os.WriteFile(filepath.Join(dir, "netprobe.cjs"), []byte(netProbe), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{
			{"login", "--with-refresh-token", refresh},
			{"db", "provision", org + "db", "-U", "dbos_admin", "-W", "s3cret-pass"},
			{"app", "deploy"},
		} {
			if out, code := h.ours(t, dir, args...); code != 0 {
				t.Fatalf("%s: dbos-cloud %s: exit %d\n%s", org, strings.Join(args, " "), code, out)
			}
		}
		var port int
		fmt.Sscan(instancePort(t, h.Client(t, refresh), org, org+"db"), &port)
		return dir, port
	}
	dirA, dbA := deploy("neta")
	_, dbB := deploy("netb")
	nets := executorNets(t, h)
	a, okA := nets["https://neta-greeter."+h.Domain+"/"]
	b, okB := nets["https://netb-greeter."+h.Domain+"/"]
	if !okA || !okB {
		t.Fatalf("executor networks: got %v, want neta's and netb's", nets)
	}

	probe := func(t *testing.T, targets []probeTarget) map[string]string {
		t.Helper()
		q, _ := json.Marshal(targets)
		out, code := h.ours(t, dirA, "app", "cmd", "node netprobe.cjs '"+string(q)+"'")
		if code != 0 {
			t.Fatalf("app cmd: exit %d\n%s", code, out)
		}
		got := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if k, v, ok := strings.Cut(line, " "); ok {
				got[k] = v
			}
		}
		return got
	}
	check := func(t *testing.T, targets []probeTarget, want string) {
		t.Helper()
		got := probe(t, targets)
		for _, tg := range targets {
			addr := net.JoinHostPort(tg.Host, fmt.Sprint(tg.Port))
			t.Logf("attempt: %s (%s) -> %s", tg.Name, addr, got[tg.Name])
			if !strings.HasPrefix(got[tg.Name], want) {
				t.Errorf("%s (%s): got %q, want %s", tg.Name, addr, got[tg.Name], want)
			}
		}
	}

	t.Run("Denied", func(t *testing.T) {
		targets := []probeTarget{
			{"host-via-gateway", a.Gateway, hostPort, true},
			{"ssh-via-gateway", a.Gateway, 22, false},
			{"other-executor", b.Addr, 3000, false},
			{"other-gateway", b.Gateway, hostPort, true},
			{"other-relay", b.Gateway, 5432, false},
			{"own-instance-via-gateway", a.Gateway, dbA, false},
			{"other-instance-via-gateway", a.Gateway, dbB, false},
			{"other-instance-via-loopback", "127.0.0.1", dbB, false},
			{"metadata", vnettest.Metadata.String(), 80, true},
			{"private", inet.Private.String(), 80, true},
		}
		ifs, err := net.Interfaces()
		if err != nil {
			t.Fatal(err)
		}
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, "hgh") {
				continue // executors' gateways: its own and the other's are above
			}
			addrs, _ := i.Addrs()
			for _, ad := range addrs {
				ip := ad.(*net.IPNet).IP
				tg := probeTarget{Name: "host-" + i.Name + "-" + ip.String(), Host: ip.String(), Port: hostPort, Greets: true}
				if ip.IsLinkLocalUnicast() && ip.To4() == nil {
					tg.Host += "%eth0" // the executor's only link
				}
				targets = append(targets, tg)
				targets = append(targets, probeTarget{Name: "instance-" + i.Name + "-" + ip.String(), Host: tg.Host, Port: dbB})
			}
		}
		check(t, targets, "denied")
	})

	t.Run("Allowed", func(t *testing.T) {
		check(t, []probeTarget{
			{"own-relay", a.Gateway, 5432, false},
			{"internet-by-address", inet.Public.String(), 80, true},
			{"internet-by-name", name, 80, true},
		}, "ok")
	})

	// Restarted with --egress-allow, Hangar starts executors whose
	// firewall lets the private range through; metadata stays closed.
	t.Run("EgressAllow", func(t *testing.T) {
		h.Stop(t)
		h.args = append(h.args, "--egress-allow", "10.169.0.0/16,169.254.0.0/16")
		h.Start(t)
		deadline := time.Now().Add(90 * time.Second)
		for {
			if _, code := h.ours(t, dirA, "app", "cmd", "true"); code == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("no executor of neta's app runs 90 s after the restart")
			}
			time.Sleep(500 * time.Millisecond)
		}
		check(t, []probeTarget{{"private-allowed", inet.Private.String(), 80, true}}, "ok")
		check(t, []probeTarget{{"metadata-allowed", vnettest.Metadata.String(), 80, true}}, "denied")
	})
}
