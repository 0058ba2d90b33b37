package metrics

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/hangar-oss/hangar/internal/deploy"
	"github.com/hangar-oss/hangar/internal/router"
)

func newMetrics() *Metrics { return New(slog.New(slog.DiscardHandler)) }

// sampleCount returns how many observations the histogram name holds for
// the given label values (name=value pairs); -1 when it has none.
func sampleCount(t testing.TB, m *Metrics, name string, labels ...string) int {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			if hasLabels(mt, labels) {
				return int(mt.GetHistogram().GetSampleCount())
			}
		}
	}
	return -1
}

func hasLabels(mt *dto.Metric, pairs []string) bool {
	have := map[string]string{}
	for _, l := range mt.GetLabel() {
		have[l.GetName()] = l.GetValue()
	}
	for i := 0; i < len(pairs); i += 2 {
		if have[pairs[i]] != pairs[i+1] {
			return false
		}
	}
	return true
}

func get(t testing.TB, h http.Handler, method, host, path string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	req.Host = host
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w.Result()
}

func TestMetrics_API(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1alpha1/{org}/applications/{app}", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	})
	mux.HandleFunc("POST /v1alpha1/{org}/applications", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok") // an implicit 200
	})
	mux.HandleFunc("/", http.NotFound)
	h := m.API(mux)

	get(t, h, "GET", "localhost", "/v1alpha1/alice/applications/greeter")
	get(t, h, "GET", "localhost", "/v1alpha1/bob/applications/other")
	get(t, h, "POST", "localhost", "/v1alpha1/alice/applications")
	get(t, h, "GET", "localhost", "/no/such/route")
	get(t, h, "GET", "localhost", "/v1alpha1/alice/../bob/applications") // redirected by the mux, under the pattern that matched

	for _, tc := range []struct {
		route, code string
		want        float64
	}{
		{"GET /v1alpha1/{org}/applications/{app}", "401", 2},
		{"POST /v1alpha1/{org}/applications", "200", 1},
		{"/", "404", 1},
		{"/", "307", 1},
	} {
		if got := testutil.ToFloat64(m.apiRequests.WithLabelValues(tc.route, tc.code)); got != tc.want {
			t.Errorf("requests{route=%q, code=%s} = %v, want %v", tc.route, tc.code, got, tc.want)
		}
	}
	if got := sampleCount(t, m, "hangar_api_request_duration_seconds", "route", "GET /v1alpha1/{org}/applications/{app}"); got != 2 {
		t.Errorf("durations observed for the app route = %d, want 2", got)
	}
	// Routes are the registered patterns: no org, app or path makes a series.
	if n := testutil.CollectAndCount(m.apiRequests); n != 4 {
		t.Errorf("%d request series, want 4", n)
	}
}

func TestMetrics_Router(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "hello")
	}))
	t.Cleanup(upstream.Close)
	rt := router.New(slog.New(slog.DiscardHandler), m)
	rt.Set("alice-my-app.apps.test", []string{upstream.Listener.Addr().String()})
	h := rt

	if resp := get(t, h, "GET", "alice-my-app.apps.test:8443", "/"); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d through the router, want 200", resp.StatusCode)
	}
	get(t, h, "GET", "Alice-My-App.apps.test", "/")
	get(t, h, "GET", "alice-my-app.apps.test", "/fail")
	get(t, h, "GET", "mallory-random123.apps.test", "/") // no such app: 404

	for _, tc := range []struct {
		org, app, code string
		want           float64
	}{
		{"alice", "my-app", "2xx", 2},
		{"alice", "my-app", "5xx", 1},
		{"", "", "4xx", 1},
	} {
		if got := testutil.ToFloat64(m.routerRequests.WithLabelValues(tc.org, tc.app, tc.code)); got != tc.want {
			t.Errorf("router requests{org=%q, app=%q, code=%s} = %v, want %v", tc.org, tc.app, tc.code, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.routerRequests); n != 3 {
		t.Errorf("%d router request series, want 3: unknown hosts must not add any", n)
	}
	if got := sampleCount(t, m, "hangar_router_request_duration_seconds", "org", "alice", "app", "my-app"); got != 3 {
		t.Errorf("durations observed for alice/my-app = %d, want 3", got)
	}
	if got := testutil.ToFloat64(m.routerInFlight); got != 0 {
		t.Errorf("in flight = %v after the requests ended, want 0", got)
	}
}

func TestMetrics_RouterInFlight(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	entered, release := make(chan struct{}), make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		<-release
	}))
	t.Cleanup(upstream.Close)
	rt := router.New(slog.New(slog.DiscardHandler), m)
	rt.Set("alice-app.test", []string{upstream.Listener.Addr().String()})
	h := rt
	done := make(chan struct{})
	go func() {
		defer close(done)
		get(t, h, "GET", "alice-app.test", "/")
	}()
	<-entered
	if got := testutil.ToFloat64(m.routerInFlight); got != 1 {
		t.Errorf("in flight = %v while a request is proxied, want 1", got)
	}
	close(release)
	<-done
	if got := testutil.ToFloat64(m.routerInFlight); got != 0 {
		t.Errorf("in flight = %v after it ended, want 0", got)
	}
}

func TestAppOf(t *testing.T) {
	t.Parallel()
	for host, want := range map[string][2]string{
		"alice-greeter.localhost:8443":  {"alice", "greeter"},
		"alice-my-app.apps.example.com": {"alice", "my-app"},
		"ALICE_2-App.example.com.":      {"alice_2", "app"},
	} {
		if org, app := appOf(host); org != want[0] || app != want[1] {
			t.Errorf("appOf(%q) = %q, %q; want %q, %q", host, org, app, want[0], want[1])
		}
	}
}

func TestMetrics_Deploys(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	m.DeployEnded(true)
	m.DeployEnded(true)
	m.DeployEnded(false)
	m.StepEnded(deploy.StepUpload, 2*time.Second)
	m.StepEnded(deploy.StepUpload, time.Second)
	m.StepEnded(deploy.StepMigration, time.Minute)
	for outcome, want := range map[string]float64{"success": 2, "failure": 1} {
		if got := testutil.ToFloat64(m.deploys.WithLabelValues(outcome)); got != want {
			t.Errorf("deploys{outcome=%s} = %v, want %v", outcome, got, want)
		}
	}
	for step, want := range map[string]int{deploy.StepUpload: 2, deploy.StepMigration: 1} {
		if got := sampleCount(t, m, "hangar_deploy_step_duration_seconds", "step", step); got != want {
			t.Errorf("%s durations = %d, want %d", step, got, want)
		}
	}
}

func TestMetrics_Handler(t *testing.T) {
	t.Parallel()
	m := newMetrics()
	m.Watch(newSource())
	m.DeployEnded(true)
	h := m.Handler()

	resp := get(t, h, "GET", "127.0.0.1:9464", "/metrics")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d\n%s", resp.StatusCode, body)
	}
	for _, want := range []string{
		`hangar_deploys_total{outcome="success"} 1`,
		`hangar_executor_memory_limit_bytes{app="greeter",executor="ex-1",org="alice",version="v1"} 5.36870912e+08`,
		"go_goroutines ", // the Go runtime's collector
		"process_cpu_seconds_total ",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("GET /metrics lacks %q", want)
		}
	}
	for _, path := range []string{"/", "/metrics/x"} {
		if resp := get(t, h, "GET", "127.0.0.1:9464", path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", path, resp.StatusCode)
		}
	}
}
