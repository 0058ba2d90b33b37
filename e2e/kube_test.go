package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/hangar-oss/hangar/internal/apiclient"
	"github.com/hangar-oss/hangar/internal/runtime/kube/kubetest"
)

// The kubernetes driver end to end runs on the one-node cluster of `make
// k8s-test` (HANGAR_TEST_KUBECONFIG, HANGAR_TEST_CONTAINERD_HOSTS); it
// skips without it.

// TestKubernetes_Deploy deploys the TypeScript fixture with the official
// CLI to a Hangar whose executors are Pods on the one-node cluster, images
// pushed to a real registry: it serves over HTTPS through the router and
// reaches its database through the forward; a Pod deleted from outside is
// replaced and its pending workflow finishes on the replacement; OOM is
// reported with its limit; `app cmd` runs in the Pod; `app executors`
// shows its memory and CPU; a redeploy under load fails no request.
func TestKubernetes_Deploy(t *testing.T) {
	kc := os.Getenv("HANGAR_TEST_KUBECONFIG")
	if kc == "" {
		t.Skip("HANGAR_TEST_KUBECONFIG is not set: run make k8s-test")
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", kc)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	nsObj, err := cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "hk-e2e-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns := nsObj.Name
	t.Cleanup(func() { cs.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{}) })
	nodes, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
	if err != nil || len(nodes.Items) == 0 {
		t.Fatalf("list nodes: %v", err)
	}
	var node string
	for _, a := range nodes.Items[0].Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			node = a.Address
		}
	}
	reg := kubetest.Registry(t)

	h := startHangar(t, "--driver", "kubernetes", "--kubeconfig", kc, "--k8s-namespace", ns,
		"--registry", "http://"+reg, "--k8s-forward-addr", node)
	refresh := h.AddUser(t, "exec") // the org waitAppLog reads
	hc := h.HTTPClient(t)
	c := h.Client(t, refresh)
	dir := fixture(t, "greeter", map[string]func(string) string{
		"app.mjs": func(s string) string { return strings.Replace(s, "\nDBOS.setConfig(", executorRoutes, 1) },
		"migrate.mjs": func(s string) string {
			return strings.Replace(s, `console.log("migrate: table greetings is ready");`,
				`await client.query("CREATE TABLE IF NOT EXISTS slow_steps (tag text NOT NULL, step int NOT NULL, executor text NOT NULL, at timestamptz DEFAULT now())");
  console.log("migrate: tables greetings and slow_steps are ready");`, 1)
		},
	})
	if out, code := h.ours(t, dir, "login", "--with-refresh-token", refresh); code != 0 {
		t.Fatalf("dbos-cloud login: exit %d\n%s", code, out)
	}
	if out, code := h.official(t, dir, "db", "provision", "appdb", "-U", "dbos_admin", "-W", "s3cret-pass"); code != 0 {
		t.Fatalf("official db provision: exit %d\n%s", code, out)
	}
	begin := time.Now()
	out, code := h.official(t, dir, "app", "deploy")
	if code != 0 {
		t.Fatalf("official app deploy: exit %d\n%s", code, out)
	}
	t.Logf("deploy took %v", time.Since(begin))
	url := "https://exec-greeter." + h.Domain + "/"
	greet := func(name string) {
		t.Helper()
		if status, body := get(t, hc, url+"greet/"+name); status != http.StatusOK || !strings.Contains(body, "Hello, "+name+"!") {
			t.Fatalf("GET greet/%s = %d %s", name, status, body)
		}
	}
	greet("bob") // the workflow writes to the app's database through the forward

	pods := func() []corev1.Pod {
		l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: "hangar.dev/app=greeter"})
		if err != nil {
			t.Fatal(err)
		}
		return l.Items
	}
	before := pods()
	if len(before) != 1 || before[0].Status.PodIP == "" {
		t.Fatalf("got Pods %v, want the one executor's", before)
	}

	t.Run("Cmd", func(t *testing.T) {
		out, code := h.ours(t, dir, "app", "cmd", "--", "id -u; hostname")
		if code != 0 || !strings.Contains(out, "200001") || !strings.Contains(out, before[0].Name) {
			t.Errorf("app cmd: exit %d, want uid 200001 in Pod %s:\n%s", code, before[0].Name, out)
		}
	})

	t.Run("Executors", func(t *testing.T) {
		// The kubelet samples every few seconds: wait for a reading.
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(time.Second) {
			var exs []apiclient.ExecutorStats
			if err := c.Do(t.Context(), http.MethodGet, "/hangar/v1/exec/applications/greeter/executors", nil, &exs); err != nil {
				t.Fatal(err)
			}
			if len(exs) == 1 && exs[0].Usage != nil {
				if u := exs[0].Usage; exs[0].State != "SERVING" || u.MemoryLimitBytes != 512<<20 || u.MemoryBytes == 0 || u.CPUSeconds <= 0 {
					t.Errorf("executor %+v, usage %+v: want SERVING with memory and CPU time used under a 512 MiB limit", exs[0], *u)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("executors %+v: no usage after 60s", exs)
			}
		}
		out, code := h.ours(t, dir, "app", "executors")
		if code != 0 || !strings.Contains(out, "SERVING") || !strings.Contains(out, "/ 512 MiB") || strings.Contains(out, "- / 512 MiB") {
			t.Errorf("app executors: exit %d, want the Pod SERVING with its memory of 512 MiB:\n%s", code, out)
		}
		t.Logf("app executors:\n%s", out)
	})

	t.Run("RedeployUnderLoad", func(t *testing.T) {
		var ok, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					resp, err := hc.Get(url + "greet/load")
					if err == nil {
						resp.Body.Close()
						if resp.StatusCode == http.StatusOK {
							ok.Add(1)
							continue
						}
						err = errors.New(resp.Status)
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				}
			})
		}
		out, code := h.official(t, dir, "app", "deploy")
		close(stop)
		wg.Wait()
		if code != 0 {
			t.Fatalf("redeploy: exit %d\n%s", code, out)
		}
		t.Logf("requests during the redeploy: %d ok, %d failed", ok.Load(), failed.Load())
		if failed.Load() != 0 || ok.Load() == 0 {
			t.Errorf("%d requests failed during the redeploy (first: %v), %d ok", failed.Load(), firstErr.Load(), ok.Load())
		}
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(500 * time.Millisecond) {
			if now := pods(); len(now) == 1 && now[0].Name != before[0].Name {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after the redeploy, Pods %v, want only the new version's", podNames(pods()))
			}
		}
	})

	t.Run("PodDeletedMidWorkflow", func(t *testing.T) {
		port := instancePort(t, c, "exec", "appdb")
		sys := connect(t, "postgres://dbos_admin:s3cret-pass@127.0.0.1:"+port+"/greeter_dbos_sys?sslmode=disable")
		var started struct{ WorkflowID, Executor string }
		if status, body := get(t, hc, url+"slow/k1"); status != http.StatusOK || json.Unmarshal([]byte(body), &started) != nil {
			t.Fatalf("GET /slow/k1 = %d %s", status, body)
		}
		waitAppLog(t, c, "slow k1: step 2 started on "+started.Executor)
		before := pods()
		if len(before) != 1 || before[0].Labels["hangar.dev/executor"] != started.Executor {
			t.Fatalf("Pods %v, want the one of executor %s", podNames(before), started.Executor)
		}
		if err := cs.CoreV1().Pods(ns).Delete(t.Context(), before[0].Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		deleted := time.Now()
		var status, executor string
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
			if err := sys.QueryRow(t.Context(), "SELECT status, executor_id FROM dbos.workflow_status WHERE workflow_uuid = $1",
				started.WorkflowID).Scan(&status, &executor); err != nil {
				t.Fatal(err)
			}
			if status == "SUCCESS" || status == "ERROR" || time.Now().After(deadline) {
				break
			}
		}
		t.Logf("workflow %s: %s on %s, %v after its Pod was deleted", started.WorkflowID, status, executor, time.Since(deleted).Round(time.Millisecond))
		if status != "SUCCESS" || executor == started.Executor {
			t.Fatalf("workflow is %s on %s, want SUCCESS on the replacement of %s; Pods: %v", status, executor, started.Executor, podNames(pods()))
		}
		greet("carol")
	})

	t.Run("OOM", func(t *testing.T) {
		before := pods()
		dead := before[0].Labels["hangar.dev/executor"]
		if resp, err := hc.Get(url + "hog"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Fatal("GET /hog answered 200: the Pod's memory limit was not enforced")
			}
		}
		waitAppLog(t, c, "executor "+dead+" was killed: out of memory (limit 512 MiB)")
		for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(500 * time.Millisecond) {
			if status, _ := get(t, hc, url+"greet/dave"); status == http.StatusOK {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no replacement serving 3 minutes after the OOM kill; Pods: %v", podNames(pods()))
			}
		}
	})
}

func podNames(ps []corev1.Pod) []string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s(%s)", p.Name, p.Status.Phase))
	}
	return out
}
