package kube

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"

	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/runtimetest"
)

func TestStatus(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		term    corev1.ContainerStateTerminated
		code    int
		oom     bool
		wantErr string
	}{
		{"Exit", corev1.ContainerStateTerminated{ExitCode: 7, Reason: "Error"}, 7, false, ""},
		{"SIGTERM", corev1.ContainerStateTerminated{ExitCode: 143, Reason: "Error"}, 143, false, "killed by signal terminated"},
		{"OOM", corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}, 137, true,
			"killed by signal killed\nout of memory: killed for exceeding the memory limit of 512 MiB"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			st := status(&tc.term, 512)
			gotErr := ""
			if st.Err != nil {
				gotErr = st.Err.Error()
			}
			if st.ExitCode != tc.code || st.OOMKilled != tc.oom || gotErr != tc.wantErr {
				t.Errorf("got %d, %v, %q; want %d, %v, %q", st.ExitCode, st.OOMKilled, gotErr, tc.code, tc.oom, tc.wantErr)
			}
		})
	}
}

func TestPodSpec(t *testing.T) {
	t.Parallel()
	d := &Driver{cfg: Config{RuntimeClass: "gvisor"}}
	d.cfg.setDefaults()
	spec := runtime.Spec{ID: "x1", Org: "acme", App: "my app", Version: "01J", Port: 3000, MemoryMiB: 512,
		Command: []string{"/bin/sh", "-c", "npm start $$"}, Env: []string{"A=1", "B=x=y$(A)"}}
	pod := d.podSpec("hg-x1", "reg/app@sha256:00", runtime.AppDir, false, spec)
	c := pod.Spec.Containers[0]
	if diff := cmp.Diff(map[string]string{
		LabelManagedBy: "hangar", LabelPrefix: "hg", LabelExecutor: "x1", LabelOrg: "acme", LabelApp: "my_app", LabelVersion: "01J",
	}, pod.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	// The kubelet expands $(NAME) and $$: each $ is doubled, so the app
	// gets its Spec's strings; the runtime's PATH is unset, as the Spec
	// sets none.
	if diff := cmp.Diff([]corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "x=y$$(A)"}}, c.Env); diff != "" {
		t.Errorf("env (-want +got):\n%s", diff)
	}
	if got := c.Command[len(c.Command)-1]; got != "npm start $$$$" {
		t.Errorf("got command %q, want every $ doubled", got)
	}
	if !strings.HasPrefix(c.Command[2], "unset PATH KUBERNETES_SERVICE_HOST ") {
		t.Errorf("got init script %q, want it to unset the runtime's PATH and the API server's address", c.Command[2])
	}
	if *pod.Spec.RuntimeClassName != "gvisor" || *pod.Spec.AutomountServiceAccountToken || *pod.Spec.EnableServiceLinks {
		t.Errorf("got runtime class %q, token %v, service links %v; want gvisor and neither", *pod.Spec.RuntimeClassName,
			*pod.Spec.AutomountServiceAccountToken, *pod.Spec.EnableServiceLinks)
	}
	if c.ReadinessProbe.TCPSocket.Port.IntValue() != 3000 || c.WorkingDir != runtime.AppDir {
		t.Errorf("got probe %+v and dir %s, want port 3000 and %s", c.ReadinessProbe, c.WorkingDir, runtime.AppDir)
	}
	if got := c.Resources.Limits.Memory().Value(); got != 512<<20 || c.Resources.Limits.Cpu().MilliValue() != 1000 {
		t.Errorf("got limits %v, want 512 MiB and 1 CPU", c.Resources.Limits)
	}
	if len(pod.Spec.Volumes) != 1 || pod.Spec.Volumes[0].EmptyDir.SizeLimit.Value() != 64<<20 {
		t.Errorf("got volumes %+v, want only a 64 MiB /tmp", pod.Spec.Volumes)
	}
}

// TestWriteLayer checks that a layer is the same bytes for the same tree,
// whatever the files' times, and that owners in the app's range are
// shifted to the image's.
func TestWriteLayer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sub", "f"), []byte("data"), 0o644); err != nil {
		t.Fatal(err)
	}
	var a, b bytes.Buffer
	if err := writeLayer(&a, Layer{Dir: dir, At: "/opt/x"}); err != nil {
		t.Fatal(err)
	}
	now := os.Getpid()
	os.Chtimes(filepath.Join(dir, "sub", "f"), time.Unix(1e9, 0).AddDate(0, 0, now%300), time.Unix(1e9, 0))
	if err := writeLayer(&b, Layer{Dir: dir, At: "/opt/x"}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("the same tree with other times gave another layer")
	}
	zr, err := gzip.NewReader(&a)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if diff := cmp.Diff([]string{"opt/", "opt/x/", "opt/x/sub/", "opt/x/sub/f"}, names); diff != "" {
		t.Errorf("entries (-want +got):\n%s", diff)
	}
	if got := shift(1<<20+1000, 1<<20); got != 1000 {
		t.Errorf("shift: got %d, want 1000", got)
	}
}

// TestForwards checks that a relay hands a connection to the forward of
// the address it comes from, and closes others unanswered.
func TestForwards(t *testing.T) {
	t.Parallel()
	target := runtimetest.EchoServer(t, "127.0.0.1:0")
	f, err := openForwards("127.0.0.1", []runtime.Forward{{ListenPort: freePort(t), Target: target}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	f.register("127.0.0.1")
	var addr string
	for r := range f.targets {
		addr = r.ln.Addr().String()
	}
	dial := func(from string) string {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		c, err := d.DialContext(t.Context(), "tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "ping")
		c.(*net.TCPConn).CloseWrite()
		b, _ := io.ReadAll(c)
		return string(b)
	}
	if got := dial("127.0.0.1"); got != "pong:ping" {
		t.Errorf("from the registered address: got %q, want pong:ping", got)
	}
	if got := dial("127.0.0.2"); got != "" {
		t.Errorf("from another address: got %q, want the connection closed unanswered", got)
	}
}

func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestEgressPolicy checks how the one-host egress policy becomes
// NetworkPolicy rules, which only allow: each allowed range with the
// denied ranges inside it as exceptions.
func TestEgressPolicy(t *testing.T) {
	t.Parallel()
	rule := func(cidr string, except ...string) networkingv1.NetworkPolicyEgressRule {
		return networkingv1.NetworkPolicyEgressRule{To: []networkingv1.NetworkPolicyPeer{{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}}}
	}
	cidrs := func(np *networkingv1.NetworkPolicy) []networkingv1.NetworkPolicyEgressRule {
		var out []networkingv1.NetworkPolicyEgressRule
		for _, r := range np.Spec.Egress {
			if r.To[0].IPBlock != nil && r.Ports == nil {
				out = append(out, r)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		eg   runtime.Egress
		want []networkingv1.NetworkPolicyEgressRule
	}{
		{"Default", runtime.Egress{}, []networkingv1.NetworkPolicyEgressRule{
			rule("0.0.0.0/0", "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16")}},
		{"AllowAndDeny", runtime.Egress{Allow: []string{"10.1.0.0/16", "192.168.5.0/24"}, Deny: []string{"203.0.113.0/24", "10.1.2.0/24", "192.168.0.0/16"}},
			[]networkingv1.NetworkPolicyEgressRule{
				rule("0.0.0.0/0", "10.0.0.0/8", "100.64.0.0/10", "172.16.0.0/12", "192.168.0.0/16", "203.0.113.0/24"),
				rule("10.1.0.0/16", "10.1.2.0/24"), // 192.168.5.0/24 is denied whole
			}},
		{"Off", runtime.Egress{Allow: []string{"10.1.0.0/16"}, Deny: []string{"0.0.0.0/0"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			np, err := egressPolicy("ns", "hg", "10.215.0.1", tc.eg)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, cidrs(np)); diff != "" {
				t.Errorf("address rules (-want +got):\n%s", diff)
			}
			// DNS and the forwards are always allowed, and only egress
			// is restricted, for the prefix's Pods.
			if n := len(np.Spec.Egress) - len(tc.want); n != 2 || np.Spec.Egress[len(np.Spec.Egress)-1].To[0].IPBlock.CIDR != "10.215.0.1/32" {
				t.Errorf("got rules %+v, want DNS and the forward address after the address rules", np.Spec.Egress)
			}
			if diff := cmp.Diff(map[string]string{LabelManagedBy: "hangar", LabelPrefix: "hg"}, np.Spec.PodSelector.MatchLabels); diff != "" ||
				!slices.Equal(np.Spec.PolicyTypes, []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}) {
				t.Errorf("selector (-want +got):\n%s; policy types %v", diff, np.Spec.PolicyTypes)
			}
		})
	}
	if _, err := egressPolicy("ns", "hg", "", runtime.Egress{Deny: []string{"fd00::/8"}}); err == nil {
		t.Error("an IPv6 prefix: got no error")
	}
}
