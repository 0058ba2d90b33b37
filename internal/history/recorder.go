package history

import (
	"math"
	"net"
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

// Recorder counts app requests per host for the Sampler. It is safe for
// concurrent use; its zero value is not: use NewRecorder.
type Recorder struct {
	mu    sync.Mutex
	hosts map[string]*counts
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder { return &Recorder{hosts: map[string]*counts{}} }

// RequestStarted does nothing; with RequestEnded it makes a Recorder a
// router.Observer.
func (r *Recorder) RequestStarted() {}

// RequestEnded counts a request for a routed host (a made-up Host header
// adds nothing).
func (r *Recorder) RequestEnded(host string, routed bool, status int, d time.Duration) {
	if routed {
		r.add(hostKey(host), status, d)
	}
}

// hostKey is host as the Recorder counts it: lowercase, without a port or
// a trailing dot. The router reports the Host header on one path and its
// route's key on the other. It does not allocate for a key without a port
// (SplitHostPort's error would, on every request).
func hostKey(host string) string {
	host = strings.ToLower(host)
	if strings.IndexByte(host, ':') >= 0 {
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
	}
	return strings.TrimSuffix(host, ".")
}

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
