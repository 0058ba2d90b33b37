package kube

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/kube/kubetest"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

// The tests below run against a real cluster: `make k8s-test` brings up a
// one-node cluster (scripts/k8s) and sets
//   - HANGAR_TEST_KUBECONFIG, its admin kubeconfig;
//   - HANGAR_TEST_CONTAINERD_HOSTS, the containerd hosts directory
//     (config_path) where a test registry is declared to the node.
// Without them they skip.

// cluster returns the test cluster's client config and a fresh namespace,
// deleted when the test ends.
func cluster(t *testing.T) (*rest.Config, string) {
	t.Helper()
	kc := os.Getenv("HANGAR_TEST_KUBECONFIG")
	if kc == "" {
		t.Skip("HANGAR_TEST_KUBECONFIG is not set: run make k8s-test")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 100, 200
	cs := kubernetes.NewForConfigOrDie(cfg)
	ns, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hk-test-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	// A fresh namespace gets its default service account a moment later.
	for deadline := time.Now().Add(30 * time.Second); ; {
		if _, err := cs.CoreV1().ServiceAccounts(ns.Name).Get(t.Context(), "default", metav1.GetOptions{}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("namespace has no default service account after 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cfg, ns.Name
}

// uploads counts the blobs a Publisher uploads: each upload session starts
// with a POST to .../blobs/uploads/.
type uploads struct {
	n atomic.Int64
}

func (u *uploads) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.URL.Query().Get("mount") == "" {
		u.n.Add(1)
	}
	return http.DefaultTransport.RoundTrip(r)
}

type noLayers struct{}

func (noLayers) Layers(context.Context, runtime.Image) ([]Layer, error) { return nil, nil }

// hostRootImage pushes the image Config.HostRootImage names in tests: one
// empty layer, no environment.
func hostRootImage(t *testing.T, reg string) string {
	t.Helper()
	p, err := NewPublisher(PublisherConfig{Registry: reg, Insecure: true, CacheDir: t.TempDir(), Layers: noLayers{}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := p.Push(t.Context(), "hostroot", "v1", []Layer{{Dir: t.TempDir(), At: "/"}})
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// nodeAddr returns the internal address of the cluster's node: on the
// one-node test cluster, this host, which the Pods reach without address
// translation, as the forwards need.
func nodeAddr(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	nodes, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("list nodes: %v (%d)", err, len(nodes.Items))
	}
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	t.Fatal("the node has no internal IP")
	return ""
}

func newDriver(t *testing.T, cfg *rest.Config, c Config) *Driver {
	t.Helper()
	d, err := New(t.Context(), c, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Close)
	return d
}

func TestDriver_Conformance(t *testing.T) {
	cfg, ns := cluster(t)
	ref := hostRootImage(t, kubetest.Registry(t))
	node := nodeAddr(t, cfg)
	var n atomic.Int64
	runtimetest.Run(t, func(t *testing.T) runtime.Driver {
		return newDriver(t, cfg, Config{Namespace: ns, Prefix: fmt.Sprintf("c%d", n.Add(1)), HostRootImage: ref, ForwardAddr: node})
	})
}

// TestDriver_OOM checks that a container killed for its memory is
// reported as the sandbox driver reports it, with its limit.
func TestDriver_OOM(t *testing.T) {
	cfg, ns := cluster(t)
	ref := hostRootImage(t, kubetest.Registry(t))
	d := newDriver(t, cfg, Config{Namespace: ns, HostRootImage: ref})
	id := "oom"
	if _, err := d.Prepare(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), id, time.Second) })
	spec := runtime.Spec{
		ID: id, App: "oom", Version: "v1", Dir: t.TempDir(), Port: 3000, MemoryMiB: 64,
		Command: []string{"/usr/bin/python3", "-c", "b = []\nwhile True: b.append(bytearray(1 << 20))"},
	}
	if _, err := d.Start(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	st, err := d.Wait(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if !st.OOMKilled || st.ExitCode != 137 || st.Err == nil || !strings.Contains(st.Err.Error(), "memory limit of 64 MiB") {
		t.Errorf("got %+v, want OOMKilled, exit code 137 and the 64 MiB limit named", st)
	}
}

// TestDriver_Pod checks the Pod an executor runs in: its labels and the
// isolation it asks of the kubelet.
func TestDriver_Pod(t *testing.T) {
	cfg, ns := cluster(t)
	ref := hostRootImage(t, kubetest.Registry(t))
	d := newDriver(t, cfg, Config{Namespace: ns, HostRootImage: ref, Prefix: "pod"})
	if _, err := d.Prepare(t.Context(), "lab"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Stop(context.Background(), "lab", time.Second) })
	spec := runtime.Spec{ID: "lab", Org: "acme", App: "shop", Version: "01JX", Dir: t.TempDir(), Port: 3000, MemoryMiB: 256,
		Command: []string{"/bin/sleep", "60"}}
	if _, err := d.Start(t.Context(), spec); err != nil {
		t.Fatal(err)
	}
	pod, err := kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods(ns).Get(t.Context(), "pod-lab", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{LabelOrg: "acme", LabelApp: "shop", LabelVersion: "01JX", LabelExecutor: "lab"} {
		if pod.Labels[k] != v {
			t.Errorf("label %s: got %q, want %q", k, pod.Labels[k], v)
		}
	}
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	if !*pod.Spec.SecurityContext.RunAsNonRoot || *sc.AllowPrivilegeEscalation || !*sc.ReadOnlyRootFilesystem || sc.Capabilities.Drop[0] != "ALL" ||
		pod.Spec.SecurityContext.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("got security contexts %+v and %+v, want non-root, no escalation, read-only root, no capabilities, RuntimeDefault seccomp", pod.Spec.SecurityContext, sc)
	}
	if got := c.Resources.Limits.Memory().Value(); got != 256<<20 {
		t.Errorf("memory limit: got %d, want 256 MiB", got)
	}
	// The root is read-only to the app; /tmp is its own, and bounded.
	var out runtimetest.SyncBuffer
	code, err := d.Exec(t.Context(), "lab", runtime.ExecSpec{Args: []string{"/bin/sh", "-c", "touch /x 2>/dev/null; echo $?; id -u; touch /tmp/y && echo tmp ok"}, Stdout: &out, Stderr: &out})
	if err != nil || code != 0 {
		t.Fatalf("exec: %d, %v", code, err)
	}
	if got := out.String(); !strings.Contains(got, "1\n200001\ntmp ok") {
		t.Errorf("got %q, want the root read-only, uid 200001 and /tmp writable", got)
	}
	// Its resource use, from the kubelet's summary once it sampled it.
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		st, err := d.Stats(t.Context(), "lab")
		if err == nil {
			if st.MemoryBytes == 0 || st.MemoryLimitBytes != 256<<20 || st.Pids < 1 {
				t.Errorf("got stats %+v, want memory in use, the 256 MiB limit and processes", st)
			}
			break
		}
		if hangar.KindOf(err) != hangar.KindUnavailable || time.Now().After(deadline) {
			t.Fatalf("Stats: %v", err)
		}
	}
}

// routes records the routes Endpoints sets.
type routes struct {
	mu sync.Mutex
	m  map[string][]string
}

func (r *routes) Set(host string, ups []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.m[host] = ups
}

func (r *routes) InFlight(string) int64 { return 0 }

func (r *routes) SetLimit(string, int) {}

func (r *routes) get(host string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.m[host]
}

// TestEndpoints checks that the router gets the executors the fleet
// routes a host to, less the Pods that are not ready and those being
// deleted, as the Pod informer sees them.
func TestEndpoints(t *testing.T) {
	cfg, ns := cluster(t)
	ref := hostRootImage(t, kubetest.Registry(t))
	d := newDriver(t, cfg, Config{Namespace: ns, HostRootImage: ref, Prefix: "ep"})
	rt := &routes{m: map[string][]string{}}
	ep, err := d.Endpoints(rt)
	if err != nil {
		t.Fatal(err)
	}
	// The app ignores SIGTERM, so that its Pod stays a while once deleted.
	serve := []string{"/bin/sh", "-c", "trap '' TERM; exec /usr/bin/python3 -m http.server 3000"}
	addrs := map[string]string{}
	for id, cmd := range map[string][]string{"a": serve, "b": {"/bin/sleep", "600"}, "c": serve} {
		if _, err := d.Prepare(t.Context(), id); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Stop(context.Background(), id, 0) })
		x, err := d.Start(t.Context(), runtime.Spec{ID: id, App: "ep", Version: "v1", Dir: t.TempDir(), Port: 3000, Command: cmd})
		if err != nil {
			t.Fatal(err)
		}
		addrs[id] = x.Addr
	}
	until := func(what string, want ...string) {
		t.Helper()
		slices.Sort(want)
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			got := slices.Sorted(slices.Values(rt.get("h")))
			if slices.Equal(got, want) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: router has %v, want %v", what, got, want)
			}
		}
	}
	ep.Set("h", []string{addrs["a"], addrs["b"], addrs["c"]})
	until("b never listens", addrs["a"], addrs["c"])

	cs := kubernetes.NewForConfigOrDie(cfg)
	grace := int64(60)
	if err := cs.CoreV1().Pods(ns).Delete(t.Context(), "ep-a", metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	until("a is being deleted", addrs["c"])
	if p, err := cs.CoreV1().Pods(ns).Get(t.Context(), "ep-a", metav1.GetOptions{}); err != nil || p.DeletionTimestamp == nil {
		t.Errorf("a's Pod: got %v, want it still there, terminating", err)
	}
	ep.Set("h", nil)
	until("the route removed")
}

// TestDriver_EgressPolicy checks that the driver creates its egress
// NetworkPolicy, which the API server validates, and updates it when the
// policy changes. (The test cluster's bridge CNI does not enforce it.)
func TestDriver_EgressPolicy(t *testing.T) {
	cfg, ns := cluster(t)
	cs := kubernetes.NewForConfigOrDie(cfg)
	for _, eg := range []runtime.Egress{
		{},
		{Allow: []string{"10.1.0.0/16"}, Deny: []string{"203.0.113.0/24", "10.1.2.0/24"}},
	} {
		d := newDriver(t, cfg, Config{Namespace: ns, Prefix: "np", ForwardAddr: "192.0.2.2", Egress: &eg})
		d.Close()
		got, err := cs.NetworkingV1().NetworkPolicies(ns).Get(t.Context(), "np-egress", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want, err := egressPolicy(ns, "np", "192.0.2.2", eg)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Spec, got.Spec); diff != "" {
			t.Errorf("egress %+v: policy spec (-want +got):\n%s", eg, diff)
		}
	}
}

// TestDriver_RemovePrefix: a replica taking a dead one over removes the
// Pods of the dead one's prefix and leaves its own.
func TestDriver_RemovePrefix(t *testing.T) {
	cfg, ns := cluster(t)
	ref := hostRootImage(t, kubetest.Registry(t))
	dead := newDriver(t, cfg, Config{Namespace: ns, HostRootImage: ref, Prefix: "dead"})
	live := newDriver(t, cfg, Config{Namespace: ns, HostRootImage: ref, Prefix: "live"})
	for _, d := range []*Driver{dead, live} {
		if _, err := d.Prepare(t.Context(), "ex"); err != nil {
			t.Fatal(err)
		}
		spec := runtime.Spec{ID: "ex", Org: "acme", App: "shop", Version: "01JX", Dir: t.TempDir(), Port: 3000, MemoryMiB: 256,
			Command: []string{"/bin/sleep", "60"}}
		if _, err := d.Start(t.Context(), spec); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { live.Stop(context.Background(), "ex", time.Second) })
	if err := live.RemovePrefix(t.Context(), "live"); err == nil {
		t.Error("RemovePrefix removed the driver's own prefix")
	}
	if err := live.RemovePrefix(t.Context(), "dead"); err != nil {
		t.Fatal(err)
	}
	pods := kubernetes.NewForConfigOrDie(cfg).CoreV1().Pods(ns)
	if p, err := pods.Get(t.Context(), "dead-ex", metav1.GetOptions{}); err == nil && p.DeletionTimestamp == nil {
		t.Error("dead-ex is still there, not being deleted")
	}
	if _, err := pods.Get(t.Context(), "live-ex", metav1.GetOptions{}); err != nil {
		t.Errorf("live-ex: %v", err)
	}
}
