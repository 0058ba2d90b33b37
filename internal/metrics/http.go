package metrics

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// API instruments the API's routes: requests by route pattern and status
// code, and their duration by route. It must wrap the API's ServeMux
// itself, with no handler between that copies the request (as
// api.Config.Middleware does): the mux records the matched pattern in
// r.Pattern, which it reads once next returns. A request that matched no
// pattern counts as "unmatched".
func (m *Metrics) API(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		defer func() {
			route := r.Pattern
			if route == "" {
				route = "unmatched"
			}
			m.apiRequests.WithLabelValues(route, strconv.Itoa(rec.status())).Inc()
			m.apiDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
		}()
		next.ServeHTTP(rec, r)
	})
}

// RequestStarted counts an app request in flight; with RequestEnded it
// makes Metrics a router.Observer.
func (m *Metrics) RequestStarted() { m.routerInFlight.Inc() }

// RequestEnded counts an app request by org, app and status class, and
// observes its duration by org and app. Requests for hosts no app is
// routed at count with empty org and app, so that made-up Host headers add
// no series.
func (m *Metrics) RequestEnded(host string, routed bool, status int, d time.Duration) {
	m.routerInFlight.Dec()
	var org, app string
	if routed {
		org, app = appOf(host)
	}
	m.routerRequests.WithLabelValues(org, app, statusClass(status)).Inc()
	m.routerDuration.WithLabelValues(org, app).Observe(d.Seconds())
}

// statusClass returns "2xx" for 200 and so on, without allocating.
func statusClass(status int) string {
	switch status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	}
	return strconv.Itoa(status/100) + "xx"
}

// appOf returns the org and app an app's host names:
// "<org>-<app>.<domain>[:port]" (hangar.App.Hostname). Org names have no
// '-' (hangar.ValidateUserName), so the first one ends the org.
func appOf(host string) (org, app string) {
	label, _, _ := strings.Cut(strings.ToLower(host), ".")
	org, app, _ = strings.Cut(label, "-")
	return org, app
}

// recorder remembers the status code of a response. Unwrap lets
// http.ResponseController reach the connection underneath, to flush
// streamed responses and to hijack upgraded ones.
type recorder struct {
	http.ResponseWriter
	code int
}

func (r *recorder) WriteHeader(code int) {
	// 1xx responses other than 101 precede the final one.
	if r.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// status is the response's status code: 200 when the handler wrote
// nothing, as net/http then sends.
func (r *recorder) status() int {
	if r.code == 0 {
		return http.StatusOK
	}
	return r.code
}
