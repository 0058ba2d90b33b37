package dbinstance

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/pgcluster"
	"github.com/hangar-oss/hangar/internal/relay"
)

// Sandbox runs each managed instance in a sandbox of its own
// (pgcluster.Sandbox): its own uid, its own file system view and network,
// cgroup limits. Its port then serves two ways: on loopback, Hangar and
// the executors' relays reach the server's Unix socket (passwords, no
// TLS); on any other address, users reach the server's TLS listener inside
// the sandbox, where PostgreSQL itself does TLS and scram-sha-256.
type Sandbox struct {
	// Prefix names the instances' containers (<Prefix>-<instance ID>) and
	// their cgroup parent (/<Prefix>). Default "hangar-db".
	Prefix string
	// FirstUID and UIDCount are the range of uids the instances run as,
	// one each, recorded as the owner of the instance's directory. Uids
	// with a host /etc/passwd entry are skipped. Default 2000000000 and
	// 100000.
	FirstUID uint32
	UIDCount int
	// MemoryBytes, CPUs and Pids limit each instance. Defaults: see
	// pgcluster.Sandbox.
	MemoryBytes int64
	CPUs        float64
	Pids        int64
	// Listen is the host address the instances' ports listen on. Default
	// "": every address.
	Listen string
	// FirstPort and PortCount are the range new instances' ports come
	// from. Default 15432 and 1000; FirstPort -1 takes any free port
	// (tests).
	FirstPort, PortCount int
	// MaxConnsPerIP caps the connections open from one client IP address
	// to the instances' ports, all of them together; a connection over
	// the cap is closed on accept. Loopback (Hangar, the executors'
	// relays) is not counted. Default 64; negative means no cap.
	MaxConnsPerIP int
	// Certificate returns the PEM certificate (with its chain) and key the
	// instances serve TLS with; it is called on every start. Default nil:
	// no TLS, and so no connection from other hosts at all.
	Certificate func() (certPEM, keyPEM []byte, err error)
	// RuncRoot is runc's state directory. Default: pgcluster's.
	RuncRoot string
}

func (s *Sandbox) defaults() {
	if s.Prefix == "" {
		s.Prefix = "hangar-db"
	}
	if s.FirstUID == 0 {
		s.FirstUID = 2000000000
	}
	if s.UIDCount == 0 {
		s.UIDCount = 100000
	}
	if s.FirstPort == 0 {
		s.FirstPort = 15432
	}
	if s.PortCount == 0 {
		s.PortCount = 1000
	}
	if s.MaxConnsPerIP == 0 {
		s.MaxConnsPerIP = 64
	}
}

// tlsRenewAfter is the age at which a running instance's certificate is
// replaced: the local CA's leaves last 90 days.
const tlsRenewAfter = 30 * 24 * time.Hour

// renewTLS gives a running sandboxed instance a new certificate once its
// own is tlsRenewAfter old; Check calls it, so the supervisor renews them.
func (m *Manager) renewTLS(ctx context.Context, c *pgcluster.Cluster, inst hangar.DBInstance) error {
	sb := m.cfg.Sandbox
	if sb == nil || sb.Certificate == nil {
		return nil
	}
	written, err := c.TLSWritten()
	if err == nil && m.cfg.Now().Sub(written) < tlsRenewAfter {
		return nil
	}
	cert, key, err := sb.Certificate()
	if err == nil {
		err = c.SetTLS(ctx, cert, key)
	}
	if err != nil {
		return err
	}
	m.log.InfoContext(ctx, "renewed certificate", "dbinstance", inst.ID)
	return nil
}

// bundleDir holds the sandbox's bundles, out of the instance's own reach.
func (m *Manager) bundleDir(inst hangar.DBInstance) string {
	return filepath.Join(m.cfg.Dir, ".sandbox", inst.ID)
}

// uidFor returns the uid of inst, allocating the lowest free one of the
// range when its directory is new. An instance made before sandboxes (its
// directory owned by another uid, typically postgres) is stopped and
// handed to a new uid.
func (m *Manager) uidFor(ctx context.Context, inst hangar.DBInstance) (uint32, error) {
	sb := m.cfg.Sandbox
	inRange := func(uid uint32) bool { return uid >= sb.FirstUID && uid-sb.FirstUID < uint32(sb.UIDCount) }
	m.uidMu.Lock()
	defer m.uidMu.Unlock()
	dir := m.dir(inst)
	owner, err := ownerOf(dir)
	switch {
	case err == nil && inRange(owner):
		return owner, nil
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return 0, err
	}
	used := map[uint32]bool{}
	entries, err := os.ReadDir(m.cfg.Dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, err
	}
	for _, de := range entries {
		if o, err := ownerOf(filepath.Join(m.cfg.Dir, de.Name())); err == nil {
			used[o] = true
		}
	}
	var uid uint32
	for i := range sb.UIDCount {
		u := sb.FirstUID + uint32(i)
		if _, err := user.LookupId(strconv.FormatUint(uint64(u), 10)); !used[u] && err != nil {
			uid = u
			break
		}
	}
	if uid == 0 {
		return 0, hangar.Errorf(hangar.KindUnavailable, "no free uid left for database instances")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	if owner, err := ownerOf(dir); err == nil && owner != 0 {
		// Made before sandboxes: stop its server, then give it the new uid.
		if err := m.stopUnsandboxed(ctx, inst); err != nil {
			return 0, fmt.Errorf("move database instance %s into a sandbox: %w", inst.ID, err)
		}
		m.log.InfoContext(ctx, "moving database instance into a sandbox", "dbinstance", inst.ID, "uid", uid)
		err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			return os.Lchown(path, int(uid), int(uid))
		})
		if err != nil {
			return 0, err
		}
	}
	return uid, os.Chown(dir, int(uid), int(uid))
}

// stopUnsandboxed stops a server of inst run the way Hangar ran them
// before sandboxes (as RunAsUser, on loopback).
func (m *Manager) stopUnsandboxed(ctx context.Context, inst hangar.DBInstance) error {
	if _, err := os.Stat(filepath.Join(m.dir(inst), "data", "PG_VERSION")); err != nil {
		return nil
	}
	c, err := pgcluster.New(pgcluster.Config{
		DataDir: m.dir(inst), Port: max(inst.Port, 1), Superuser: "postgres", Password: "unused",
		RunAsUser: m.cfg.RunAsUser,
	})
	if err != nil {
		return err
	}
	return c.Stop(ctx)
}

func ownerOf(path string) (uint32, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("no owner for %s", path)
	}
	return st.Uid, nil
}

// sandboxed returns the pgcluster sandbox of inst, run as uid.
func (m *Manager) sandboxed(inst hangar.DBInstance, uid uint32) *pgcluster.Sandbox {
	sb := m.cfg.Sandbox
	return &pgcluster.Sandbox{
		ID: sb.Prefix + "-" + inst.ID, UID: uid, GID: uid,
		BundleDir: m.bundleDir(inst), CgroupParent: "/" + sb.Prefix,
		MemoryBytes: sb.MemoryBytes, CPUs: sb.CPUs, Pids: sb.Pids, RuncRoot: sb.RuncRoot,
	}
}

// listenPort opens inst's port: port when non-zero, else the first free
// one of the range. Its listeners share the per-client cap.
func (m *Manager) listenPort(port int) ([]net.Listener, error) {
	lns, err := m.openPort(port)
	for i, ln := range lns {
		lns[i] = m.perIP.Limit(ln, netip.Addr.IsLoopback)
	}
	return lns, err
}

func (m *Manager) openPort(port int) ([]net.Listener, error) {
	sb := m.cfg.Sandbox
	if port != 0 {
		return listenBoth(sb.Listen, port)
	}
	if sb.FirstPort < 0 {
		return listenBoth(sb.Listen, 0)
	}
	for p := sb.FirstPort; p < sb.FirstPort+sb.PortCount && p <= 65535; p++ {
		if lns, err := listenBoth(sb.Listen, p); err == nil {
			return lns, nil
		}
	}
	return nil, hangar.Errorf(hangar.KindUnavailable, "no free port left for database instances in %d-%d", sb.FirstPort, sb.FirstPort+sb.PortCount-1)
}

// listenBoth listens on host:port and, unless host is a wildcard that
// covers it, on 127.0.0.1 at the same port.
func listenBoth(host string, port int) ([]net.Listener, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	lns := []net.Listener{ln}
	if ip := net.ParseIP(host); host != "" && !ip.IsUnspecified() && !ip.IsLoopback() {
		port = ln.Addr().(*net.TCPAddr).Port
		lo, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			ln.Close()
			return nil, err
		}
		lns = append(lns, lo)
	}
	return lns, nil
}

// endpoint serves an instance's port. A connection to a loopback address
// comes from this host (Hangar, the executors' relays) and goes to the
// server's Unix socket, unless it asks for TLS; any other goes to the
// server's TCP listener inside its sandbox, which accepts TLS only.
func startEndpoint(lns []net.Listener, socket string, dial func(context.Context) (net.Conn, error), log *slog.Logger) *relay.Server {
	return relay.Start(lns, func(ctx context.Context, in net.Conn) (net.Conn, error) {
		var out net.Conn
		var err error
		first, local := isLocal(in)
		if local {
			var d net.Dialer
			out, err = d.DialContext(ctx, "unix", socket)
		} else {
			out, err = dial(ctx)
		}
		if err == nil && len(first) > 0 {
			_, err = out.Write(first)
		}
		// The server is down or starting: the client sees a closed
		// connection.
		return out, err
	}, log)
}

// sslRequest is the message a PostgreSQL client opens a TLS session with.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// isLocal reports whether in goes to the Unix socket: it comes over
// loopback, from this host, and does not open with an SSLRequest (which
// goes to the TLS listener, so that verify-full works on this host too).
// first is what it read of in to tell.
func isLocal(in net.Conn) (first []byte, local bool) {
	if a, ok := in.LocalAddr().(*net.TCPAddr); !ok || !a.IP.IsLoopback() {
		return nil, false
	}
	first = make([]byte, len(sslRequest))
	in.SetReadDeadline(time.Now().Add(30 * time.Second))
	n, _ := io.ReadFull(in, first)
	in.SetReadDeadline(time.Time{})
	first = first[:n]
	return first, string(first) != string(sslRequest)
}
