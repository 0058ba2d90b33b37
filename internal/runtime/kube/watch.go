package kube

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"syscall"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/table"
)

// podWatch is what the informer tells of one executor's Pod. Its fields
// are guarded by mu; the channels are closed once, under mu.
type podWatch struct {
	memoryMiB int

	mu      sync.Mutex
	uid     types.UID
	node    string
	ip      string
	hostIP  string        // the node's address: the host, as the Pod sees it
	running chan struct{} // the container runs, or ran
	failed  error         // the Pod cannot start; closes running
	exited  *runtime.Status
	entry   *table.Entry  // set by arm: Exit may be called
	gone    chan struct{} // the Pod was deleted
	logDone chan struct{} // the log reader is done (or there is none)
	fw      *forwards     // registered once the Pod's IP is seen
}

// watch registers the Pod of e before it is created, so that no event of
// it is missed.
func (d *Driver) watch(e *executor, spec runtime.Spec, fw *forwards) *podWatch {
	w := &podWatch{
		memoryMiB: spec.MemoryMiB,
		fw:        fw,
		running:   make(chan struct{}),
		gone:      make(chan struct{}),
		logDone:   make(chan struct{}),
	}
	d.mu.Lock()
	d.watched[e.Name] = w
	d.mu.Unlock()
	return w
}

// closeForwards releases the Pod's forwards.
func (w *podWatch) closeForwards() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fw.close()
}

func (d *Driver) unwatch(name string) {
	d.mu.Lock()
	delete(d.watched, name)
	d.mu.Unlock()
}

// arm makes x the entry whose Exit reports the container's end and
// returns its Done; an end already seen is reported at once.
func (w *podWatch) arm(x *table.Entry) chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	x.Done = make(chan struct{})
	w.entry = x
	if w.exited != nil {
		x.Exit(*w.exited)
	}
	return x.Done
}

func (w *podWatch) podUID() *types.UID {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.uid == "" {
		return nil
	}
	uid := w.uid
	return &uid
}

func (w *podWatch) nodeName() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.node
}

// waitRunning waits until the container runs (or already exited) and
// returns the Pod's IP address and its node's.
func (w *podWatch) waitRunning(ctx context.Context) (ip, hostIP string, err error) {
	select {
	case <-w.running:
	case <-ctx.Done():
		return "", "", fmt.Errorf("wait for the pod to run: %w", ctx.Err())
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failed != nil {
		return "", "", w.failed
	}
	return w.ip, w.hostIP, nil
}

// observe is the informer's handler: it hands each event of a Pod to its
// watch. It runs on the informer's goroutine, one event at a time.
func (d *Driver) observe(obj any, deleted bool) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	d.mu.Lock()
	w := d.watched[pod.Name]
	d.mu.Unlock()
	if w != nil {
		w.observe(pod, deleted)
	}
}

func (w *podWatch) observe(pod *corev1.Pod, deleted bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.uid == "" {
		w.uid = pod.UID
	} else if w.uid != pod.UID {
		return // an earlier Pod of the same name
	}
	w.node, w.ip, w.hostIP = pod.Spec.NodeName, pod.Status.PodIP, pod.Status.HostIP
	if !deleted {
		w.fw.register(w.ip)
	}
	var cs *corev1.ContainerStatus
	for i := range pod.Status.ContainerStatuses {
		if pod.Status.ContainerStatuses[i].Name == containerName {
			cs = &pod.Status.ContainerStatuses[i]
		}
	}
	switch {
	case cs != nil && cs.State.Terminated != nil:
		w.exit(status(cs.State.Terminated, w.memoryMiB))
	case cs != nil && cs.State.Running != nil && w.ip != "":
		closeOnce(w.running)
	case cs != nil && cs.State.Waiting != nil && unstartable[cs.State.Waiting.Reason]:
		w.fail(hangar.Errorf(hangar.KindInvalid, "pod %s: %s: %s", pod.Name, cs.State.Waiting.Reason, cs.State.Waiting.Message))
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		w.exit(runtime.Status{ExitCode: 137, Err: fmt.Errorf("pod %s: %s: %s", pod.Name, pod.Status.Reason, pod.Status.Message)})
	}
	if deleted {
		w.exit(runtime.Status{ExitCode: 137, Err: errPodGone})
		closeOnce(w.gone)
	}
}

// unstartable are the reasons a container waits for that retrying does not
// cure soon; Start fails at once on them rather than at its timeout.
var unstartable = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// exit records the container's end, once; mu is held.
func (w *podWatch) exit(st runtime.Status) {
	if w.exited != nil {
		return
	}
	w.exited = &st
	closeOnce(w.running)
	if w.entry != nil {
		w.entry.Exit(st)
	}
}

// fail records that the Pod cannot start; mu is held.
func (w *podWatch) fail(err error) {
	if w.failed == nil && w.exited == nil {
		w.failed = err
		closeOnce(w.running)
	}
}

func closeOnce(ch chan struct{}) {
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// status is how a terminated container ended, as the sandbox driver
// reports it: an OOM kill names the memory limit.
func status(t *corev1.ContainerStateTerminated, memoryMiB int) runtime.Status {
	st := runtime.Status{ExitCode: int(t.ExitCode)}
	switch {
	case t.Signal != 0:
		st.ExitCode = 128 + int(t.Signal)
		st.Err = fmt.Errorf("killed by signal %v", syscall.Signal(t.Signal))
	case st.ExitCode > 128 && st.ExitCode < 128+65:
		st.Err = fmt.Errorf("killed by signal %v", syscall.Signal(st.ExitCode-128))
	}
	if t.Reason == "OOMKilled" {
		st.OOMKilled = true
		st.Err = errors.Join(st.Err, fmt.Errorf("out of memory: killed for exceeding the memory limit of %d MiB", memoryMiB))
	}
	return st
}

// readLog copies the container's log, followed, to out until the
// container exits.
func (d *Driver) readLog(pod string, out io.Writer, w *podWatch, logger *slog.Logger) {
	defer close(w.logDone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-d.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	rc, err := d.cs.CoreV1().Pods(d.cfg.Namespace).GetLogs(pod, &corev1.PodLogOptions{Container: containerName, Follow: true}).Stream(ctx)
	if err != nil {
		logger.Warn("read executor log", "err", err)
		return
	}
	defer rc.Close()
	r := bufio.NewReader(rc)
	if _, err := r.WriteTo(out); err != nil && ctx.Err() == nil {
		logger.Warn("read executor log", "err", err)
	}
}
