package router

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkRouter_Proxy measures a small GET through the router over
// keep-alive connections, client to router to executor: run it with
// -cpuprofile and -benchmem to see what a proxied request costs.
func BenchmarkRouter_Proxy(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "greeter v1")
	}))
	b.Cleanup(up.Close)
	r := newRouter(b)
	r.Set("app.test", []string{up.Listener.Addr().String()})
	front := httptest.NewServer(r)
	b.Cleanup(front.Close)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, _ := http.NewRequest(http.MethodGet, front.URL+"/", nil)
		req.Host = "app.test"
		for pb.Next() {
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
