package kube

import (
	"net"
	"slices"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
)

// Router is where Endpoints sets routes: *router.Router, as the fleet
// sees it.
type Router interface {
	Set(host string, upstreams []string)
	InFlight(upstream string) int64
	SetLimit(upstream string, limit int)
}

// Endpoints is the fleet's Router on the kubernetes driver: it passes the
// executors the fleet routes a host to (Hangar's endpoint list) on to the
// router, less those whose Pods the driver's informer sees not ready (the
// kubelet's readiness probe fails) or terminating (deleted, still running
// its grace period), and sets the routes again when that changes. When
// none of a host's Pods is ready, it routes to all of them rather than to
// none, as a proxy's panic mode does. It is safe for concurrent use.
type Endpoints struct {
	next Router

	mu     sync.Mutex
	routes map[string][]string // by host, as the fleet set them
	ready  map[string]bool     // by Pod address ("ip:port"), as last seen
	set    map[string][]string // by host, as last passed on
}

// Endpoints returns the driver's Endpoints in front of next.
func (d *Driver) Endpoints(next Router) (*Endpoints, error) {
	e := &Endpoints{next: next, routes: make(map[string][]string), ready: make(map[string]bool), set: make(map[string][]string)}
	_, err := d.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { e.observe(obj, false) },
		UpdateFunc: func(_, obj any) { e.observe(obj, false) },
		DeleteFunc: func(obj any) { e.observe(obj, true) },
	})
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Set records the fleet's upstreams of host and routes host to those that
// are ready.
func (e *Endpoints) Set(host string, upstreams []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(upstreams) == 0 {
		delete(e.routes, host)
	} else {
		e.routes[host] = upstreams
	}
	e.passLocked(host)
}

// InFlight is the router's.
func (e *Endpoints) InFlight(upstream string) int64 { return e.next.InFlight(upstream) }

// SetLimit is the router's.
func (e *Endpoints) SetLimit(upstream string, limit int) { e.next.SetLimit(upstream, limit) }

// passLocked sets host's route on the router to its ready upstreams, when
// they changed; e.mu is held, so that routes reach the router in order.
func (e *Endpoints) passLocked(host string) {
	all := e.routes[host]
	var up []string
	for _, a := range all {
		if e.ready[a] {
			up = append(up, a)
		}
	}
	if len(up) == 0 {
		up = all
	}
	if prev, ok := e.set[host]; ok && slices.Equal(prev, up) {
		return
	}
	if len(up) == 0 {
		delete(e.set, host)
	} else {
		e.set[host] = up
	}
	e.next.Set(host, up)
}

// observe records whether an executor's Pod takes traffic, and re-routes
// the hosts it serves when that changed.
func (e *Endpoints) observe(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj, deleted = t.Obj, true
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok || pod.Status.PodIP == "" || len(pod.Spec.Containers) == 0 || len(pod.Spec.Containers[0].Ports) == 0 {
		return
	}
	addr := net.JoinHostPort(pod.Status.PodIP, strconv.Itoa(int(pod.Spec.Containers[0].Ports[0].ContainerPort)))
	ready := !deleted && pod.DeletionTimestamp == nil && podReady(pod)
	e.mu.Lock()
	defer e.mu.Unlock()
	was, seen := e.ready[addr]
	switch {
	case deleted && !seen, !deleted && seen && was == ready:
		return
	case deleted:
		delete(e.ready, addr)
	default:
		e.ready[addr] = ready
	}
	for host, ups := range e.routes {
		for _, a := range ups {
			if a == addr {
				e.passLocked(host)
				break
			}
		}
	}
}

func podReady(pod *corev1.Pod) bool {
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
