package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
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
)

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
