package dbinstance_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/dbinstance"
	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster/pgtest"
)

// clock is a settable Config.Now.
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

func adminExec(tb testing.TB, inst hangar.DBInstance, db string, sqls ...string) {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), dbinstance.AdminURL(inst, db))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range sqls {
		if _, err := conn.Exec(tb.Context(), sql); err != nil {
			tb.Fatalf("%s: %v", sql, err)
		}
	}
}

func tableRows(tb testing.TB, inst hangar.DBInstance, db string) []int {
	tb.Helper()
	conn, err := pgx.Connect(tb.Context(), dbinstance.AdminURL(inst, db))
	if err != nil {
		tb.Fatal(err)
	}
	defer conn.Close(context.Background())
	r, err := conn.Query(tb.Context(), "SELECT x FROM t ORDER BY x")
	if err != nil {
		tb.Fatal(err)
	}
	xs, err := pgx.CollectRows(r, pgx.RowTo[int])
	if err != nil {
		tb.Fatal(err)
	}
	return xs
}

func TestManager_Restore(t *testing.T) {
	t.Parallel()
	t.Run("Host", func(t *testing.T) {
		t.Parallel()
		testRestore(t, nil)
	})
	t.Run("Sandbox", func(t *testing.T) {
		t.Parallel()
		testRestore(t, testSandbox(t))
	})
}

// testSandbox returns a sandbox configuration for tests, skipping the test
// without root or runc.
func testSandbox(t *testing.T) *dbinstance.Sandbox {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("sandboxed instances need root")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed")
	}
	dir := t.TempDir()
	prefix := "hd-dbi-" + filepath.Base(filepath.Dir(dir))
	t.Cleanup(func() { // runc leaves the parent cgroup behind
		for _, p := range cgroups(prefix) {
			os.Remove(p)
		}
	})
	return &dbinstance.Sandbox{
		Prefix: prefix, FirstUID: 2098000000 + uint32(os.Getpid()%1000)*100, UIDCount: 100,
		FirstPort: -1, RuncRoot: filepath.Join(dir, "runc"),
	}
}

func testRestore(t *testing.T, sb *dbinstance.Sandbox) {
	pgtest.RequireBinaries(t)
	clk := &clock{}
	m := dbinstance.New(dbinstance.Config{Dir: pgtest.TempDir(t), Settings: map[string]string{"fsync": "off"}, Now: clk.Now, Sandbox: sb})
	t.Cleanup(func() { m.StopAll(context.Background()) })
	ctx := t.Context()
	src := provisionIn(t, m, hangar.DBInstance{ID: "src", Name: "srcdb", AdminUser: "admin", AdminPassword: "old-password"})

	if _, err := m.RestoreWindow(src); hangar.KindOf(err) != hangar.KindUnavailable {
		t.Errorf("RestoreWindow() without backups: %v, want kind %s", err, hangar.KindUnavailable)
	}
	adminExec(t, src, "postgres", "CREATE DATABASE app", "REVOKE ALL ON DATABASE app FROM PUBLIC")
	adminExec(t, src, "app", "CREATE TABLE t (x int)")
	b, err := m.BaseBackup(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	if from, err := m.RestoreWindow(src); err != nil || !from.Equal(b.End) {
		t.Errorf("RestoreWindow() = %v, %v; want %v", from, err, b.End)
	}
	if did, err := m.BackupIfDue(ctx, src); did || err != nil {
		t.Errorf("BackupIfDue() right after a backup = %t, %v; want false", did, err)
	}
	adminExec(t, src, "app", "INSERT INTO t VALUES (1), (2), (3)")
	target := time.Now()
	adminExec(t, src, "app", "INSERT INTO t VALUES (4)", "DELETE FROM t WHERE x = 2")
	if err := m.SetAdminPassword(ctx, src, "new-password"); err != nil {
		t.Fatal(err)
	}
	src.AdminPassword = "new-password"
	adminExec(t, src, "app", "INSERT INTO t VALUES (5)") // the Manager's own connections use it too

	t.Run("BeforeFirstBackup", func(t *testing.T) {
		dst := hangar.DBInstance{ID: "early", Name: "early", AdminUser: "admin", AdminPassword: "new-password"}
		_, err := m.Restore(ctx, src, dst, b.End.Add(-time.Second))
		if hangar.KindOf(err) != hangar.KindInvalid {
			t.Errorf("Restore() before the first backup: %v, want kind %s", err, hangar.KindInvalid)
		}
	})

	dst := hangar.DBInstance{ID: "dst", Name: "dstdb", AdminUser: "admin", AdminPassword: "new-password"}
	t.Cleanup(func() { m.Destroy(context.Background(), dst) })
	if dst.Port, err = m.Restore(ctx, src, dst, target); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]int{1, 2, 3}, tableRows(t, dst, "app")); diff != "" {
		t.Errorf("restored rows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]int{1, 3, 4, 5}, tableRows(t, src, "app")); diff != "" {
		t.Errorf("source rows (-want +got):\n%s", diff)
	}

	t.Run("RestoredInstanceIsManaged", func(t *testing.T) {
		if _, err := m.BaseBackup(ctx, dst); err != nil {
			t.Fatal(err)
		}
		if restarted, err := m.Check(ctx, dst); restarted || err != nil {
			t.Errorf("Check() = %t, %v; want running", restarted, err)
		}
	})

	t.Run("Retention", func(t *testing.T) {
		if _, err := m.BaseBackup(ctx, src); err != nil {
			t.Fatal(err)
		}
		clk.Advance(25 * time.Hour) // both backups are now older than the 24 h window
		if did, err := m.BackupIfDue(ctx, src); !did || err != nil {
			t.Fatalf("BackupIfDue() 25 h later = %t, %v; want a backup", did, err)
		}
		bs, err := m.Backups(src)
		if err != nil || len(bs) != 2 {
			t.Fatalf("Backups() = %v, %v; want the newest before the window and the new one", bs, err)
		}
		from, err := m.RestoreWindow(src)
		if err != nil || from.Equal(b.End) {
			t.Errorf("RestoreWindow() = %v, %v; want after the pruned first backup (%v)", from, err, b.End)
		}
		if _, err := os.Stat(b.Dir); !os.IsNotExist(err) {
			t.Errorf("pruned backup %s: stat error %v, want not exist", b.Dir, err)
		}
	})
}

func TestManager_Check(t *testing.T) {
	t.Parallel()
	m, inst, dir := provision(t)
	ctx := t.Context()
	if restarted, err := m.Check(ctx, inst); restarted || err != nil {
		t.Fatalf("Check() of a running instance = %t, %v; want false, nil", restarted, err)
	}
	pidFile := filepath.Join(dir, inst.ID, "data", "postmaster.pid")
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// The killed postmaster's backends take a moment to exit; until they
	// do, a new postmaster refuses to start.
	deadline := time.Now().Add(30 * time.Second)
	var restarted bool
	for !restarted {
		restarted, err = m.Check(ctx, inst)
		if time.Now().After(deadline) {
			t.Fatalf("Check() did not restart the killed instance: last error %v", err)
		}
	}
	adminExec(t, inst, "postgres", "SELECT 1")

	t.Run("NotProvisioned", func(t *testing.T) {
		other := inst
		other.ID = "never"
		if _, err := m.Check(ctx, other); err == nil || !strings.Contains(err.Error(), "not provisioned") {
			t.Errorf("Check() of an instance never provisioned: %v, want a not provisioned error", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "never")); !os.IsNotExist(err) {
			t.Errorf("Check() created a directory for it: stat error %v", err)
		}
	})
}

// TestManager_MovesIntoSandbox starts an instance made before sandboxes
// (run as postgres on the host) with a sandboxed Manager: it runs in its
// sandbox with its data, as a uid of its own.
func TestManager_MovesIntoSandbox(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	pgtest.RequireBinaries(t)
	dir := pgtest.TempDir(t)
	ctx := t.Context()
	inst := hangar.DBInstance{ID: "legacy", Name: "legacydb", AdminUser: "admin", AdminPassword: "pw-1234567"}
	old := dbinstance.New(dbinstance.Config{Dir: dir, Settings: map[string]string{"fsync": "off"}})
	port, err := old.Provision(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	inst.Port = port
	adminExec(t, inst, "postgres", "CREATE DATABASE kept")
	// The server is left running, as a killed Hangar leaves it.

	m := dbinstance.New(dbinstance.Config{Dir: dir, Settings: map[string]string{"fsync": "off"}, Sandbox: sb})
	t.Cleanup(func() { m.Destroy(context.Background(), inst) })
	if err := m.Start(ctx, inst); err != nil {
		t.Fatal(err)
	}
	var n int
	conn, err := pgx.Connect(ctx, dbinstance.AdminURL(inst, "postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = 'kept'").Scan(&n); err != nil || n != 1 {
		t.Errorf("database kept after the move: %d, %v; want 1", n, err)
	}
	fi, err := os.Stat(filepath.Join(dir, inst.ID, "data"))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fi.Sys().(*syscall.Stat_t).Uid; uid < sb.FirstUID || uid >= sb.FirstUID+uint32(sb.UIDCount) {
		t.Errorf("data dir owned by uid %d after the move, want one of the sandbox range", uid)
	}
}

// TestManager_RenewsCertificate checks that Check gives a running
// sandboxed instance a new certificate once its own is 30 days old, served
// without a restart.
func TestManager_RenewsCertificate(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	pgtest.RequireBinaries(t)
	issued := 0
	sb.Certificate = func() ([]byte, []byte, error) {
		issued++
		return selfSigned(int64(issued))
	}
	clk := &clock{}
	m := dbinstance.New(dbinstance.Config{Dir: pgtest.TempDir(t), Settings: map[string]string{"fsync": "off"}, Sandbox: sb, Now: clk.Now})
	ctx := t.Context()
	inst := provisionIn(t, m, hangar.DBInstance{ID: "tls", Name: "tlsdb", AdminUser: "admin", AdminPassword: "pw-1234567"})
	port := inst.Port
	serial := func() int64 {
		t.Helper()
		cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://admin:pw-1234567@127.0.0.1:%d/postgres?sslmode=require", port))
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		cfg.TLSConfig.VerifyConnection = func(cs tls.ConnectionState) error {
			got = cs.PeerCertificates[0].SerialNumber.Int64()
			return nil
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		conn.Close(ctx)
		return got
	}
	if got := serial(); got != 1 {
		t.Fatalf("serial of the served certificate = %d, want 1", got)
	}
	if _, err := m.Check(ctx, inst); err != nil || serial() != 1 {
		t.Errorf("Check() right away: %v; want the same certificate", err)
	}
	clk.Advance(31 * 24 * time.Hour)
	if restarted, err := m.Check(ctx, inst); restarted || err != nil {
		t.Fatalf("Check() 31 days later = %t, %v; want false, nil", restarted, err)
	}
	if got := serial(); got != 2 {
		t.Errorf("serial of the served certificate 31 days later = %d, want 2", got)
	}
}

// selfSigned returns a PEM certificate for 127.0.0.1 with serial, and its key.
func selfSigned(serial int64) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:   time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, err
	}
	k, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k}), nil
}

// TestManager_StopAllDuringBackup checks that StopAll, called while a base
// backup runs, returns only once the backup's container is gone: a server
// that exits right after it must not leave the container or its cgroup.
func TestManager_StopAllDuringBackup(t *testing.T) {
	t.Parallel()
	sb := testSandbox(t)
	pgtest.RequireBinaries(t)
	m := dbinstance.New(dbinstance.Config{Dir: pgtest.TempDir(t), Settings: map[string]string{"fsync": "off"}, Sandbox: sb})
	ctx := t.Context()
	inst := provisionIn(t, m, hangar.DBInstance{ID: "busy", Name: "busydb", AdminUser: "admin", AdminPassword: "pw-1234567"})
	// Enough data that the backup is still copying when StopAll comes.
	adminExec(t, inst, "postgres", "CREATE TABLE filler AS SELECT repeat('x', 1000) AS s FROM generate_series(1, 200000)")

	backup := filepath.Join(sb.Prefix, sb.Prefix+"-"+inst.ID+"-pg_basebackup")
	// A server that shuts down cancels the backup's context as it stops
	// the instances.
	bctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { _, err := m.BaseBackup(bctx, inst); done <- err }()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Millisecond) {
		if len(cgroups(backup)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the backup's container did not start within 30s")
		}
	}
	cancel()
	if err := m.StopAll(ctx); err != nil {
		t.Fatal(err)
	}
	if left := cgroups(sb.Prefix); len(left) > 0 {
		t.Errorf("cgroups left after StopAll: %v", left)
	}
	if err := <-done; err == nil {
		t.Log("the backup finished before its server stopped")
	}
}

// provisionIn provisions inst with m, for the test's length (its
// cleanup destroys it), and returns it with its port.
func provisionIn(t *testing.T, m *dbinstance.Manager, inst hangar.DBInstance) hangar.DBInstance {
	t.Helper()
	port, err := m.Provision(t.Context(), inst)
	if err != nil {
		t.Fatal(err)
	}
	inst.Port = port
	t.Cleanup(func() { m.Destroy(context.Background(), inst) })
	return inst
}

// cgroups returns the directories of cgroup path in every v1 hierarchy,
// or in the unified one.
func cgroups(path string) []string {
	v1, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", path))
	v2, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", path))
	return append(v1, v2...)
}
