// Package pgcluster runs one PostgreSQL cluster from the machine's own
// binaries (initdb, pg_ctl): it initializes the data directory on first start
// with password (SCRAM) authentication, starts and stops the server, adopts a
// server left running by a previous process, and runs everything as an
// unprivileged OS user when Hangar runs as root. For point-in-time recovery
// it archives WAL continuously (Config.ArchiveDir), takes base backups
// (pg_basebackup) and recovers a new cluster from a backup and an archive to
// a point in time.
//
// It is a leaf: it imports only internal/hangar. dbinstance builds managed
// database instances on it, and pgcluster/pgtest gives tests a server;
// only those and the composition roots (the metadata cluster) import it.
package pgcluster

// size: the cluster's lifecycle (init, start, adopt, stop) under Cluster.mu; candidates to split: configuration files.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/hangar-oss/hangar/internal/hangar"
)

// Config describes one cluster.
type Config struct {
	// BinDir holds initdb, pg_ctl and postgres. Default: the newest
	// /usr/lib/postgresql/<version>/bin, else the directory of pg_ctl on PATH.
	BinDir string
	// DataDir is required. The cluster lives in it: PGDATA is DataDir/data,
	// and the Unix socket and server.log sit in DataDir itself.
	DataDir string
	// Port is the TCP port to listen on; required (see FreePort).
	Port int
	// ListenAddresses is postgres's listen_addresses. Default "127.0.0.1".
	ListenAddresses string
	// Superuser is the bootstrap superuser's name. Default "postgres".
	Superuser string
	// Password is the superuser's password; required. Every connection,
	// TCP or Unix socket, authenticates with scram-sha-256.
	Password string
	// RunAsUser is the OS user that runs initdb, pg_ctl and postgres.
	// Default: the current user, or "postgres" when running as root
	// (postgres refuses to run as root). Only root may name another user.
	RunAsUser string
	// Settings are extra server settings passed as -c name=value, for example
	// fsync=off in tests. Default none. port, listen_addresses and
	// unix_socket_directories are set from the fields above and are refused here.
	Settings map[string]string
	// ArchiveDir, when set, turns on continuous WAL archiving: the server
	// copies every completed WAL segment into it (gzip-compressed when gzip
	// is installed), which BaseBackup and Recover build point-in-time
	// recovery on. It is created, owned by RunAsUser, on Start. Default "":
	// no archiving.
	ArchiveDir string
	// ArchiveTimeout makes the server switch to a new WAL segment, and so
	// archive the current one, after this long with writes: it bounds how
	// far behind the archive runs. Only with ArchiveDir. Default 1 minute.
	ArchiveTimeout time.Duration
	// Sandbox, when set, runs the cluster's programs in a container of
	// their own (see Sandbox), as Sandbox.UID instead of RunAsUser, which
	// must then be empty. The server listens on port 5432 of its own
	// network (Port is ignored), is reached through its Unix socket (URL)
	// or Dial, and pg_hba.conf, rewritten on every start, allows password
	// logins over the socket and TLS connections over TCP, nothing else.
	// Default nil: the programs run on the host.
	Sandbox *Sandbox
	// TLSCert and TLSKey, PEM-encoded, turn on the server's TLS (written
	// to DataDir on every start, so a renewed certificate is served after
	// a restart). Default none: no TLS.
	TLSCert, TLSKey []byte
	// Logger receives lifecycle events. Default: discard.
	Logger *slog.Logger
}

// Cluster is one PostgreSQL cluster. Its methods are safe for concurrent use.
type Cluster struct {
	cfg  Config
	as   *runUser // nil: run as the current user
	jail *jail    // nil: run on the host
	run  runner
	// gone waits until a stopped postmaster that is not our child has
	// exited; tests substitute it along with run.
	gone func(ctx context.Context, pid int, timeout time.Duration) error
	log  *slog.Logger
	host string // host part of URL
	// archive holds the server settings that turn on WAL archiving (none
	// without Config.ArchiveDir); gzip is the gzip program, "" when absent.
	archive map[string]string
	gzip    string

	mu sync.Mutex
	// pid is the postmaster this Cluster started or adopted; exited is closed
	// once it has been reaped, or nil when it is not our child.
	pid    int
	exited <-chan struct{}
}

// Unix socket paths are limited to 107 bytes (sun_path) on Linux.
const maxSocketPath = 107

var settingNameRE = regexp.MustCompile(`^[a-z][a-z0-9_.]*$`)

// New validates cfg and resolves its defaults.
// size: one check or default per Config field.
func New(cfg Config) (*Cluster, error) {
	if cfg.DataDir == "" {
		return nil, errors.New("pgcluster: DataDir is required")
	}
	dir, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: data dir: %w", err)
	}
	cfg.DataDir = dir
	if cfg.Sandbox != nil {
		if cfg.RunAsUser != "" {
			return nil, errors.New("pgcluster: RunAsUser and Sandbox exclude each other")
		}
		cfg.Port, cfg.ListenAddresses = sandboxPort, "127.0.0.1"
	}
	if (len(cfg.TLSCert) == 0) != (len(cfg.TLSKey) == 0) {
		return nil, errors.New("pgcluster: TLSCert and TLSKey go together")
	}
	if cfg.Port <= 0 || cfg.Port > 65535 {
		return nil, fmt.Errorf("pgcluster: invalid port %d", cfg.Port)
	}
	if sock := filepath.Join(dir, ".s.PGSQL."+strconv.Itoa(cfg.Port)); len(sock) > maxSocketPath {
		return nil, fmt.Errorf("pgcluster: data dir %s is too long: its socket path must fit in %d bytes", dir, maxSocketPath)
	}
	if cfg.Password == "" {
		return nil, errors.New("pgcluster: Password is required")
	}
	if strings.ContainsAny(cfg.Password, "\x00\r\n") {
		// initdb --pwfile reads one line.
		return nil, errors.New("pgcluster: Password must not contain NUL or line breaks")
	}
	if cfg.Superuser == "" {
		cfg.Superuser = "postgres"
	}
	if err := hangar.ValidatePGIdent("superuser name", cfg.Superuser); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if cfg.ListenAddresses == "" {
		cfg.ListenAddresses = "127.0.0.1"
	}
	for name := range cfg.Settings {
		switch {
		case !settingNameRE.MatchString(name):
			return nil, fmt.Errorf("pgcluster: invalid setting name %q", name)
		case name == "port" || name == "listen_addresses" || name == "unix_socket_directories":
			return nil, fmt.Errorf("pgcluster: setting %s comes from Config, not Settings", name)
		case cfg.ArchiveDir != "" && (strings.HasPrefix(name, "archive_") || strings.HasPrefix(name, "recovery_") || name == "restore_command"):
			return nil, fmt.Errorf("pgcluster: setting %s comes from Config.ArchiveDir, not Settings", name)
		}
	}
	gzip, _ := exec.LookPath("gzip")
	var archive map[string]string
	if cfg.ArchiveDir != "" {
		if cfg.ArchiveDir, err = filepath.Abs(cfg.ArchiveDir); err != nil {
			return nil, fmt.Errorf("pgcluster: archive dir: %w", err)
		}
		if cfg.ArchiveTimeout == 0 {
			cfg.ArchiveTimeout = time.Minute
		}
		if cfg.ArchiveTimeout < time.Second {
			return nil, fmt.Errorf("pgcluster: ArchiveTimeout %v is under a second", cfg.ArchiveTimeout)
		}
		archive = archiveSettings(cfg.ArchiveDir, gzip, cfg.ArchiveTimeout)
	}
	if cfg.BinDir == "" {
		if cfg.BinDir, err = DefaultBinDir(); err != nil {
			return nil, err
		}
	}
	for _, prog := range []string{"initdb", "pg_ctl"} {
		if _, err := os.Stat(filepath.Join(cfg.BinDir, prog)); err != nil {
			return nil, fmt.Errorf("pgcluster: %s not in bin dir: %w", prog, err)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Cluster{
		cfg:     cfg,
		gone:    waitGone,
		log:     log.With("component", "pgcluster", "data_dir", dir, "port", cfg.Port),
		host:    urlHost(cfg.ListenAddresses),
		archive: archive,
		gzip:    gzip,
	}
	if cfg.Sandbox != nil {
		if c.jail, err = newJail(*cfg.Sandbox, dir, cfg.BinDir); err != nil {
			return nil, fmt.Errorf("pgcluster: %w", err)
		}
		c.as = &runUser{name: fmt.Sprintf("uid %d", cfg.Sandbox.UID), uid: cfg.Sandbox.UID, gid: cfg.Sandbox.GID}
		c.run = c.jail.run
		c.host = dir // the Unix socket
		return c, nil
	}
	if c.as, err = resolveRunUser(cfg.RunAsUser); err != nil {
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	if c.as != nil {
		c.cfg.RunAsUser = c.as.name
	}
	c.run = execRunner(c.as)
	return c, nil
}

// DefaultBinDir returns the default Config.BinDir: the newest
// /usr/lib/postgresql/<version>/bin (the Debian and Ubuntu layout), else the
// directory of pg_ctl on PATH.
func DefaultBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl")
	best, bestVer := "", -1.0
	for _, p := range dirs {
		bin := filepath.Dir(p)
		v, err := strconv.ParseFloat(filepath.Base(filepath.Dir(bin)), 64)
		if err == nil && v > bestVer {
			best, bestVer = bin, v
		}
	}
	if best != "" {
		return best, nil
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no PostgreSQL binaries found in /usr/lib/postgresql/*/bin or on PATH")
}

// runUser is an OS user other than the current one that the server runs as.
type runUser struct {
	name     string
	uid, gid uint32
	groups   []uint32
}

// resolveRunUser applies the RunAsUser default and returns nil when commands
// run as the current user.
func resolveRunUser(name string) (*runUser, error) {
	if os.Geteuid() != 0 {
		if name == "" {
			return nil, nil
		}
		cur, err := user.Current()
		if err != nil {
			return nil, fmt.Errorf("current user: %w", err)
		}
		if name != cur.Username {
			return nil, fmt.Errorf("running as %s: only root can run PostgreSQL as OS user %s", cur.Username, name)
		}
		return nil, nil
	}
	if name == "" {
		name = "postgres"
	}
	u, err := user.Lookup(name)
	if err != nil {
		return nil, fmt.Errorf("look up OS user to run PostgreSQL as: %w", err)
	}
	if u.Uid == "0" {
		return nil, fmt.Errorf("PostgreSQL refuses to run as root: set RunAsUser to an unprivileged OS user (such as postgres), not %s", name)
	}
	as := &runUser{name: name}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	gids, err3 := u.GroupIds()
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, fmt.Errorf("OS user %s: %w", name, err)
	}
	as.uid, as.gid = uint32(uid), uint32(gid)
	for _, g := range gids {
		if n, err := strconv.ParseUint(g, 10, 32); err == nil {
			as.groups = append(as.groups, uint32(n))
		}
	}
	return as, nil
}

// urlHost picks the address URL connects to: the first listen address, with
// wildcards mapped to loopback.
func urlHost(listen string) string {
	first, _, _ := strings.Cut(listen, ",")
	switch first = strings.TrimSpace(first); first {
	case "*", "0.0.0.0":
		return "127.0.0.1"
	case "::":
		return "::1"
	}
	return first
}

// Port returns the TCP port the cluster listens on.
func (c *Cluster) Port() int { return c.cfg.Port }

// ArchiveDir returns Config.ArchiveDir, made absolute.
func (c *Cluster) ArchiveDir() string { return c.cfg.ArchiveDir }

// SetPassword changes the superuser password that URL and BaseBackup use,
// after it was changed in the server (ALTER ROLE).
func (c *Cluster) SetPassword(password string) error {
	if password == "" || strings.ContainsAny(password, "\x00\r\n") {
		return errors.New("pgcluster: password must be non-empty, without NUL or line breaks")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cfg.Password = password
	return nil
}

// Running reports whether the server is running on Config.Port.
func (c *Cluster) Running(ctx context.Context) (bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pid, port, err := c.postmaster(ctx)
	if err != nil {
		return false, err
	}
	if pid != 0 {
		c.track(pid)
	}
	return pid != 0 && port == c.cfg.Port, nil
}

// URL returns the superuser's connection URL for database.
func (c *Cluster) URL(database string) string {
	c.mu.Lock()
	password := c.cfg.Password
	c.mu.Unlock()
	return c.url(database, password)
}

func (c *Cluster) url(database, password string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(c.cfg.Superuser, password),
		Host:     net.JoinHostPort(c.host, strconv.Itoa(c.cfg.Port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	if c.jail != nil {
		u.Host = ""
		u.RawQuery = url.Values{"host": {c.host}, "port": {strconv.Itoa(c.cfg.Port)}, "sslmode": {"disable"}}.Encode()
	}
	return u.String()
}

// FreePort returns a TCP port that is free on 127.0.0.1 right now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func (c *Cluster) pgdata() string  { return filepath.Join(c.cfg.DataDir, "data") }
func (c *Cluster) logFile() string { return filepath.Join(c.cfg.DataDir, "server.log") }

func (c *Cluster) initialized() bool {
	_, err := os.Stat(filepath.Join(c.pgdata(), "PG_VERSION"))
	return err == nil
}

// Start initializes the cluster when DataDir/data holds none, then starts the
// server and waits until it accepts connections. A server still running from
// an earlier process is adopted when it listens on Config.Port and restarted
// otherwise. Start is idempotent.
func (c *Cluster) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.prepareDir(); err != nil {
		return err
	}
	if err := c.prepareArchiveDir(); err != nil {
		return err
	}
	pid, port, err := c.postmaster(ctx)
	if err != nil {
		return err
	}
	if pid != 0 {
		if port == c.cfg.Port {
			if pid != c.pid {
				c.log.InfoContext(ctx, "adopted running postgres", "pid", pid)
			}
			c.track(pid)
			return nil
		}
		c.track(pid)
		c.log.InfoContext(ctx, "restarting postgres running on another port", "pid", pid, "old_port", port)
		if err := c.stop(ctx); err != nil {
			return err
		}
	}
	if !c.initialized() {
		if err := c.initdb(ctx); err != nil {
			return err
		}
	}
	if c.jail != nil {
		if err := c.writeFile(filepath.Join(c.pgdata(), "pg_hba.conf"), sandboxHBA, 0o600); err != nil {
			return fmt.Errorf("write pg_hba.conf: %w", err)
		}
	}
	if err := c.startServer(ctx, nil); err != nil {
		return err
	}
	if pid, err = c.serverPID(ctx); err != nil {
		return err
	}
	c.track(pid)
	c.log.InfoContext(ctx, "started postgres", "pid", pid)
	return nil
}

// startServer runs pg_ctl start (or the sandbox's container) with extra
// settings for this start only, and waits until the server accepts
// connections.
func (c *Cluster) startServer(ctx context.Context, extra map[string]string) error {
	if err := c.writeTLS(); err != nil {
		return err
	}
	if c.jail != nil {
		// A stale file could say "ready" before the new server rewrites it.
		c.inDataDir(filepath.Join(c.pgdata(), "postmaster.pid"), func(r *os.Root, rel string) error { return r.Remove(rel) })
		args := []string{filepath.Join(c.cfg.BinDir, "postgres"), "-D", c.pgdata()}
		for _, s := range c.settings(extra) {
			args = append(args, "-c", s)
		}
		if err := c.jail.start(ctx, args, c.logFile()); err != nil {
			return fmt.Errorf("start postgres: %w\nserver log:\n%s", err, c.logTail())
		}
		return c.waitReady(ctx)
	}
	if out, err := c.pgctl(ctx, "start", "-w", "-l", c.logFile(), "-o", c.serverOptions(extra)); err != nil {
		return fmt.Errorf("start postgres on port %d: %w\n%s\nserver log:\n%s", c.cfg.Port, err, out, c.logTail())
	}
	return nil
}

// serverPID returns the PID of the running server as the host sees it.
func (c *Cluster) serverPID(ctx context.Context) (int, error) {
	if c.jail != nil {
		pid, err := c.jail.state(ctx)
		if err == nil && pid == 0 {
			err = errors.New("postgres is not running")
		}
		return pid, err
	}
	pid, _, err := c.readPIDFile()
	return pid, err
}

// Stop stops the server (fast shutdown: clients are disconnected) and waits
// for it to exit. It returns nil when the server is not running.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	pid, _, err := c.postmaster(ctx)
	if err != nil || pid == 0 {
		return err
	}
	c.track(pid)
	return c.stop(ctx)
}

// stop stops the tracked running postmaster.
func (c *Cluster) stop(ctx context.Context) error {
	if c.jail != nil {
		// SIGINT: fast shutdown, as pg_ctl stop -m fast.
		if err := c.jail.signal(ctx, "INT"); err != nil {
			return fmt.Errorf("stop postgres: %w", err)
		}
	} else if out, err := c.pgctl(ctx, "stop", "-m", "fast", "-w"); err != nil {
		return fmt.Errorf("stop postgres: %w\n%s", err, out)
	}
	if c.exited != nil {
		select {
		case <-c.exited:
		case <-ctx.Done():
			return fmt.Errorf("stop postgres: wait for exit: %w", ctx.Err())
		}
	} else if c.pid != 0 {
		// pg_ctl returns once postmaster.pid is gone, which the postmaster
		// removes just before it exits: wait for the exit itself.
		timeout := 10 * time.Second
		if c.jail != nil {
			timeout = time.Minute // no pg_ctl waited for the shutdown checkpoint
		}
		if err := c.gone(ctx, c.pid, timeout); err != nil {
			return fmt.Errorf("stop postgres: %w", err)
		}
	}
	if c.jail != nil {
		c.jail.remove(ctx, c.jail.sb.ID)
	}
	c.log.InfoContext(ctx, "stopped postgres", "pid", c.pid)
	c.pid, c.exited = 0, nil
	return nil
}

// track remembers pid as our postmaster and, when pid is our child (pg_ctl
// exited and the postmaster was reparented to this process, as happens when
// it is PID 1 or a subreaper), reaps it when it exits so it never lingers as
// a zombie.
func (c *Cluster) track(pid int) {
	if pid != c.pid {
		c.pid, c.exited = pid, reap(pid)
	}
}

// postmaster returns the running postmaster's PID and port, or pid 0 when
// the server is not running.
func (c *Cluster) postmaster(ctx context.Context) (pid, port int, err error) {
	if !c.initialized() {
		return 0, 0, nil
	}
	if c.jail != nil {
		pid, err := c.jail.state(ctx)
		return pid, c.cfg.Port, err
	}
	out, err := c.pgctl(ctx, "status")
	if code, ok := exitCode(err); ok && code == 3 { // pg_ctl status: not running
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("postgres status: %w\n%s", err, out)
	}
	return c.readPIDFile()
}

// readPIDFile reads the PID (line 1) and port (line 4) from postmaster.pid.
func (c *Cluster) readPIDFile() (pid, port int, err error) {
	b, err := os.ReadFile(filepath.Join(c.pgdata(), "postmaster.pid"))
	if err != nil {
		return 0, 0, fmt.Errorf("read postmaster.pid: %w", err)
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) >= 4 {
		pid, err = strconv.Atoi(strings.TrimSpace(lines[0]))
		if err == nil {
			port, err = strconv.Atoi(strings.TrimSpace(lines[3]))
		}
	}
	if len(lines) < 4 || err != nil || pid <= 0 {
		return 0, 0, fmt.Errorf("malformed postmaster.pid %q", b)
	}
	return pid, port, nil
}

// prepareDir creates DataDir and, when running PostgreSQL as another user,
// hands it to that user and checks that the user can reach it.
func (c *Cluster) prepareDir() error {
	dir := c.cfg.DataDir
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("create data dir: %w", err)
	}
	// Only the server's own uid (and root) may read its logs, its socket
	// and whatever else lands beside PGDATA.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if c.as == nil {
		return nil
	}
	if err := os.Chown(dir, int(c.as.uid), int(c.as.gid)); err != nil {
		return fmt.Errorf("chown data dir to %s: %w", c.as.name, err)
	}
	if c.jail != nil {
		return nil // the sandbox mounts DataDir itself
	}
	if err := reachable(filepath.Dir(dir), c.as); err != nil {
		return err
	}
	return nil
}

// prepareArchiveDir creates the WAL archive, writable by the server.
func (c *Cluster) prepareArchiveDir() error {
	if c.cfg.ArchiveDir == "" {
		return nil
	}
	return c.mkdirOwned(c.cfg.ArchiveDir)
}

// mkdirOwned creates dir (and its parents) and gives it to the user
// PostgreSQL runs as, who must reach it.
func (c *Cluster) mkdirOwned(dir string) error {
	if c.jail != nil {
		return c.inDataDir(dir, func(r *os.Root, rel string) error {
			if err := r.MkdirAll(rel, 0o700); err != nil {
				return fmt.Errorf("create %s: %w", dir, err)
			}
			return r.Lchown(rel, int(c.as.uid), int(c.as.gid))
		})
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if c.as == nil {
		return nil
	}
	if err := os.Chown(dir, int(c.as.uid), int(c.as.gid)); err != nil {
		return fmt.Errorf("chown %s to %s: %w", dir, c.as.name, err)
	}
	if c.jail != nil {
		return nil
	}
	return reachable(filepath.Dir(dir), c.as)
}

// initdb creates the cluster in a scratch directory and renames it to
// DataDir/data once complete, so that an interrupted initdb never leaves a
// half-made cluster behind.
func (c *Cluster) initdb(ctx context.Context) error {
	tmp := c.pgdata() + ".initdb"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	pwfile := filepath.Join(c.cfg.DataDir, "initdb.pw")
	if err := c.writeFile(pwfile, c.cfg.Password+"\n", 0o600); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	defer os.Remove(pwfile)
	out, err := c.run(ctx, c.cfg.DataDir, filepath.Join(c.cfg.BinDir, "initdb"),
		"-D", tmp,
		"-U", c.cfg.Superuser,
		"--pwfile="+pwfile,
		"--auth-host=scram-sha-256",
		"--auth-local=scram-sha-256",
		"--encoding=UTF8",
		"--locale=C.UTF-8",
	)
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	// initdb allows TCP from loopback only; listen_addresses decides exposure,
	// and every connection needs the password.
	hba, err := os.OpenFile(filepath.Join(tmp, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err == nil {
		_, err = io.WriteString(hba, "\n# Added by Hangar: listen_addresses limits exposure.\nhost all all all scram-sha-256\n")
		err = errors.Join(err, hba.Close())
	}
	if err != nil {
		return fmt.Errorf("initdb: configure pg_hba.conf: %w", err)
	}
	if err := os.Rename(tmp, c.pgdata()); err != nil {
		return fmt.Errorf("initdb: %w", err)
	}
	c.log.InfoContext(ctx, "initialized cluster", "superuser", c.cfg.Superuser)
	return nil
}

// writeFile writes a file owned by the user PostgreSQL runs as.
func (c *Cluster) writeFile(name, data string, perm os.FileMode) error {
	if c.jail != nil {
		// Never through a link the sandbox's user left, out of its directory.
		return c.inDataDir(name, func(r *os.Root, rel string) error {
			r.Remove(rel)
			f, err := r.OpenFile(rel, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
			if err != nil {
				return err
			}
			_, err = f.WriteString(data)
			return errors.Join(err, f.Chown(int(c.as.uid), int(c.as.gid)), f.Close())
		})
	}
	if err := os.WriteFile(name, []byte(data), perm); err != nil {
		return err
	}
	if c.as != nil {
		return os.Chown(name, int(c.as.uid), int(c.as.gid))
	}
	return nil
}

// inDataDir runs fn on name (a path in DataDir) through an os.Root of
// DataDir: a sandboxed server's user owns everything in its directory and
// may have replaced any of it with a symbolic link, which Hangar, as root,
// must never follow out of that directory.
func (c *Cluster) inDataDir(name string, fn func(r *os.Root, rel string) error) error {
	rel, err := filepath.Rel(c.cfg.DataDir, name)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("pgcluster: %s is not in %s", name, c.cfg.DataDir)
	}
	r, err := os.OpenRoot(c.cfg.DataDir)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r, rel)
}

// settings returns the server's settings as name=value, with extra
// settings for this start only.
func (c *Cluster) settings(extra map[string]string) []string {
	settings := []string{
		"port=" + strconv.Itoa(c.cfg.Port),
		"listen_addresses=" + c.cfg.ListenAddresses,
		`unix_socket_directories="` + c.cfg.DataDir + `"`,
	}
	all := maps.Clone(c.cfg.Settings)
	if all == nil {
		all = map[string]string{}
	}
	if len(c.cfg.TLSCert) > 0 {
		all["ssl"] = "on"
		all["ssl_cert_file"] = c.tlsFile("crt")
		all["ssl_key_file"] = c.tlsFile("key")
		all["ssl_min_protocol_version"] = "TLSv1.2"
		all["password_encryption"] = "scram-sha-256"
	}
	maps.Copy(all, c.archive)
	maps.Copy(all, extra)
	for _, name := range slices.Sorted(maps.Keys(all)) {
		settings = append(settings, name+"="+all[name])
	}
	return settings
}

// serverOptions returns the postgres command line for pg_ctl -o, with
// extra settings for this start only. pg_ctl runs it through /bin/sh, so
// every word is single-quoted.
func (c *Cluster) serverOptions(extra map[string]string) string {
	var b strings.Builder
	for _, s := range c.settings(extra) {
		b.WriteString("-c " + shellQuote(s) + " ")
	}
	return strings.TrimSpace(b.String())
}

// sandboxHBA is pg_hba.conf in a sandbox: passwords over the Unix socket
// (Hangar and the executors' relays) and over TLS (the public endpoint),
// and nothing else: no plaintext TCP, no trust.
const sandboxHBA = `# Written by Hangar on every start: changes here do not last.
local   all          all        scram-sha-256
local   replication  all        scram-sha-256
hostssl all          all  all   scram-sha-256
`

func (c *Cluster) tlsFile(ext string) string { return filepath.Join(c.cfg.DataDir, "server."+ext) }

// writeTLS writes the server's certificate and key, readable by its uid
// only, when TLS is configured.
func (c *Cluster) writeTLS() error {
	if len(c.cfg.TLSCert) == 0 {
		return nil
	}
	for ext, data := range map[string][]byte{"crt": c.cfg.TLSCert, "key": c.cfg.TLSKey} {
		if err := c.writeFile(c.tlsFile(ext), string(data), 0o600); err != nil {
			return fmt.Errorf("write TLS %s: %w", ext, err)
		}
	}
	return nil
}

// SetTLS replaces the server's certificate and key and, when it runs,
// makes it serve them to new connections (pg_reload_conf). The cluster
// must have been configured with TLS.
func (c *Cluster) SetTLS(ctx context.Context, cert, key []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.cfg.TLSCert) == 0 || len(cert) == 0 || len(key) == 0 {
		return errors.New("pgcluster: SetTLS needs a cluster with TLS, and a certificate and key")
	}
	c.cfg.TLSCert, c.cfg.TLSKey = cert, key
	if err := c.writeTLS(); err != nil {
		return err
	}
	if c.pid == 0 {
		return nil
	}
	conn, err := pgx.Connect(ctx, c.url("postgres", c.cfg.Password))
	if err != nil {
		return fmt.Errorf("reload TLS: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("reload TLS: %w", err)
	}
	return nil
}

// TLSWritten returns when the server's certificate was last written.
func (c *Cluster) TLSWritten() (time.Time, error) {
	fi, err := os.Stat(c.tlsFile("crt"))
	if err != nil {
		return time.Time{}, err
	}
	return fi.ModTime(), nil
}

// waitReady waits until the sandboxed server accepts connections (its
// postmaster.pid says ready, or standby during a recovery), as pg_ctl -w
// does, or has died.
func (c *Cluster) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; {
		if b, err := os.ReadFile(filepath.Join(c.pgdata(), "postmaster.pid")); err == nil {
			if lines := strings.Split(string(b), "\n"); len(lines) > 7 {
				if st := strings.TrimSpace(lines[7]); st == "ready" || st == "standby" {
					return nil
				}
			}
		}
		if n++; n%10 == 0 {
			if pid, err := c.jail.state(ctx); err == nil && pid == 0 {
				return fmt.Errorf("postgres exited during start; server log:\n%s", c.logTail())
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres did not become ready: %w; server log:\n%s", ctx.Err(), c.logTail())
		case <-tick.C:
		}
	}
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func (c *Cluster) pgctl(ctx context.Context, args ...string) ([]byte, error) {
	return c.run(ctx, c.cfg.DataDir, filepath.Join(c.cfg.BinDir, "pg_ctl"), append([]string{"-D", c.pgdata()}, args...)...)
}

// logTail returns the last lines of server.log, for start errors.
func (c *Cluster) logTail() string {
	const tail = 4 << 10
	f, err := os.OpenFile(c.logFile(), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "(no server log: " + err.Error() + ")"
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > tail {
		if _, err := f.Seek(-tail, io.SeekEnd); err != nil {
			return "(read server log: " + err.Error() + ")"
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return "(read server log: " + err.Error() + ")"
	}
	s := string(b)
	if len(b) == tail {
		if _, rest, ok := strings.Cut(s, "\n"); ok {
			s = rest // drop the partial first line
		}
	}
	return s
}
