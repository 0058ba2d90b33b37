// Package runtimetest is the conformance suite every runtime.Driver passes:
// driver packages call Run from their tests, which may also use its
// helpers (SyncBuffer, WaitHTTP, EchoServer). Only tests, and
// internal/hangartest for its Fake driver, import it.
package runtimetest

// size: the conformance suite: one case per behaviour of runtime.Driver, run in order on one driver.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
)

// appPort is the port every test app listens on inside its executor: the
// same for all, as Node apps in production.
const appPort = 3000

// serverPy is the test app: an HTTP server on $PORT that answers
// GET /env/NAME with the variable's value, GET /cwd with its working
// directory (unique per test, so it tells executors apart even when a
// released address was reused), GET /self/FILE with its /proc/self/FILE
// and GET /dial/HOST:PORT by sending
// "ping" to HOST:PORT, half-closing, and returning what it read back (502 and
// the error when that fails). On SIGTERM it prints "TERM" and exits, or keeps
// running when $TERM_MODE is "ignore".
const serverPy = `
import http.server, os, signal, socket, sys
def on_term(*_):
    print("TERM", flush=True)
    if os.environ.get("TERM_MODE") != "ignore":
        os._exit(0)
signal.signal(signal.SIGTERM, on_term)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        _, kind, arg = self.path.split("/", 2)
        code, body = 200, b""
        try:
            if kind == "env":
                body = os.environ.get(arg, "").encode()
            elif kind == "cwd":
                body = os.getcwd().encode()
            elif kind == "self":
                with open("/proc/self/" + arg, "rb") as f:
                    body = f.read()
            elif kind == "dial":
                host, port = arg.rsplit(":", 1)
                with socket.create_connection((host, int(port)), timeout=5) as s:
                    s.sendall(b"ping")
                    s.shutdown(socket.SHUT_WR)
                    while chunk := s.recv(4096):
                        body += chunk
        except OSError as e:
            code, body = 502, str(e).encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *_):
        pass
print("listening", flush=True)
http.server.ThreadingHTTPServer(("", int(os.environ["PORT"])), H).serve_forever()
`

// Run runs the conformance suite against the drivers newDriver returns; it
// calls newDriver once per subtest, and the driver must be ready to use.
// Subtests run in parallel. The suite needs python3 on the host and skips
// without it; it prefers the system's /usr/bin/python3, which sandboxes
// that hide home directories can still run.
func Run(t *testing.T, newDriver func(t *testing.T) runtime.Driver) {
	py := python(t)
	s := &suite{py: py, newDriver: newDriver}
	for _, tc := range []struct {
		name string
		f    func(t *testing.T)
	}{
		{"ServesHTTP", s.testServesHTTP},
		{"SamePort", s.testSamePort},
		{"Env", s.testEnv},
		{"Forward", s.testForward},
		{"ForwardIsPrivate", s.testForwardIsPrivate},
		{"ForwardHold", s.testForwardHold},
		{"ForwardHoldStop", s.testForwardHoldStop},
		{"ExitCode", s.testExitCode},
		{"StopTerminates", s.testStopTerminates},
		{"StopKillsAfterGrace", s.testStopKillsAfterGrace},
		{"StopIsIdempotent", s.testStopIsIdempotent},
		{"StopReleases", s.testStopReleases},
		{"Errors", s.testErrors},
		{"Inspect", s.testInspect},
		{"Stats", s.testStats},
		{"Exec", s.testExec},
		{"ExecKilledWithContext", s.testExecKilledWithContext},
		{"ExecErrors", s.testExecErrors},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.f(t)
		})
	}
}

type suite struct {
	py        string
	newDriver func(t *testing.T) runtime.Driver
}

// python returns the absolute path of the python3 interpreter, past any
// version-manager shim, which would add hundreds of milliseconds per start.
func python(t *testing.T) string {
	t.Helper()
	const system = "/usr/bin/python3"
	if _, err := exec.LookPath(system); err == nil {
		return system
	}
	out, err := exec.CommandContext(t.Context(), "python3", "-c", "import sys; print(sys.executable)").Output()
	if err != nil {
		t.Skipf("conformance suite needs python3: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// SyncBuffer is an io.Writer safe for concurrent use, for Spec.Stdout.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Write appends p to the buffer.
func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// String returns what was written so far.
func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serverSpec returns the spec of the test app for executor id.
func (s *suite) serverSpec(t testing.TB, id string, env ...string) runtime.Spec {
	return runtime.Spec{
		ID:        id,
		App:       "conformance",
		Version:   "v1",
		Dir:       t.TempDir(),
		Command:   []string{s.py, "-c", serverPy},
		Env:       append([]string{fmt.Sprintf("PORT=%d", appPort), "DBOS__VMID=" + id}, env...),
		Port:      appPort,
		MemoryMiB: hangar.DefaultMemoryMiB,
		Stdout:    &SyncBuffer{},
	}
}

// start prepares and starts spec.ID and stops it when the test ends.
func start(t testing.TB, d runtime.Driver, spec runtime.Spec) *runtime.Executor {
	t.Helper()
	prepare(t, d, spec.ID)
	x, err := d.Start(t.Context(), spec)
	if err != nil {
		t.Fatalf("Start(%s): %v", spec.ID, err)
	}
	return x
}

// prepare prepares id and stops it when the test ends.
func prepare(t testing.TB, d runtime.Driver, id string) runtime.Network {
	t.Helper()
	n, err := d.Prepare(t.Context(), id)
	if err != nil {
		t.Fatalf("Prepare(%s): %v", id, err)
	}
	t.Cleanup(func() {
		if err := d.Stop(context.Background(), id, time.Second); err != nil {
			t.Errorf("Stop(%s): %v", id, err)
		}
	})
	return n
}

// client talks to executors directly, never through a proxy from the
// environment, and opens a fresh connection per request.
var client = &http.Client{
	Timeout:   5 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// get returns the status and body of GET http://addr/path.
func get(addr, path string) (int, string, error) {
	resp, err := client.Get("http://" + addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// WaitHTTP polls addr with GET /env/PORT until the app answers 200 (any
// app that answers every path will do) and returns how long it took; it
// fails the test after 30 s. It polls every 2 ms, so that benchmarks of
// start-up latency can use it.
func WaitHTTP(t testing.TB, addr string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for {
		code, _, err := get(addr, "/env/PORT")
		if err == nil && code == http.StatusOK {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("app at %s did not answer: status %d, err %v", addr, code, err)
		}
		<-tick.C
	}
}

// serves reports whether the test app started in dir answers at addr. A
// parallel test may already have been given the address.
func serves(addr, dir string) bool {
	code, body, err := get(addr, "/cwd")
	return err == nil && code == http.StatusOK && body == dir
}

// mustGet returns the body of GET addr/path, failing unless the status is
// want.
func mustGet(t testing.TB, addr, path string, want int) string {
	t.Helper()
	code, body, err := get(addr, path)
	if err != nil {
		t.Fatalf("GET %s%s: %v", addr, path, err)
	}
	if code != want {
		t.Fatalf("GET %s%s: got status %d (%q), want %d", addr, path, code, body, want)
	}
	return body
}

func wantKind(t testing.TB, what string, err error, want hangar.Kind) {
	t.Helper()
	if got := hangar.KindOf(err); err == nil || got != want {
		t.Errorf("%s: got error %v (kind %s), want kind %s", what, err, got, want)
	}
}

func (s *suite) testServesHTTP(t *testing.T) {
	d := s.newDriver(t)
	begin := time.Now()
	x := start(t, d, s.serverSpec(t, "web"))
	started := time.Since(begin)
	ready := WaitHTTP(t, x.Addr)
	t.Logf("Prepare+Start %v, then app answering after %v (python startup included)", started, ready)
	if x.ID != "web" || x.PID <= 0 || x.Gateway == "" {
		t.Errorf("got executor %+v, want ID web, a PID and a gateway", *x)
	}
}

func (s *suite) testSamePort(t *testing.T) {
	d := s.newDriver(t)
	a := start(t, d, s.serverSpec(t, "a"))
	b := start(t, d, s.serverSpec(t, "b"))
	if a.Addr == b.Addr {
		t.Fatalf("got the same Addr %s for two executors", a.Addr)
	}
	for _, x := range []*runtime.Executor{a, b} {
		WaitHTTP(t, x.Addr)
		if got := mustGet(t, x.Addr, "/env/DBOS__VMID", http.StatusOK); got != x.ID {
			t.Errorf("executor at %s: got DBOS__VMID %q, want %q", x.Addr, got, x.ID)
		}
	}
}

func (s *suite) testEnv(t *testing.T) {
	d := s.newDriver(t)
	x := start(t, d, s.serverSpec(t, "env", "HANGAR_TEST_SECRET=s3cret value"))
	WaitHTTP(t, x.Addr)
	if got, want := mustGet(t, x.Addr, "/env/HANGAR_TEST_SECRET", http.StatusOK), "s3cret value"; got != want {
		t.Errorf("got HANGAR_TEST_SECRET %q, want %q", got, want)
	}
	// The environment is Spec.Env: nothing leaks from the host. (HOME is
	// not checked: a driver may set it, as runc does.)
	if got := mustGet(t, x.Addr, "/env/PATH", http.StatusOK); got != "" {
		t.Errorf("got PATH %q, want it unset", got)
	}
}

// EchoServer listens on addr ("127.0.0.1:0" for host loopback, "0.0.0.0:0"
// for every host address) until the test ends, answers each connection with
// "pong:" followed by everything it reads, and returns the address it
// listens on.
func EchoServer(t testing.TB, addr string) string {
	t.Helper()
	a, _ := echoServer(t, addr)
	return a
}

// echoServer is EchoServer, also returning how many connections it
// accepted so far.
func echoServer(t testing.TB, addr string) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			go func() {
				defer c.Close()
				io.WriteString(c, "pong:")
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String(), accepted
}

func (s *suite) testForward(t *testing.T) {
	d := s.newDriver(t)
	spec := s.serverSpec(t, "fwd")
	spec.Forwards = []runtime.Forward{{ListenPort: 5432, Target: EchoServer(t, "127.0.0.1:0")}}
	x := start(t, d, spec)
	WaitHTTP(t, x.Addr)
	for range 3 {
		if got, want := mustGet(t, x.Addr, "/dial/"+net.JoinHostPort(x.Gateway, "5432"), http.StatusOK), "pong:ping"; got != want {
			t.Errorf("through the forward: got %q, want %q", got, want)
		}
	}
}

func (s *suite) testForwardIsPrivate(t *testing.T) {
	d := s.newDriver(t)
	spec := s.serverSpec(t, "owner")
	spec.Forwards = []runtime.Forward{{ListenPort: 5432, Target: EchoServer(t, "127.0.0.1:0")}}
	owner := start(t, d, spec)
	other := start(t, d, s.serverSpec(t, "other"))
	WaitHTTP(t, owner.Addr)
	WaitHTTP(t, other.Addr)
	mustGet(t, owner.Addr, "/dial/"+net.JoinHostPort(owner.Gateway, "5432"), http.StatusOK)
	// The other executor does not reach the owner's target: its dial
	// fails (502) or, where executors share the forward's address and
	// the driver tells them apart by their own, is closed unanswered.
	if code, body, err := get(other.Addr, "/dial/"+net.JoinHostPort(owner.Gateway, "5432")); err != nil || strings.Contains(body, "pong") {
		t.Errorf("another executor dialling the owner's forward: got %d %q, %v; want it not to reach the target", code, body, err)
	}
}

// startHeld starts executor id of a new driver with a held forward on
// port 5432 to an echo server, once it answers HTTP, and returns the
// driver, the executor, the hold and the echo server's connection count.
func (s *suite) startHeld(t *testing.T, id string) (runtime.Driver, *runtime.Executor, chan struct{}, *atomic.Int32) {
	d := s.newDriver(t)
	target, accepted := echoServer(t, "127.0.0.1:0")
	hold := make(chan struct{})
	spec := s.serverSpec(t, id)
	spec.Forwards = []runtime.Forward{{ListenPort: 5432, Target: target, Hold: hold}}
	x := start(t, d, spec)
	WaitHTTP(t, x.Addr)
	return d, x, hold, accepted
}

// testForwardHoldStop checks that a connection held when its executor is
// stopped never reaches the target, even when Hold is closed afterwards:
// an executor dropped during the migrations never touches its database.
func (s *suite) testForwardHoldStop(t *testing.T) {
	d, x, hold, accepted := s.startHeld(t, "holdstop")
	go get(x.Addr, "/dial/"+net.JoinHostPort(x.Gateway, "5432")) //nolint:errcheck // the app is stopped under it
	time.Sleep(500 * time.Millisecond)                           // the app has dialled: the relay holds it
	if err := d.Stop(t.Context(), x.ID, time.Second); err != nil {
		t.Fatal(err)
	}
	close(hold)
	time.Sleep(500 * time.Millisecond)
	if n := accepted.Load(); n != 0 {
		t.Errorf("the target got %d connections from a stopped executor's held forward, want 0", n)
	}
}

// testForwardHold checks that a forward with a Hold accepts the app's
// connection but reaches its target only once Hold is closed.
func (s *suite) testForwardHold(t *testing.T) {
	_, x, hold, accepted := s.startHeld(t, "hold")
	type result struct {
		code int
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		code, body, err := get(x.Addr, "/dial/"+net.JoinHostPort(x.Gateway, "5432"))
		done <- result{code, body, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("a dial through a held forward ended before Hold was closed: %d %q, %v", r.code, r.body, r.err)
	case <-time.After(time.Second):
	}
	if n := accepted.Load(); n != 0 {
		t.Fatalf("the target got %d connections while the forward was held, want 0", n)
	}
	close(hold)
	select {
	case r := <-done:
		if r.err != nil || r.code != http.StatusOK || r.body != "pong:ping" {
			t.Errorf("after Hold closed: got %d %q, %v; want 200 \"pong:ping\"", r.code, r.body, r.err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the held dial did not complete within 10 s of Hold closing")
	}
}

func (s *suite) testExitCode(t *testing.T) {
	d := s.newDriver(t)
	for _, tc := range []struct {
		name, script string
		code         int
		signaled     bool
	}{
		{"Zero", "exit 0", 0, false},
		{"Seven", "exit 7", 7, false},
		{"SIGTERM", "kill -TERM $$", 143, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := "exit-" + strings.ToLower(tc.name)
			spec := s.serverSpec(t, id)
			spec.Command = []string{"/bin/sh", "-c", tc.script}
			start(t, d, spec)
			st, err := d.Wait(t.Context(), id)
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			if st.ExitCode != tc.code || (st.Err != nil) != tc.signaled {
				t.Errorf("got %+v, want exit code %d and an error: %v", st, tc.code, tc.signaled)
			}
			// Wait can be called again, with the same answer.
			if again, err := d.Wait(t.Context(), id); err != nil || again.ExitCode != tc.code {
				t.Errorf("second Wait: got %+v, %v; want exit code %d", again, err, tc.code)
			}
		})
	}
}

func (s *suite) testStopTerminates(t *testing.T) {
	d := s.newDriver(t)
	spec := s.serverSpec(t, "term")
	x := start(t, d, spec)
	WaitHTTP(t, x.Addr)
	const grace = 10 * time.Second
	begin := time.Now()
	if err := d.Stop(t.Context(), x.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(begin); took > grace/2 {
		t.Errorf("Stop took %v for an app that exits on SIGTERM, want well under the %v grace", took, grace)
	}
	if out := spec.Stdout.(*SyncBuffer).String(); !strings.Contains(out, "TERM") {
		t.Errorf("got output %q, want the app to report SIGTERM", out)
	}
}

func (s *suite) testStopKillsAfterGrace(t *testing.T) {
	d := s.newDriver(t)
	spec := s.serverSpec(t, "stubborn", "TERM_MODE=ignore")
	x := start(t, d, spec)
	WaitHTTP(t, x.Addr)
	const grace = 300 * time.Millisecond
	begin := time.Now()
	if err := d.Stop(t.Context(), x.ID, grace); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if took := time.Since(begin); took < grace {
		t.Errorf("Stop took %v, want at least the %v grace", took, grace)
	}
	if out := spec.Stdout.(*SyncBuffer).String(); !strings.Contains(out, "TERM") {
		t.Errorf("got output %q, want the app to report SIGTERM", out)
	}
	if serves(x.Addr, spec.Dir) {
		t.Errorf("app at %s still answers after Stop", x.Addr)
	}
}

func (s *suite) testStopIsIdempotent(t *testing.T) {
	d := s.newDriver(t)
	x := start(t, d, s.serverSpec(t, "twice"))
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if err := d.Stop(t.Context(), x.ID, time.Second); err != nil {
				t.Errorf("concurrent Stop: %v", err)
			}
		})
	}
	wg.Wait()
	if err := d.Stop(t.Context(), x.ID, time.Second); err != nil {
		t.Errorf("Stop after Stop: %v", err)
	}
	if err := d.Stop(t.Context(), "never-prepared", time.Second); err != nil {
		t.Errorf("Stop of an unknown executor: %v", err)
	}
	prepare(t, d, "prepared-only")
	if err := d.Stop(t.Context(), "prepared-only", time.Second); err != nil {
		t.Errorf("Stop of a prepared executor: %v", err)
	}
}

// testStopReleases checks that Stop leaves nothing behind: the app is gone,
// and the same ID with the same forward can be prepared and started again.
func (s *suite) testStopReleases(t *testing.T) {
	d := s.newDriver(t)
	target := EchoServer(t, "127.0.0.1:0")
	for i := range 2 {
		spec := s.serverSpec(t, "again")
		spec.Forwards = []runtime.Forward{{ListenPort: 5432, Target: target}}
		x := start(t, d, spec)
		WaitHTTP(t, x.Addr)
		mustGet(t, x.Addr, "/dial/"+net.JoinHostPort(x.Gateway, "5432"), http.StatusOK)
		if err := d.Stop(t.Context(), x.ID, time.Second); err != nil {
			t.Fatalf("round %d: Stop: %v", i, err)
		}
		if serves(x.Addr, spec.Dir) {
			t.Errorf("round %d: app at %s still answers after Stop", i, x.Addr)
		}
		_, err := d.Wait(t.Context(), x.ID)
		wantKind(t, "Wait after Stop", err, hangar.KindNotFound)
	}
}

func (s *suite) testErrors(t *testing.T) {
	d := s.newDriver(t)
	ctx := t.Context()

	_, err := d.Prepare(ctx, "Not_Valid")
	wantKind(t, "Prepare with a bad ID", err, hangar.KindInvalid)

	_, err = d.Start(ctx, s.serverSpec(t, "unprepared"))
	wantKind(t, "Start without Prepare", err, hangar.KindNotFound)

	_, err = d.Wait(ctx, "unknown")
	wantKind(t, "Wait for an unknown executor", err, hangar.KindNotFound)

	prepare(t, d, "dup")
	_, err = d.Prepare(ctx, "dup")
	wantKind(t, "second Prepare", err, hangar.KindConflict)

	_, err = d.Wait(ctx, "dup")
	wantKind(t, "Wait before Start", err, hangar.KindNotFound)

	bad := s.serverSpec(t, "dup")
	bad.Command = nil
	_, err = d.Start(ctx, bad)
	wantKind(t, "Start with no command", err, hangar.KindInvalid)

	bad = s.serverSpec(t, "dup")
	bad.Forwards = []runtime.Forward{{ListenPort: 5432, Target: "nowhere"}}
	_, err = d.Start(ctx, bad)
	wantKind(t, "Start with a bad forward", err, hangar.KindInvalid)

	if _, err := d.Start(ctx, s.serverSpec(t, "dup")); err != nil {
		t.Fatalf("Start: %v", err)
	}
	_, err = d.Start(ctx, s.serverSpec(t, "dup"))
	wantKind(t, "second Start", err, hangar.KindConflict)
}

func (s *suite) testInspect(t *testing.T) {
	d := s.newDriver(t)
	ctx := t.Context()
	_, err := d.Inspect(ctx, "unknown")
	wantKind(t, "Inspect of an unknown executor", err, hangar.KindNotFound)

	n := prepare(t, d, "insp")
	info, err := d.Inspect(ctx, "insp")
	if err != nil || info.State != runtime.StatePrepared || info.Network != n {
		t.Errorf("prepared: got %+v, %v; want state %s and network %+v", info, err, runtime.StatePrepared, n)
	}
	spec := s.serverSpec(t, "insp")
	spec.Command = []string{"/bin/sh", "-c", "sleep 0.3; exit 3"}
	x, err := d.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	info, err = d.Inspect(ctx, "insp")
	if err != nil || info.State == runtime.StatePrepared || info.PID != x.PID || info.Addr != x.Addr || info.StartedAt.IsZero() {
		t.Errorf("started: got %+v, %v; want running or exited with PID %d and Addr %s", info, err, x.PID, x.Addr)
	}
	if _, err := d.Wait(ctx, "insp"); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	info, err = d.Inspect(ctx, "insp")
	if err != nil || info.State != runtime.StateExited || info.Status.ExitCode != 3 {
		t.Errorf("exited: got %+v, %v; want state %s with exit code 3", info, err, runtime.StateExited)
	}
	if err := d.Stop(ctx, "insp", time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	_, err = d.Inspect(ctx, "insp")
	wantKind(t, "Inspect after Stop", err, hangar.KindNotFound)
}

// testStats checks the error contract, and what holds of the numbers of
// any driver that accounts resources: a running app has processes, and the
// peak memory, when known, is no less than the memory in use. What the
// numbers mean beyond that is for each driver's own tests, as only some
// drivers account resources.
func (s *suite) testStats(t *testing.T) {
	d := s.newDriver(t)
	ctx := t.Context()
	_, err := d.Stats(ctx, "unknown")
	wantKind(t, "Stats of an unknown executor", err, hangar.KindNotFound)

	x := start(t, d, s.serverSpec(t, "stats-run"))
	WaitHTTP(t, x.Addr)
	st, err := d.Stats(ctx, "stats-run")
	switch {
	case err != nil && hangar.KindOf(err) != hangar.KindUnavailable:
		t.Errorf("Stats of a running executor: got %v, want a reading or kind %s", err, hangar.KindUnavailable)
	case err == nil && (st.Pids < 1 || st.MemoryBytes == 0):
		t.Errorf("Stats of a running executor: got %+v, want its processes and memory counted", st)
	case err == nil && st.MemoryPeakBytes != 0 && st.MemoryPeakBytes < st.MemoryBytes:
		t.Errorf("Stats of a running executor: got peak memory %d below the %d in use", st.MemoryPeakBytes, st.MemoryBytes)
	case err == nil:
		t.Logf("running executor: %d processes, memory %d bytes, peak %d", st.Pids, st.MemoryBytes, st.MemoryPeakBytes)
	}

	prepare(t, d, "stats")
	_, err = d.Stats(ctx, "stats")
	wantKind(t, "Stats before Start", err, hangar.KindNotFound)
	spec := s.serverSpec(t, "stats")
	spec.Command = []string{"/bin/sh", "-c", "exit 0"}
	if _, err := d.Start(ctx, spec); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if _, err := d.Wait(ctx, "stats"); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	st, err = d.Stats(ctx, "stats")
	if err != nil && hangar.KindOf(err) != hangar.KindUnavailable {
		t.Errorf("Stats after exit: got %v, want the last reading or kind %s", err, hangar.KindUnavailable)
	}
	if err == nil && st.CPU <= 0 {
		t.Errorf("Stats after exit: got %+v, want some CPU time used", st)
	}
}

// execOut runs args in executor id with stdin and returns its exit code
// and output.
func execOut(t testing.TB, d runtime.Driver, id, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut SyncBuffer
	code, err := d.Exec(t.Context(), id, runtime.ExecSpec{Args: args, Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("Exec(%s, %q): %v", id, args, err)
	}
	return code, out.String(), errOut.String()
}

// statusLines returns the lines of a /proc/<pid>/status that say who a
// process is and what it may do: its uids, gids and capabilities.
func statusLines(status string) []string {
	var out []string
	for _, l := range strings.Split(status, "\n") {
		for _, key := range []string{"Uid:", "Gid:", "CapInh:", "CapPrm:", "CapEff:", "CapBnd:", "CapAmb:", "NoNewPrivs:", "Seccomp:"} {
			if strings.HasPrefix(l, key) {
				out = append(out, l)
			}
		}
	}
	return out
}

// testExec checks that Exec runs a process as the app runs: with its
// output streams, input and exit code, in the app's folder and
// environment, as the app's user with the app's capabilities, in its
// cgroups.
func (s *suite) testExec(t *testing.T) {
	d := s.newDriver(t)
	spec := s.serverSpec(t, "execs", "HANGAR_TEST_SECRET=s3cret")
	x := start(t, d, spec)
	WaitHTTP(t, x.Addr)

	code, stdout, stderr := execOut(t, d, "execs", "", "/bin/sh", "-c", "echo out; echo err >&2; exit 3")
	if code != 3 || stdout != "out\n" || stderr != "err\n" {
		t.Errorf("got exit code %d, stdout %q, stderr %q; want 3, \"out\\n\", \"err\\n\"", code, stdout, stderr)
	}
	code, stdout, _ = execOut(t, d, "execs", "line one\nline two\n", "/bin/sh", "-c", "pwd; echo \"$HANGAR_TEST_SECRET\"; cat")
	if want := spec.Dir + "\ns3cret\nline one\nline two\n"; code != 0 || stdout != want {
		t.Errorf("working directory, environment and input: got exit code %d and %q, want 0 and %q", code, stdout, want)
	}
	// The command may write to the app folder, as the app may.
	if code, _, _ := execOut(t, d, "execs", "", "/bin/sh", "-c", "touch made-by-exec"); code != 0 {
		t.Errorf("writing to the app folder: exit code %d", code)
	}
	if fi, err := os.Stat(filepath.Join(spec.Dir, "made-by-exec")); err != nil || fi.Size() != 0 {
		t.Errorf("the file exec made in the app folder: %v", err)
	}

	appStatus := statusLines(mustGet(t, x.Addr, "/self/status", http.StatusOK))
	_, execStatus, _ := execOut(t, d, "execs", "", "/bin/sh", "-c", "exec cat /proc/self/status")
	if len(appStatus) < 7 {
		t.Fatalf("the app's /proc/self/status lacks uids or capabilities: %q", appStatus)
	}
	if diff := cmp.Diff(appStatus, statusLines(execStatus)); diff != "" {
		t.Errorf("exec's user and capabilities differ from the app's (-app +exec):\n%s", diff)
	}
	appCgroups := mustGet(t, x.Addr, "/self/cgroup", http.StatusOK)
	if _, execCgroups, _ := execOut(t, d, "execs", "", "/bin/sh", "-c", "exec cat /proc/self/cgroup"); execCgroups != appCgroups {
		t.Errorf("exec's cgroups differ from the app's:\napp:  %q\nexec: %q", appCgroups, execCgroups)
	}
	t.Logf("exec runs as %q", appStatus[:2])
}

// cancelOn is a writer that calls cancel once what was written contains
// mark.
type cancelOn struct {
	SyncBuffer
	mark   string
	cancel context.CancelFunc
}

func (w *cancelOn) Write(p []byte) (int, error) {
	n, err := w.SyncBuffer.Write(p)
	if strings.Contains(w.String(), w.mark) {
		w.cancel()
	}
	return n, err
}

// testExecKilledWithContext checks that a command whose context ends is
// killed with everything it started, and that the app runs on.
func (s *suite) testExecKilledWithContext(t *testing.T) {
	d := s.newDriver(t)
	x := start(t, d, s.serverSpec(t, "exec-kill"))
	WaitHTTP(t, x.Addr)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	// Sleeps of unlikely lengths, so that they are told from any other
	// process on the host; the patterns below do not match themselves.
	out := &cancelOn{mark: "started", cancel: cancel}
	_, err := d.Exec(ctx, "exec-kill", runtime.ExecSpec{
		Args:   []string{"/bin/sh", "-c", "sleep 3000007 & sleep 3000008 & echo started; wait"},
		Stdout: out,
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec: got %v, want %v", err, context.Canceled)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		// grep lists the processes whose command line matches; it exits
		// 2 when one of them vanished meanwhile, 1 when none matched.
		code, stdout, _ := execOut(t, d, "exec-kill", "", "/bin/sh", "-c", "grep -las 'sleep.300000[78]' /proc/[0-9]*/cmdline")
		if code != 0 && stdout == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("processes of the cancelled command still run after 10s: %q (grep exit code %d)", stdout, code)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := mustGet(t, x.Addr, "/env/DBOS__VMID", http.StatusOK); got != "exec-kill" {
		t.Errorf("after the command was killed, the app answers %q, want its executor ID", got)
	}
}

func (s *suite) testExecErrors(t *testing.T) {
	d := s.newDriver(t)
	ctx := t.Context()
	exec := func(id string, args ...string) error {
		_, err := d.Exec(ctx, id, runtime.ExecSpec{Args: args})
		return err
	}
	wantKind(t, "Exec in an unknown executor", exec("unknown", "true"), hangar.KindNotFound)
	prepare(t, d, "exec-prepared")
	wantKind(t, "Exec in a prepared executor", exec("exec-prepared", "true"), hangar.KindConflict)

	spec := s.serverSpec(t, "exec-exited")
	spec.Command = []string{"/bin/sh", "-c", "exit 0"}
	start(t, d, spec)
	if _, err := d.Wait(ctx, "exec-exited"); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	wantKind(t, "Exec in an exited executor", exec("exec-exited", "/bin/true"), hangar.KindConflict)

	x := start(t, d, s.serverSpec(t, "exec-stopped"))
	WaitHTTP(t, x.Addr)
	wantKind(t, "Exec with no command", exec("exec-stopped"), hangar.KindInvalid)
	if err := d.Stop(ctx, "exec-stopped", time.Second); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	wantKind(t, "Exec in a stopped executor", exec("exec-stopped", "/bin/true"), hangar.KindNotFound)
}
