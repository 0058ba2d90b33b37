// Package e2e drives a real Hangar end to end: `hangar serve` started as a
// process on a throwaway data dir, real PostgreSQL clusters, real npm
// installs, the official DBOS Cloud CLI from npm and Hangar's own CLI.
package e2e

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/image/imagetest"
)

// OfficialCLI is the official DBOS Cloud CLI package the tests run with npx.
const OfficialCLI = "@dbos-inc/dbos-cloud@2.10.24"

var bin string // directory holding the built hangar and dbos-cloud binaries

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if reason := unsupported(); reason != "" {
		if os.Getenv("CI") == "true" {
			fmt.Fprintln(os.Stderr, "e2e: required in CI but cannot run:", reason)
			return 1
		}
		fmt.Fprintln(os.Stderr, "e2e: skipping:", reason)
		return 0
	}
	dir, err := os.MkdirTemp("", "hangar-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = dir
	// As make build builds them, with the scheduler overlay.
	out, err := exec.Command("../scripts/gobuild.sh", bin, "./cmd/hangar", "./cmd/dbos-cloud").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: build binaries: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// unsupported says why this machine cannot run the end-to-end tests.
func unsupported() string {
	if os.Geteuid() != 0 {
		return "executors need network namespaces: run as root"
	}
	for _, tool := range []string{"npx", "node", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			return tool + " not found"
		}
	}
	if m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/pg_ctl"); len(m) == 0 {
		return "no PostgreSQL binaries in /usr/lib/postgresql"
	}
	return ""
}

// Hangar is a running `hangar serve`.
type Hangar struct {
	DataDir string
	Prefix  string // executors' network namespace prefix
	Domain  string // localhost:<port>
	Port    string
	CA      string // path of the CA certificate
	args    []string
	cmd     *exec.Cmd
	out     *syncBuffer
	done    chan error
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// subnetSpan is how many /16s one test process cycles through, from
// subnetBase: HANGAR_E2E_SUBNET_BASE (second octet, default 100) lets test
// runs side by side on one machine keep their executor networks apart.
const subnetSpan = 10

func subnetBase() int {
	if n, err := strconv.Atoi(os.Getenv("HANGAR_E2E_SUBNET_BASE")); err == nil && n > 0 && n+subnetSpan < 255 {
		return n
	}
	return 100
}

var prefixSeq struct {
	sync.Mutex
	n int
}

// removeDataDir removes a stopped server's data dir and its apps' setup
// layers in the shared image cache, unmounting their disks first: a
// server leaves them mounted for its next start (docs/disk.md), and a
// mount would hold its loop device and its image's space after the files
// are gone.
func removeDataDir(t *testing.T, dataDir string) {
	t.Helper()
	disks := image.NewDisks(image.DiskConfig{})
	apps, _ := os.ReadDir(filepath.Join(dataDir, "apps"))
	for _, a := range apps {
		if err := disks.RemoveAll(context.Background(), filepath.Join(imagetest.Dir(), "layers", a.Name())); err != nil {
			t.Errorf("remove the setup layers of app %s: %v", a.Name(), err)
		}
	}
	if err := disks.RemoveAll(context.Background(), dataDir); err != nil {
		t.Errorf("remove %s: %v", dataDir, err)
	}
}

// startHangar starts `hangar serve` on a fresh data dir and a free port, with
// extra flags appended, and stops it (SIGTERM) at the end of the test.
func startHangar(t *testing.T, extra ...string) *Hangar {
	t.Helper()
	dataDir, err := os.MkdirTemp("", "hangar-e2e-data-")
	if err != nil {
		t.Fatal(err)
	}
	// The embedded PostgreSQL runs as the postgres user, which must reach it.
	if err := os.Chmod(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	prefixSeq.Lock()
	prefixSeq.n++
	n := prefixSeq.n
	prefixSeq.Unlock()
	h := &Hangar{
		DataDir: dataDir, Domain: "localhost:" + port, Port: port, Prefix: fmt.Sprintf("e2e%d%d", os.Getpid()%10000, n),
		out: &syncBuffer{},
	}
	h.args = append([]string{"serve",
		"--data-dir", dataDir, "--listen", "127.0.0.1:" + port, "--domain", h.Domain,
		"--network-prefix", h.Prefix,
		// One image cache for every test: debootstrap runs once.
		"--image-cache", imagetest.Dir(),
		"--subnet", fmt.Sprintf("10.%d.0.0/16", subnetBase()+n%subnetSpan), "--health-timeout", "90s",
		"--db-ports", "0"}, extra...)
	t.Cleanup(func() {
		h.Stop(t)
		// Processes the server stopped may take a moment to be reaped.
		left := h.orphans()
		for deadline := time.Now().Add(15 * time.Second); len(left) > 0 && time.Now().Before(deadline); left = h.orphans() {
			time.Sleep(200 * time.Millisecond)
		}
		if len(left) > 0 {
			t.Errorf("left running 15s after hangar serve stopped: %v", left)
		}
		if t.Failed() {
			t.Logf("hangar output:\n%s", h.out.String())
		}
		removeDataDir(t, dataDir)
	})
	h.Start(t)
	h.CA = filepath.Join(dataDir, "ca.pem")
	return h
}

// Start starts the server process, with env added to its environment, and
// waits until it serves.
func (h *Hangar) Start(t *testing.T, env ...string) {
	t.Helper()
	h.cmd = exec.Command(filepath.Join(bin, "hangar"), h.args...)
	h.cmd.Env = append(append(os.Environ(), "HANGAR_PG_SETTINGS=fsync=off"), env...)
	h.cmd.Stdout, h.cmd.Stderr = h.out, h.out
	mark := len(h.out.String())
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h.done = make(chan error, 1)
	go func() { h.done <- h.cmd.Wait() }()
	deadline := time.Now().Add(90 * time.Second)
	for !strings.Contains(h.out.String()[mark:], "Hangar is serving") {
		select {
		case err := <-h.done:
			t.Fatalf("hangar serve exited early: %v\n%s", err, h.out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("hangar serve did not start within 90s:\n%s", h.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Kill kills the server with SIGKILL, as a crash would, and reaps it.
func (h *Hangar) Kill(t *testing.T) {
	t.Helper()
	_ = h.cmd.Process.Kill()
	<-h.done
}

// Stop sends SIGTERM and waits for a clean exit.
func (h *Hangar) Stop(t *testing.T) {
	t.Helper()
	if h.cmd == nil || h.cmd.ProcessState != nil {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("hangar serve exited with %v after SIGTERM", err)
		}
	case <-time.After(60 * time.Second):
		_ = h.cmd.Process.Kill()
		t.Errorf("hangar serve did not stop within 60s of SIGTERM")
	}
}

// orphans lists what a stopped Hangar left behind: processes whose command
// line or working directory is in its data dir (postgres clusters, executors),
// network namespaces with its prefix, and its sandbox's cgroup group and state dir.
func (h *Hangar) orphans() []string {
	var left []string
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		cwd, _ := os.Readlink(filepath.Join(p, "cwd"))
		if strings.Contains(string(cmdline), h.DataDir) || strings.HasPrefix(cwd, h.DataDir) {
			if stat, _ := os.ReadFile(filepath.Join(p, "stat")); strings.Contains(string(stat), ") Z ") {
				continue // a zombie already dead, waiting for its reaper
			}
			left = append(left, fmt.Sprintf("pid %s: %s", filepath.Base(p), strings.ReplaceAll(string(cmdline), "\x00", " ")))
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, h.Prefix+"-") {
			left = append(left, "netns "+strings.Fields(line)[0])
		}
	}
	// The sandbox driver's parent cgroup group and the database
	// instances', in every hierarchy (v1) or the unified one, and the
	// driver's state dir.
	for _, group := range []string{"hangar/" + h.Prefix, h.Prefix + "-db"} {
		v1, _ := filepath.Glob("/sys/fs/cgroup/*/" + group)
		v2, _ := filepath.Glob("/sys/fs/cgroup/" + group)
		for _, g := range append(v1, v2...) {
			left = append(left, "cgroup "+g)
		}
	}
	if _, err := os.Stat("/run/hangar/sandbox/" + h.Prefix); err == nil {
		left = append(left, "state dir /run/hangar/sandbox/"+h.Prefix)
	}
	return left
}

// AddUser runs `hangar users add` and returns the refresh token.
func (h *Hangar) AddUser(t *testing.T, name string) string {
	t.Helper()
	out, err := runOut(filepath.Join(bin, "hangar"), "users", "add", name, "--data-dir", h.DataDir)
	if err != nil {
		t.Fatalf("hangar users add: %v\n%s", err, out)
	}
	f := strings.Fields(out)
	return f[len(f)-1]
}

// runOut runs a command and returns its combined output.
func runOut(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// Env is the environment both CLIs run with.
func (h *Hangar) Env() []string {
	return append(os.Environ(), "DBOS_DOMAIN="+h.Domain, "NODE_EXTRA_CA_CERTS="+h.CA, "SSL_CERT_FILE="+h.CA)
}

// HTTPClient trusts Hangar's CA and dials every host at the server, as DNS
// would for <org>-<app>.localhost.
func (h *Hangar) HTTPClient(t *testing.T) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(h.CA)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	addr := "127.0.0.1:" + h.Port
	return &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: pool},
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			},
		},
	}
}

// Client is an API client logged in with token.
func (h *Hangar) Client(t *testing.T, refresh string) *apiclient.Client {
	t.Helper()
	c := &apiclient.Client{BaseURL: "https://" + h.Domain, HTTP: h.HTTPClient(t)}
	tok, err := c.Exchange(context.Background(), refresh)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = tok.AccessToken
	return c
}

// run runs a command in dir with env and returns its combined output and
// exit code.
func run(t *testing.T, dir string, env []string, name string, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir, cmd.Env = dir, env
	out, err := cmd.CombinedOutput()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return string(out), code
}

// official runs the official DBOS Cloud CLI in dir.
func (h *Hangar) official(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	return run(t, dir, h.Env(), "npx", append([]string{"-y", OfficialCLI}, args...)...)
}

// ours runs Hangar's dbos-cloud in dir.
func (h *Hangar) ours(t *testing.T, dir string, args ...string) (string, int) {
	t.Helper()
	return run(t, dir, h.Env(), filepath.Join(bin, "dbos-cloud"), args...)
}

// fixture copies testdata/apps/<name> into a temp dir, applying edits
// (file → func(old) new), and returns its path.
func fixture(t *testing.T, name string, edits map[string]func(string) string) string {
	t.Helper()
	src := filepath.Join("..", "testdata", "apps", name)
	dst := filepath.Join(t.TempDir(), name)
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			if d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if f, ok := edits[rel]; ok {
			b = []byte(f(string(b)))
		}
		info, _ := d.Info()
		return os.WriteFile(filepath.Join(dst, rel), b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// get fetches url and returns status and body.
func get(t *testing.T, c *http.Client, url string) (int, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(l.Addr().String())
	return p
}

// zipEntry is one entry of a hand-made archive.
type zipEntry struct {
	Name    string
	Body    string
	Repeat  int // Body is written this many times (default once)
	Mode    os.FileMode
	Symlink bool
}

// makeZip builds an archive like the official CLI's (UNIX modes).
func makeZip(t *testing.T, entries []zipEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, e := range entries {
		fh := &zip.FileHeader{Name: e.Name, Method: zip.Deflate}
		mode := e.Mode
		if mode == 0 {
			mode = 0o644
		}
		if e.Symlink {
			mode = os.ModeSymlink | 0o777
		}
		fh.SetMode(mode)
		w, err := zw.CreateHeader(fh)
		if err != nil {
			t.Fatal(err)
		}
		for range max(e.Repeat, 1) {
			io.WriteString(w, e.Body)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var urlRE = regexp.MustCompile(`Access your application at (https://\S+)`)

// lastLines returns the last n lines of s, for failure messages.
func lastLines(s string, n int) string {
	sc := bufio.NewScanner(strings.NewReader(s))
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
