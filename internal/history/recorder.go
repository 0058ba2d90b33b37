package history

import (
	"math"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Latency buckets: bucket i holds durations up to bucketBase·growth^i, so a
// percentile read from them is at most 25 % above the true one. 64
// buckets reach past 20 minutes; longer requests land in the last.
const (
	nBuckets   = 64
	growth     = 1.25
	bucketBase = time.Millisecond
)

// counts are one host's requests of the current interval.
type counts struct {
	classes [4]int // 2xx (and 1xx), 3xx, 4xx, 5xx
	buckets [nBuckets]uint32
}

func (c *counts) add(status int, d time.Duration) {
	class := status/100 - 2
	c.classes[min(max(class, 0), 3)]++
	i := 0
	if d > bucketBase {
		i = int(math.Ceil(math.Log(float64(d)/float64(bucketBase)) / math.Log(growth)))
	}
	c.buckets[min(i, nBuckets-1)]++
}

// quantile returns the upper bound of the bucket holding the q-quantile.
func (c *counts) quantile(q float64) time.Duration {
	var total uint64
	for _, n := range c.buckets {
		total += uint64(n)
	}
	if total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, n := range c.buckets {
		seen += uint64(n)
		if seen >= rank {
			return time.Duration(float64(bucketBase) * math.Pow(growth, float64(i)))
		}
	}
	return time.Duration(float64(bucketBase) * math.Pow(growth, nBuckets-1))
}

// Routes is the router as the recorder sees it; *router.Router satisfies
// it.
type Routes interface {
	http.Handler
	// Has reports whether host is routed to an app.
	Has(host string) bool
}

// Recorder counts app requests per host for the Sampler. It is safe for
// concurrent use; its zero value is not: use NewRecorder.
type Recorder struct {
	mu    sync.Mutex
	hosts map[string]*counts
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{hosts: map[string]*counts{}} }

// Wrap counts the requests rt serves for the hosts it routes (a made-up
// Host header adds nothing), and routes like rt.
func (r *Recorder) Wrap(rt Routes) Routes {
	return wrapped{Routes: rt, h: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !rt.Has(req.Host) {
			rt.ServeHTTP(w, req)
			return
		}
		start := time.Now()
		rec := &statusWriter{ResponseWriter: w}
		// Deferred: the reverse proxy aborts a response whose upstream
		// fails midway with a panic (http.ErrAbortHandler).
		defer func() { r.add(strings.ToLower(req.Host), rec.status(), time.Since(start)) }()
		rt.ServeHTTP(rec, req)
	})}
}

// wrapped is a Routes whose requests go through h.
type wrapped struct {
	Routes
	h http.Handler
}

func (w wrapped) ServeHTTP(rw http.ResponseWriter, r *http.Request) { w.h.ServeHTTP(rw, r) }

func (r *Recorder) add(host string, status int, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.hosts[host]
	if c == nil {
		c = &counts{}
		r.hosts[host] = c
	}
	c.add(status, d)
}

// take returns the counts since the last take, by host, and starts anew.
func (r *Recorder) take() map[string]*counts {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.hosts
	r.hosts = map[string]*counts{}
	return h
}

// statusWriter remembers the status code of a response. Unwrap lets
// http.ResponseController reach the connection underneath.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && (code >= 200 || code == http.StatusSwitchingProtocols) {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if w.code == 0 {
		return http.StatusOK
	}
	return w.code
}
