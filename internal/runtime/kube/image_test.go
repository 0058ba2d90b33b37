package kube

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hangar-oss/hangar/internal/image"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/kube/kubetest"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// baseLayers gives the shared test image cache's Debian base (built once
// per machine, docs/images.md) as the only layer below the app folder.
type baseLayers struct{ dir, key string }

func (b baseLayers) Layers(context.Context, runtime.Image) ([]Layer, error) {
	return []Layer{{Dir: b.dir, At: "/", Key: "base-" + b.key}}, nil
}

func testBase(t *testing.T) baseLayers {
	t.Helper()
	dir := os.Getenv("HANGAR_TEST_IMAGE_CACHE")
	if dir == "" {
		dir = "/var/cache/hangar-test-images"
	}
	c, err := image.New(image.Config{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	base, err := c.Base(t.Context())
	if err != nil {
		t.Fatalf("base image: %v", err)
	}
	return baseLayers{dir: base, key: c.BaseKey()}
}

const appPy = `import http.server, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        b = open("/app/greeting").read().encode()
        self.send_response(200); self.send_header("Content-Length", str(len(b))); self.end_headers(); self.wfile.write(b)
http.server.HTTPServer(("", 3000), H).serve_forever()
`

// TestPublisher_Redeploy pushes an app version's image to a real registry
// and checks that pushing an unchanged version again uploads no blob, and
// a changed app folder only its own layer and the image config; on a
// cluster, it then runs an executor from the image.
func TestPublisher_Redeploy(t *testing.T) {
	reg := kubetest.Registry(t)
	base := testBase(t)
	up := &uploads{}
	p, err := NewPublisher(PublisherConfig{Registry: reg, Insecure: true, CacheDir: t.TempDir(), Layers: base, Transport: up})
	if err != nil {
		t.Fatal(err)
	}
	app := t.TempDir()
	for name, content := range map[string]string{"server.py": appPy, "greeting": "hello v1"} {
		if err := os.WriteFile(filepath.Join(app, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	spec := runtime.Spec{ID: "img", App: "greeter", Version: "v1", Dir: app, Port: 3000, MemoryMiB: 128,
		Command: []string{"/usr/bin/python3", "/app/server.py"}, Image: runtime.Image{AppID: "app-1"}, Stdout: &runtimetest.SyncBuffer{}}

	push := func(version string, want int64) string {
		t.Helper()
		spec.Version = version
		before, begin := up.n.Load(), time.Now()
		ref, err := p.Ref(t.Context(), spec)
		if err != nil {
			t.Fatal(err)
		}
		got := up.n.Load() - before
		t.Logf("push %s: %d blobs uploaded in %v", version, got, time.Since(begin))
		if want >= 0 && got != want {
			t.Errorf("push %s: got %d blobs uploaded, want %d", version, got, want)
		}
		return ref
	}
	first := push("v1", -1)
	if files, _ := filepath.Glob(filepath.Join(p.cfg.CacheDir, "layer-base-*")); len(files) == 1 {
		fi, _ := os.Stat(files[0])
		t.Logf("base layer: %d MiB compressed", fi.Size()>>20)
	}
	if up.n.Load() < 3 {
		t.Errorf("first push: got %d blobs uploaded, want base, app folder and config", up.n.Load())
	}
	if again := push("v2", 0); again != first {
		t.Errorf("unchanged redeploy: got image %s, want the same %s", again, first)
	}
	if err := os.WriteFile(filepath.Join(app, "greeting"), []byte("hello v3"), 0o644); err != nil {
		t.Fatal(err)
	}
	push("v3", 2) // the app folder's layer and the config

	cfg, ns := cluster(t)
	d := newDriver(t, cfg, Config{Namespace: ns, Images: p})
	if _, err := d.Prepare(t.Context(), spec.ID); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), spec.ID, time.Second) })
	begin := time.Now()
	x, err := d.Start(t.Context(), spec)
	if err != nil {
		t.Fatal(err)
	}
	runtimetest.WaitHTTP(t, x.Addr)
	t.Logf("pod from the registry answering after %v", time.Since(begin))
	resp, err := http.Get("http://" + x.Addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b [64]byte
	n, _ := resp.Body.Read(b[:])
	if got := string(b[:n]); got != "hello v3" {
		t.Errorf("got %q from the executor, want the app folder's greeting %q", got, "hello v3")
	}
}
