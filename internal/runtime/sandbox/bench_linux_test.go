package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/image/imagetest"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/netns"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// helloJS is the benchmark's app: the smallest Node HTTP server.
const helloJS = `require("http").createServer((q, s) => s.end("ok")).listen(3000)`

// spawnToReady prepares and starts the app with the Node.js binary node in
// executor id of d, and returns the time until it answers HTTP, and the
// executor.
func spawnToReady(b *testing.B, d runtime.Driver, id string, img runtime.Image, node string) (time.Duration, *runtime.Executor) {
	b.Helper()
	begin := time.Now()
	if _, err := d.Prepare(b.Context(), id); err != nil {
		b.Fatal(err)
	}
	x, err := d.Start(b.Context(), runtime.Spec{ID: id, Dir: b.TempDir(), Command: []string{node, "-e", helloJS}, Port: 3000, Image: img})
	if err != nil {
		b.Fatal(err)
	}
	runtimetest.WaitHTTP(b, x.Addr)
	return time.Since(begin), x
}

// rssKiB returns the resident memory of process pid.
func rssKiB(pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	return 0
}

// BenchmarkExecutor_SpawnToReady compares, in one run, the time from
// Prepare to the first HTTP answer of the same Node app in the sandbox and
// as a bare child process (the netns driver: same network setup, no
// container), and measures what Hangar keeps on the host per sandboxed
// executor besides the app: the runtime's run process that waits for it. Each
// sandboxed start is compared with a bare start of the same Node.js
// binary: the host's /usr/bin/node for the sandbox on the host's root, the
// image cache's for the sandbox on an image (their start-up costs differ
// several times over). bench/executor/run.sh runs it.
func BenchmarkExecutor_SpawnToReady(b *testing.B) {
	if _, err := os.Stat("/usr/bin/node"); err != nil {
		b.Skip("needs /usr/bin/node")
	}
	// HANGAR_OCI_RUNTIME picks the runtime, as for hangar serve.
	withRuntime := func(c *Config) { c.Runtime = os.Getenv("HANGAR_OCI_RUNTIME") }
	sb := newTestDriver(b, withRuntime)
	fmt.Fprintf(os.Stderr, "OCI runtime: %s\n", sb.ociPath)
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	bare, err := netns.New(netns.Config{Prefix: sb.cfg.Prefix + "b"}, discard)
	if err != nil {
		b.Fatal(err)
	}
	// The same app on its image (docs/images.md), built beforehand: the
	// one-time base build is not what this measures.
	images := imagetest.Cache(b)
	begin := time.Now()
	if _, err := images.Base(b.Context()); err != nil {
		b.Fatal(err)
	}
	nodeDir, err := images.Node(b.Context())
	if err != nil {
		b.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "base image and Node.js ready in %s (built once per image cache)\n", time.Since(begin).Round(time.Millisecond))
	onImage := newTestDriver(b, withRuntime, func(c *Config) { c.Images = images })
	img := runtime.Image{AppID: "hi-bench"}
	var sandboxed, imaged, plain, plainImageNode []time.Duration
	var overheadKiB int
	// run starts and stops one executor of d and records its time in ts.
	run := func(d runtime.Driver, img runtime.Image, node string, ts *[]time.Duration) {
		t, _ := spawnToReady(b, d, "bench", img, node)
		*ts = append(*ts, t)
		if d == sb {
			e, _ := sb.execs.Lookup("bench")
			overheadKiB += rssKiB(e.cmd.Process.Pid)
		}
		if err := d.Stop(b.Context(), "bench", time.Second); err != nil {
			b.Fatal(err)
		}
	}
	for b.Loop() {
		run(onImage, img, "/opt/hangar/node/bin/node", &imaged)
		run(bare, runtime.Image{}, filepath.Join(nodeDir, "bin", "node"), &plainImageNode)
		run(sb, runtime.Image{}, "/usr/bin/node", &sandboxed)
		run(bare, runtime.Image{}, "/usr/bin/node", &plain)
	}
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	b.ReportMetric(ms(mean(sandboxed)), "ms-sandbox/op")
	b.ReportMetric(ms(mean(plain)), "ms-bare/op")
	b.ReportMetric(float64(mean(sandboxed))/float64(mean(plain)), "ratio")
	b.ReportMetric(ms(mean(imaged)), "ms-image/op")
	b.ReportMetric(ms(mean(plainImageNode)), "ms-bare-image-node/op")
	b.ReportMetric(float64(mean(imaged))/float64(mean(plainImageNode)), "ratio-image")
	// Medians, which one slow start of many on a shared host moves less.
	b.ReportMetric(ms(median(imaged)), "ms-image-median")
	b.ReportMetric(ms(median(plainImageNode)), "ms-bare-image-node-median")
	b.ReportMetric(float64(median(imaged))/float64(median(plainImageNode)), "ratio-image-median")
	b.ReportMetric(float64(median(sandboxed))/float64(median(plain)), "ratio-median")
	b.ReportMetric(float64(overheadKiB)/float64(b.N)/1024, "MiB-host-overhead/executor")
}

func mean(ts []time.Duration) time.Duration {
	var sum time.Duration
	for _, t := range ts {
		sum += t
	}
	return sum / time.Duration(len(ts))
}

func median(ts []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(ts))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
