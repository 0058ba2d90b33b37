package router

import (
	"bufio"
	"context"
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

// BenchmarkRouter_ProxyHTTP1 measures the same GET on the raw path, as the
// front door's own HTTP/1.1 loop hands it over.
func BenchmarkRouter_ProxyHTTP1(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "greeter v1")
	}))
	b.Cleanup(up.Close)
	r := newRouter(b)
	r.Set("app.test", []string{up.Listener.Addr().String()})
	req := rawGET("GET", "app.test", "/")
	b.SetParallelism(16)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := bufio.NewWriter(io.Discard)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		for pb.Next() {
			r.ProxyHTTP1(ctx, []byte("app.test"), req, false, false, w)
			w.Flush()
		}
	})
}
