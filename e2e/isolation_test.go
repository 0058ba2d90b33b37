package e2e

// The isolation suite: tenants' apps and database admins try each escape
// of issue #10 as an attacker would, and each attempt logs one line
// ("attempt: <what> -> denied: <how>", or what it reached when it is a
// legitimate path). Build-time code (TestIsolation_Build), the database
// admin (TestIsolation_Databases), the network (TestIsolation_Network) and
// the shared stores (TestIsolation_Stores) each have a test; together they
// run with the rest of the end-to-end suite under make test.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/sys/unix"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/runtime/vnettest"
)

// TestIsolation_Build deploys an app whose preinstall script, setup and
// migration each try to escape their sandbox (testdata/apps/escaper
// attempts.sh), and checks that every attempt failed; and that setup's
// "apt install traceroute" gives the app's executors traceroute, not the
// host.
func TestIsolation_Build(t *testing.T) {
	t.Parallel()
	h := startHangar(t)
	refresh := h.AddUser(t, "ivy")
	hangarPID := strconv.Itoa(h.cmd.Process.Pid)
	// A secret outside /tmp, which the steps' private /tmp would hide anyway.
	hostFile := "/opt/hangar-e2e-secret-" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(hostFile, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(hostFile) })
	dir := fixture(t, "escaper", map[string]func(string) string{
		"attempts.sh": strings.NewReplacer("@DATADIR@", h.DataDir, "@HANGARPID@", hangarPID, "@HOSTFILE@", hostFile).Replace,
	})
	must := func(args ...string) string {
		t.Helper()
		out, code := h.ours(t, dir, args...)
		if code != 0 {
			t.Fatalf("dbos-cloud %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	must("login", "--with-refresh-token", refresh)
	must("db", "provision", "ivydb", "-U", "dbos_admin", "-W", "s3cret-pass")
	must("app", "deploy")

	logs := must("app", "logs")
	for _, stage := range []string{"preinstall", "setup", "migrate"} {
		n := 0
		for line := range strings.Lines(logs) {
			i := strings.Index(line, "attempt: "+stage+" ")
			if i < 0 {
				continue
			}
			line = strings.TrimSpace(line[i:])
			n++
			t.Log(line)
			if strings.Contains(line, "-> ALLOWED") {
				t.Errorf("%s escaped: %s", stage, line)
			}
		}
		if n < 10 {
			t.Errorf("%s reported %d attempts, want 10; logs:\n%s", stage, n, logs)
		}
		for _, p := range []string{"/etc/hangar-escape-" + stage, filepath.Join(h.DataDir, "escape-"+stage), "/usr/hangar-escape-" + stage} {
			if _, err := os.Stat(p); err == nil {
				os.Remove(p)
				t.Errorf("%s wrote %s on the host", stage, p)
			} else {
				t.Logf("attempt: %s writes %s -> host unchanged", stage, p)
			}
		}
	}

	// The seed's setup example: traceroute in the app's executors only.
	out := must("app", "cmd", "--", "traceroute --version")
	if !strings.Contains(out, "traceroute") {
		t.Errorf("traceroute --version in the executor: %q", out)
	}
	if _, err := exec.LookPath("traceroute"); err == nil {
		t.Logf("note: the host has its own traceroute")
	} else {
		t.Logf("setup's apt install traceroute: in the executor (%s), not on the host", strings.TrimSpace(out))
	}
}

// TestIsolation_Databases tries, as a tenant's database admin, to escape
// its managed instance (programs, file functions, granting itself server
// roles, reaching another tenant's instance) and checks that the
// legitimate path works: a client on another host (a network namespace
// on a TEST-NET address, routed locally) connects to the URL `db status`
// gives with sslmode=verify-full and Hangar's CA, while plaintext is
// refused. Each attempt logs its result on a line.
func TestIsolation_Databases(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("needs root: sandboxed instances and network namespaces")
	}
	remote := newRemoteHost(t)
	h := startHangar(t, "--db-host", remote.hostAddr)
	ctx := t.Context()
	c := h.Client(t, h.AddUser(t, "erin"))
	other := h.Client(t, h.AddUser(t, "frank"))
	const pass, otherPass = "erin-pass-1", "frank-pass-1"
	if err := c.ProvisionDB(ctx, "erin", apiclient.ProvisionDBRequest{Name: "erindb", AdminName: "erin_admin", AdminPassword: pass}); err != nil {
		t.Fatal(err)
	}
	if err := other.ProvisionDB(ctx, "frank", apiclient.ProvisionDBRequest{Name: "frankdb", AdminName: "frank_admin", AdminPassword: otherPass}); err != nil {
		t.Fatal(err)
	}
	available := func(c *apiclient.Client, org, name string) apiclient.UserDBInstance {
		var d apiclient.UserDBInstance
		waitFor(t, name+" available", 3*time.Minute, func() bool {
			var err error
			d, err = c.DB(ctx, org, name)
			return err == nil && d.Status == "available"
		})
		return d
	}
	db, otherDB := available(c, "erin", "erindb"), available(other, "frank", "frankdb")

	// The admin's own session, through the relay on the host's loopback, as
	// Hangar and the executors' relays reach the instance.
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://erin_admin:%s@127.0.0.1:%d/postgres?sslmode=disable", pass, db.Port))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	// Hangar's files and the host's, with what they hold ("" for files
	// whose content is not distinctive: only their absence is checked).
	hostFiles := map[string]string{"/etc/shadow": "root:", filepath.Join(h.DataDir, "postgres/data/PG_VERSION"): ""}
	for _, f := range []string{"secrets.key", "ca-key.pem", "postgres.json"} {
		b, err := os.ReadFile(filepath.Join(h.DataDir, f))
		if err != nil {
			t.Fatal(err)
		}
		hostFiles[filepath.Join(h.DataDir, f)] = strings.TrimSpace(string(b))
	}

	t.Run("CopyToProgram", func(t *testing.T) {
		if _, err := conn.Exec(ctx, "CREATE TABLE out (line text)"); err != nil {
			t.Fatal(err)
		}
		var cmd strings.Builder
		for f := range hostFiles {
			fmt.Fprintf(&cmd, "cat %s 2>&1; ", f)
		}
		cmd.WriteString("cat /proc/self/status")
		_, err := conn.Exec(ctx, "COPY out FROM PROGRAM '"+cmd.String()+"' WITH (DELIMITER E'\\x01')")
		if err != nil {
			t.Logf("attempt: COPY … FROM PROGRAM reading host files -> denied: %v", err)
			return
		}
		out := strings.Join(queryStrings(t, conn, "SELECT line FROM out"), "\n")
		for f, content := range hostFiles {
			if content != "" && strings.Contains(out, content) || !strings.Contains(out, "cat: "+f+": No such file or directory") {
				t.Errorf("a program of the admin found %s", f)
			}
		}
		uid := ""
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 && f[0] == "Uid:" {
				uid = f[1]
			}
		}
		if n, err := strconv.Atoi(uid); err != nil || n == 0 || uid == postgresUID(t) {
			t.Errorf("the admin's programs run as uid %q, want a uid of the instance's own", uid)
		}
		t.Logf("attempt: COPY … FROM PROGRAM 'cat <Hangar's files>' -> confined: runs as uid %s, files absent (%s)", uid, firstLine(out))
	})

	t.Run("ReadFile", func(t *testing.T) {
		for f := range hostFiles {
			var s string
			err := conn.QueryRow(ctx, "SELECT pg_read_file($1)", f).Scan(&s)
			if err == nil {
				t.Errorf("pg_read_file(%s) succeeded", f)
				continue
			}
			t.Logf("attempt: pg_read_file(%s) -> denied: %v", f, err)
		}
		root := queryStrings(t, conn, "SELECT pg_ls_dir('/') ORDER BY 1")
		t.Logf("attempt: pg_ls_dir('/') -> confined: the instance's root holds only %v", root)
	})

	t.Run("GrantServerRoles", func(t *testing.T) {
		_, err := conn.Exec(ctx, "GRANT pg_execute_server_program, pg_read_server_files, pg_write_server_files TO erin_admin")
		t.Logf("attempt: GRANT pg_execute_server_program, pg_read_server_files TO erin_admin -> harmless: %s; the admin is already a superuser of its own instance, whose programs and files are confined (above)", errText(err))
	})

	t.Run("OtherInstance", func(t *testing.T) {
		if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS dblink"); err != nil {
			t.Fatalf("create extension dblink: %v", err)
		}
		meta := metadataState(t, h)
		for _, target := range []string{
			fmt.Sprintf("host=127.0.0.1 port=%d user=frank_admin password=%s dbname=postgres", otherDB.Port, otherPass),
			fmt.Sprintf("host=192.0.2.2 port=%d user=frank_admin password=%s dbname=postgres", otherDB.Port, otherPass),
			fmt.Sprintf("host=%s port=%d user=frank_admin password=%s dbname=postgres sslmode=require", remote.hostAddr, otherDB.Port, otherPass),
			fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=hangar", meta.Port, meta.Password),
		} {
			var ok string
			err := conn.QueryRow(ctx, "SELECT dblink_connect('x', $1)", target).Scan(&ok)
			if err == nil {
				conn.Exec(ctx, "SELECT dblink_disconnect('x')")
				t.Errorf("the admin's instance reached %s", redact(target))
				continue
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) {
				err = fmt.Errorf("%s: %s", pgErr.Message, strings.ReplaceAll(strings.TrimSpace(pgErr.Detail), "\n", " "))
			}
			t.Logf("attempt: connect from the instance to %s -> denied: %v", redact(target), err)
		}
	})

	t.Run("PasswordsSealed", func(t *testing.T) {
		meta := metadataState(t, h)
		mc, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres:%s@127.0.0.1:%d/hangar?sslmode=disable", meta.Password, meta.Port))
		if err != nil {
			t.Fatal(err)
		}
		defer mc.Close(context.Background())
		stored := queryStrings(t, mc, "SELECT admin_password FROM db_instances ORDER BY name")
		if len(stored) != 2 {
			t.Fatalf("got %d instance rows, want 2", len(stored))
		}
		for _, s := range stored {
			if !strings.HasPrefix(s, "sealed:") || strings.Contains(s, pass) || strings.Contains(s, otherPass) {
				t.Errorf("admin_password stored as %q, want ciphertext", s)
			}
		}
		t.Logf("metadata database: db_instances.admin_password holds ciphertext only (%s…)", stored[0][:20])
		for f, want := range map[string]os.FileMode{"postgres": 0o700, "postgres.json": 0o600} {
			fi, err := os.Stat(filepath.Join(h.DataDir, f))
			if err != nil || fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, %v; want %v", f, fi.Mode().Perm(), err, want)
			}
		}
	})

	t.Run("RemoteTLS", func(t *testing.T) {
		if db.HostName != remote.hostAddr {
			t.Errorf("db status host = %q, want %q (--db-host)", db.HostName, remote.hostAddr)
		}
		url := fmt.Sprintf("postgres://erin_admin:%s@%s/postgres?sslmode=verify-full&sslrootcert=%s",
			pass, net.JoinHostPort(db.HostName, strconv.Itoa(db.Port)), filepath.Join(h.DataDir, "ca.pem"))
		cfg, err := pgx.ParseConfig(url)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DialFunc = remote.dial
		rc, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatalf("connect from %s with verify-full: %v", remote.clientAddr, err)
		}
		defer rc.Close(context.Background())
		var ssl bool
		var client string
		if err := rc.QueryRow(ctx, "SELECT ssl, host(inet_client_addr()) FROM pg_stat_ssl, inet_client_addr() WHERE pid = pg_backend_pid()").Scan(&ssl, &client); err != nil || !ssl {
			t.Errorf("remote session: ssl %t, %v; want TLS", ssl, err)
		}
		t.Logf("legitimate: pgx from %s to %s:%d with sslmode=verify-full -> connected over TLS", remote.clientAddr, db.HostName, db.Port)

		cfg.TLSConfig, cfg.Fallbacks = nil, nil // sslmode=disable
		if pc, err := pgx.ConnectConfig(ctx, cfg); err == nil {
			pc.Close(ctx)
			t.Error("a plaintext connection from another host was accepted")
		} else {
			t.Logf("attempt: plaintext from %s -> denied: %v", remote.clientAddr, err)
		}
		if psql, err := exec.LookPath("psql"); err == nil {
			out, err := exec.CommandContext(ctx, "ip", "netns", "exec", remote.ns, psql, url, "-Atc", "SELECT 'psql over ' || version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").CombinedOutput()
			if err != nil {
				t.Errorf("psql with verify-full from %s: %v\n%s", remote.clientAddr, err, out)
			}
			t.Logf("legitimate: %s -> %s", filepath.Base(psql), strings.TrimSpace(string(out)))
		}
	})

	// Last: it takes the admin's own instance down, with links planted in
	// its directory to host files that Hangar, as root, writes or opens
	// when it starts the instance again.
	t.Run("SignalEverything", func(t *testing.T) {
		var pgdata string
		if err := conn.QueryRow(ctx, "SHOW data_directory").Scan(&pgdata); err != nil {
			t.Fatal(err)
		}
		inst := filepath.Dir(pgdata)
		// The links point to host files outside the instance's directory:
		// decoys this test makes in a host directory the sandbox sees
		// read-only (cp -s links only to paths it can see), so that a
		// regression damages nothing of this machine.
		decoyDir := "/usr/share/zoneinfo"
		before := map[string]string{}
		var links []string
		for _, link := range []string{filepath.Join(inst, "server.crt"), filepath.Join(inst, "server.key"), filepath.Join(inst, "server.log"), filepath.Join(pgdata, "pg_hba.conf")} {
			decoy := filepath.Join(decoyDir, fmt.Sprintf("hd-decoy-%d-%s", os.Getpid(), filepath.Base(link)))
			if err := os.WriteFile(decoy, []byte("host file "+decoy+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(decoy) })
			before[decoy] = "host file " + decoy + "\n"
			links = append(links, fmt.Sprintf("cp -s --remove-destination %s %s", decoy, link))
		}
		if _, err := conn.Exec(ctx, "COPY (SELECT 1) TO PROGRAM '"+strings.Join(links, " && ")+"'"); err != nil {
			t.Fatalf("plant links: %v", err)
		}
		_, err := conn.Exec(ctx, "COPY (SELECT 1) TO PROGRAM 'kill -9 -1'")
		oc, err2 := pgx.Connect(ctx, fmt.Sprintf("postgres://frank_admin:%s@127.0.0.1:%d/postgres?sslmode=disable", otherPass, otherDB.Port))
		if err2 != nil {
			t.Fatalf("the other tenant's instance after erin's kill -9 -1: %v", err2)
		}
		oc.Close(ctx)
		t.Logf("attempt: COPY … TO PROGRAM 'kill -9 -1' -> confined: %s; only erin's own instance's processes died, frank's still serves, Hangar still runs", errText(err))
		// kill -1 spares the sandbox's init, the postmaster, which then
		// restarts its backends itself: kill it from the host, as a crash
		// would, so that Hangar starts the instance again.
		pid := postmasterPID(t, pgdata)
		if pid <= 1 {
			t.Fatalf("no postmaster found for %s", pgdata)
		}
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "erin's instance restarted by the supervisor", 2*time.Minute, func() bool {
			c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://erin_admin:%s@127.0.0.1:%d/postgres?sslmode=disable", pass, db.Port))
			if err == nil {
				c.Close(ctx)
			}
			return err == nil && postmasterPID(t, pgdata) != pid
		})
		for target, was := range before {
			if b, _ := os.ReadFile(target); string(b) != was {
				t.Errorf("host %s changed after the instance restarted with a link to it", target)
			}
		}
		t.Logf("attempt: server.crt, server.key, server.log and pg_hba.conf replaced by links to host files, then a restart -> denied: the host files are unchanged, the instance serves again")
	})
}

// remoteHost is a network namespace standing for a user's machine: a veth
// pair on a TEST-NET /30, the host's end being the address the host
// serves on. Nothing leaves this machine.
type remoteHost struct {
	ns                   string
	hostAddr, clientAddr string
}

func newRemoteHost(t *testing.T) *remoteHost {
	t.Helper()
	n := os.Getpid() % 10000
	block := 128 + (subnetBase()%32)*4
	r := &remoteHost{
		ns:         fmt.Sprintf("hd-dbs-%d", n),
		hostAddr:   fmt.Sprintf("203.0.113.%d", block+1),
		clientAddr: fmt.Sprintf("203.0.113.%d", block+2),
	}
	hostIf, clientIf := fmt.Sprintf("hdd%dh", n), fmt.Sprintf("hdd%dc", n)
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	t.Cleanup(func() {
		exec.Command("ip", "link", "del", hostIf).Run()
		exec.Command("ip", "netns", "del", r.ns).Run()
	})
	run("ip", "netns", "add", r.ns)
	run("ip", "link", "add", hostIf, "type", "veth", "peer", "name", clientIf)
	run("ip", "link", "set", clientIf, "netns", r.ns)
	run("ip", "addr", "add", r.hostAddr+"/30", "dev", hostIf)
	run("ip", "link", "set", hostIf, "up")
	run("ip", "-n", r.ns, "addr", "add", r.clientAddr+"/30", "dev", clientIf)
	run("ip", "-n", r.ns, "link", "set", clientIf, "up")
	run("ip", "-n", r.ns, "link", "set", "lo", "up")
	// Before sending anything: the route between them is the veth, on this
	// machine.
	for _, check := range [][]string{
		{"ip", "-n", r.ns, "route", "get", r.hostAddr},
		{"ip", "route", "get", r.clientAddr},
	} {
		out, err := exec.Command(check[0], check[1:]...).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "dev hdd") {
			t.Fatalf("%s: %s %v: want a route over the test's veth", strings.Join(check, " "), out, err)
		}
	}
	return r
}

// dial connects from inside the namespace: the socket is made on a thread
// that has joined it.
func (r *remoteHost) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ns, err := os.Open("/run/netns/" + r.ns)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	type result struct {
		c   net.Conn
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		own, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer own.Close()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if unix.Setns(int(own.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- result{c, err}
	}()
	res := <-done
	return res.c, res.err
}

// metadataState reads the embedded metadata cluster's port and password.
func metadataState(t *testing.T, h *Hangar) (st struct {
	Port     int
	Password string
}) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.DataDir, "postgres.json"))
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func queryStrings(t *testing.T, conn *pgx.Conn, sql string) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	ss, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return ss
}

func postgresUID(t *testing.T) string {
	out, _ := exec.Command("id", "-u", "postgres").Output()
	return strings.TrimSpace(string(out))
}

func firstLine(s string) string { l, _, _ := strings.Cut(s, "\n"); return l }

func errText(err error) string {
	if err == nil {
		return "accepted"
	}
	return err.Error()
}

// redact hides the password of a connection string.
func redact(conninfo string) string {
	f := strings.Fields(conninfo)
	for i, kv := range f {
		if strings.HasPrefix(kv, "password=") {
			f[i] = "password=***"
		}
	}
	return strings.Join(f, " ")
}

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
		id, _, _ = strings.Cut(id, "/") // the container's group is inside the executor's
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

// TestIsolation_Stores tries, as tenants, to poison the dependency cache
// (from a build's postinstall script and from a running executor), to get
// another org's cache entry, and to exceed the per-org limits; and checks
// that a failed deploy's archive is deleted. Each attempt logs its result.
func TestIsolation_Stores(t *testing.T) {
	t.Parallel()
	h := startHangar(t, "--org-max-apps", "1", "--org-max-db-instances", "1", "--org-max-executors", "2")
	alice, bob := h.AddUser(t, "alice"), h.AddUser(t, "bob")
	official := func(t *testing.T, dir string, args ...string) string {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code != 0 {
			t.Fatalf("official %s: exit %d\n%s", strings.Join(args, " "), code, out)
		}
		return out
	}
	refused := func(t *testing.T, dir, attempt, want string, args ...string) {
		t.Helper()
		out, code := h.official(t, dir, args...)
		if code == 0 || !strings.Contains(out, want) {
			t.Errorf("attempt: %s -> exit %d, want a refusal naming the limit (%q)\n%s", attempt, code, want, out)
			return
		}
		t.Logf("attempt: %s -> denied (%q)", attempt, want)
	}
	login := func(t *testing.T, dir, refresh string) {
		t.Helper()
		if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
			t.Fatalf("dbos-cloud login: exit %d\n%s", code, out)
		}
	}
	// The app's postinstall reports what its node_modules held before it
	// ran, then poisons express in place. npm echoes the script, so the
	// markers it prints are computed: "$((40+2))" is echoed, "42" printed.
	const probe = "test -e node_modules/express/POISONED && echo CACHE-HELD-BUILD-POISON-$((40+2)); " +
		"test -e node_modules/express/EXECUTOR && echo CACHE-HELD-EXECUTOR-POISON-$((40+2)); " +
		"echo poisoned > node_modules/express/POISONED; echo postinstall-ran-$((40+2))"
	withProbe := func(name string) map[string]func(string) string {
		return map[string]func(string) string{
			"package.json": func(s string) string {
				return strings.Replace(s, `"start": "node app.mjs",`, `"start": "node app.mjs", "postinstall": "`+probe+`",`, 1)
			},
			"dbos-config.yaml": func(s string) string { return strings.Replace(s, "name: greeter", "name: "+name, 1) },
		}
	}
	archives := func(t *testing.T) []string {
		t.Helper()
		zips, err := filepath.Glob(filepath.Join(h.DataDir, "archives", "*.zip"))
		if err != nil {
			t.Fatal(err)
		}
		return zips
	}

	app := fixture(t, "greeter", withProbe("greeter"))
	login(t, app, alice)
	official(t, app, "db", "provision", "appdb", "-U", "dbos_admin", "-W", "s3cret-pass")
	refused(t, app, "a second managed database instance over --org-max-db-instances 1",
		"limit reached: organization alice may have at most 1 managed database instances",
		"db", "provision", "second", "-U", "dbos_admin", "-W", "s3cret-pass")
	official(t, app, "app", "deploy")
	logs := official(t, app, "app", "logs")
	if !strings.Contains(logs, "dependencies not cached yet (cache ") || !strings.Contains(logs, "postinstall-ran-42") {
		t.Fatalf("the first deploy did not fill the cache and run postinstall:\n%s", lastLines(logs, 40))
	}
	kept := archives(t)
	if len(kept) != 1 {
		t.Fatalf("archives after one deploy: %v, want one", kept)
	}

	t.Run("Limits", func(t *testing.T) {
		refused(t, app, "min executors 3 over --org-max-executors 2",
			"limit reached: organization alice may have at most 2 executors", "app", "update", "--min-executors", "3")
		other := fixture(t, "greeter", withProbe("other"))
		login(t, other, alice)
		refused(t, other, "a second app over --org-max-apps 1",
			"limit reached: organization alice may have at most 1 applications", "app", "register", "-d", "appdb")
	})

	t.Run("CachePoisoning", func(t *testing.T) {
		// A running executor rewrites its node_modules in place.
		out, code := h.ours(t, app, "app", "cmd", "echo x > node_modules/express/EXECUTOR && echo wrote || echo refused")
		t.Logf("executor writing node_modules/express: exit %d, %s", code, strings.TrimSpace(out))

		// A deploy that fails (at its migration) after the cache served it.
		failing := fixture(t, "greeter", map[string]func(string) string{
			"package.json":     withProbe("greeter")["package.json"],
			"dbos-config.yaml": func(s string) string { return strings.Replace(s, "node migrate.mjs", "exit 3", 1) },
		})
		login(t, failing, alice)
		if out, code := h.official(t, failing, "app", "deploy"); code == 0 {
			t.Fatalf("a deploy whose migration exits 3 succeeded:\n%s", out)
		}
		if got := archives(t); len(got) != 1 || got[0] != kept[0] {
			t.Errorf("archives after a failed deploy: %v, want only %v", got, kept)
		} else {
			t.Logf("failed deploy's archive deleted: %d archive kept", len(got))
		}

		official(t, app, "app", "deploy")
		logs := official(t, app, "app", "logs")
		if strings.Count(logs, "dependencies unchanged (cache ") < 2 {
			t.Errorf("later deploys of alice did not reuse the cache:\n%s", lastLines(logs, 60))
		}
		for _, poison := range []string{"CACHE-HELD-BUILD-POISON-42", "CACHE-HELD-EXECUTOR-POISON-42"} {
			if strings.Contains(logs, poison) {
				t.Errorf("attempt: poison the cache -> a later deploy saw %s", poison)
			}
		}
		if !t.Failed() {
			t.Logf("attempt: postinstall script rewrites node_modules/express in place -> denied (the next deploys start from the clean install)")
			t.Logf("attempt: running executor rewrites node_modules/express in place -> denied (the next deploys start from the clean install)")
		}

		// Bob deploys the same lockfile: a miss, filled from his own install.
		bobApp := fixture(t, "greeter", withProbe("greeter"))
		login(t, bobApp, bob)
		official(t, bobApp, "db", "provision", "bobdb", "-U", "dbos_admin", "-W", "s3cret-pass")
		official(t, bobApp, "app", "deploy")
		bobLogs := official(t, bobApp, "app", "logs")
		if !strings.Contains(bobLogs, "dependencies not cached yet (cache ") || strings.Contains(bobLogs, "dependencies unchanged (cache ") ||
			strings.Contains(bobLogs, "POISON-42") {
			t.Errorf("attempt: another org deploys the same lockfile -> not a clean miss:\n%s", lastLines(bobLogs, 40))
		} else {
			t.Logf("attempt: another org deploys the same lockfile after alice's poisoning -> denied (a miss, filled from its own clean install)")
		}
		entries, _ := os.ReadDir(filepath.Join(h.DataDir, "cache", "deps", "node"))
		if len(entries) != 2 {
			t.Errorf("node cache partitions: %d, want one per org (2)", len(entries))
		}
	})
}
