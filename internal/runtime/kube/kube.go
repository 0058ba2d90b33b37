// Package kube is the kubernetes executor driver: each executor is a Pod,
// made with client-go, watched through an informer, its output read from
// the Pod's log, commands run in it through the pods/exec subresource and
// its resource use read from the kubelet's summary API. Executors run on
// their app version's image, which Publisher exports as an OCI image and
// pushes to the operator's registry (docs/kubernetes.md). Only the composition
// root (internal/server) imports it.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/hangar-oss/hangar/internal/hangar"
	"github.com/hangar-oss/hangar/internal/runtime"
	"github.com/hangar-oss/hangar/internal/runtime/internal/table"
)

var _ runtime.Driver = (*Driver)(nil)

const (
	// startTimeout bounds how long Start waits for the Pod's container to
	// run: scheduling, an image pull and the sandbox's network.
	startTimeout = 3 * time.Minute
	// cleanupTimeout bounds how long Stop waits for the Pod to be gone.
	cleanupTimeout = time.Minute
	// logTimeout bounds how long Stop waits for the Pod's log to be read
	// to its end once the container exited.
	logTimeout = 5 * time.Second
)

// Labels the driver puts on every Pod.
const (
	LabelManagedBy = "app.kubernetes.io/managed-by"
	LabelPrefix    = "hangar.dev/prefix"
	LabelExecutor  = "hangar.dev/executor"
	LabelOrg       = "hangar.dev/org"
	LabelApp       = "hangar.dev/app"
	LabelVersion   = "hangar.dev/version"
)

// CAFile is where a Pod finds Config.ForwardCA, a downwardAPI volume of
// the Pod's AnnotationCA.
const CAFile = "/etc/hangar/ca.crt"

// AnnotationCA holds Config.ForwardCA on the Pods that mount it.
const AnnotationCA = "hangar.dev/ca"

// Config configures the driver. The zero value is usable, except that
// Images or HostRootImage must be set for Start to have something to run.
type Config struct {
	// Namespace is where the executors' Pods live. Default "hangar".
	Namespace string
	// RuntimeClass is the RuntimeClass of every Pod (gVisor, Kata), when
	// the cluster has one. Default "": the cluster's default runtime.
	RuntimeClass string
	// Prefix names this instance's Pods ("<Prefix>-<executor ID>") and
	// labels them, so that instances sharing a namespace stay apart. 1 to
	// 16 characters of a-z and 0-9. Default "hg".
	Prefix string
	// UID and GID are the user and group executors run as (never root).
	// Default 200001 and 200000, as the sandbox driver's first executor.
	UID, GID int64
	// CPUs is the CPU limit of an executor, in CPUs; it requests a tenth
	// of it. Default 1.
	CPUs float64
	// TmpMiB is the size of an executor's /tmp, a memory-backed emptyDir
	// that counts against its memory limit. Default 64.
	TmpMiB int
	// Images makes the image of the app version a Spec names and returns
	// its reference; nil: Specs that name an image are refused.
	Images Images
	// ForwardAddr is the IP address of Hangar that executors' Pods reach
	// it at, without address translation: each Spec's forwards listen
	// there at their ListenPort, and it is every executor's Gateway.
	// Default: Hangar's address on its route to the API server (its Pod
	// IP, when Hangar runs in the cluster); none when that is loopback,
	// and then Specs with forwards are refused.
	ForwardAddr string
	// ForwardHost, when set, is a DNS name the Pods of Specs with forwards
	// resolve to ForwardAddr (a hostAliases entry): the name the
	// certificate of the forwards' TLS servers (the managed database
	// instances) names, so that apps verify it. Default "": none.
	ForwardHost string
	// ForwardCA, when set, is the PEM certificate of the CA those
	// certificates chain to (Hangar's CA, never a key): the Pods of Specs
	// with forwards find it, read-only, at CAFile. Default nil: none.
	ForwardCA []byte
	// Egress, when set, is the egress the executors' Pods get, as a
	// NetworkPolicy New creates (or updates) in Namespace: only a CNI that
	// enforces NetworkPolicy applies it (docs/kubernetes.md). Default
	// nil: no policy.
	Egress *runtime.Egress
	// HostRootImage, when set, runs Specs that name no image on this image
	// with the node's /usr, /bin, /lib, /lib64 and /sbin read-only and the
	// Spec's Dir read-write through hostPath volumes: the sandbox driver's
	// default, for one-node clusters on Hangar's own host (the conformance
	// suite, development). Default "": such Specs are refused.
	HostRootImage string
}

// Images makes the image an executor runs on.
type Images interface {
	// Ref returns the reference (by digest) of the image of spec, pushed
	// to the registry the cluster pulls from.
	Ref(ctx context.Context, spec runtime.Spec) (string, error)
}

func (c *Config) setDefaults() {
	if c.Namespace == "" {
		c.Namespace = "hangar"
	}
	if c.Prefix == "" {
		c.Prefix = "hg"
	}
	if c.UID == 0 {
		c.UID = 200001
	}
	if c.GID == 0 {
		c.GID = 200000
	}
	if c.CPUs == 0 {
		c.CPUs = 1
	}
	if c.TmpMiB == 0 {
		c.TmpMiB = 64
	}
}

// Driver runs executors as Pods. It is safe for concurrent use. Close
// stops its informer.
type Driver struct {
	cfg    Config
	cs     kubernetes.Interface
	rest   *rest.Config
	logger *slog.Logger
	execs  *table.Executors[*executor]

	stop     chan struct{}
	informer cache.SharedIndexInformer
	wg       sync.WaitGroup // the informer and the log readers

	mu      sync.Mutex
	watched map[string]*podWatch // by Pod name
}

// executor is the driver's record of one prepared executor; Entry.Name is
// its Pod's name.
type executor struct {
	table.Entry
	w     *podWatch // set by start
	unset string    // the unsetAdded line of its Spec, for Exec

	statsMu sync.Mutex
	last    *runtime.Stats // the last reading, for Stats after the exit
}

// New returns a driver that runs Pods through the API server cfg reaches
// (rest.InClusterConfig or clientcmd give one), with its informer synced.
// It returns KindUnavailable when the API server cannot be reached or
// refuses to list the namespace's Pods, and KindInvalid for a bad kc.
func New(ctx context.Context, kc Config, restCfg *rest.Config, logger *slog.Logger) (*Driver, error) {
	kc.setDefaults()
	if !prefixRE(kc.Prefix) {
		return nil, hangar.Errorf(hangar.KindInvalid, "kubernetes driver: prefix %q: use 1 to 16 characters of a-z and 0-9", kc.Prefix)
	}
	if kc.UID <= 0 || kc.GID <= 0 || kc.CPUs < 0.01 || kc.TmpMiB < 1 {
		return nil, hangar.Errorf(hangar.KindInvalid, "kubernetes driver: uid, gid, CPUs and tmp size must be positive, and the uid not root")
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, hangar.Errorf(hangar.KindInvalid, "kubernetes driver: %v", err)
	}
	if _, err := cs.CoreV1().Pods(kc.Namespace).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return nil, hangar.Errorf(hangar.KindUnavailable, "kubernetes driver: list pods in namespace %s: %v", kc.Namespace, err)
	}
	if kc.ForwardAddr == "" {
		kc.ForwardAddr = forwardAddr(ctx, restCfg.Host)
	}
	d := &Driver{
		cfg: kc, cs: cs, rest: restCfg, logger: logger.With("component", "kube"),
		stop: make(chan struct{}), watched: make(map[string]*podWatch),
	}
	d.execs = table.New(podNames{kc.Prefix, kc.ForwardAddr}, logger, table.Hooks[*executor]{})
	sel := labels.Set{LabelPrefix: kc.Prefix, LabelManagedBy: "hangar"}.String()
	f := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(kc.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }))
	d.informer = f.Core().V1().Pods().Informer()
	if _, err := d.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { d.observe(obj, false) },
		UpdateFunc: func(_, obj any) { d.observe(obj, false) },
		DeleteFunc: func(obj any) { d.observe(obj, true) },
	}); err != nil {
		return nil, err
	}
	if kc.Egress != nil {
		if err := d.applyEgressPolicy(ctx, *kc.Egress); err != nil {
			return nil, err
		}
	}
	d.wg.Go(func() { d.informer.Run(d.stop) })
	if !cache.WaitForCacheSync(ctx.Done(), d.informer.HasSynced) {
		d.Close()
		return nil, hangar.Errorf(hangar.KindUnavailable, "kubernetes driver: the Pod informer did not sync: %v", ctx.Err())
	}
	return d, nil
}

// Close stops the informer and waits for the log readers; Pods keep
// running (Stop them first).
func (d *Driver) Close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.wg.Wait()
}

func prefixRE(p string) bool {
	if len(p) < 1 || len(p) > 16 {
		return false
	}
	for _, r := range p {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}

// podNames is the table's Net: a Pod needs no network prepared ahead, the
// cluster's CNI gives it one; its gateway is where its forwards listen.
type podNames struct{ prefix, gateway string }

func (n podNames) Name(id string) string { return n.prefix + "-" + id }

func (n podNames) Setup(context.Context, string) (runtime.Network, error) {
	return runtime.Network{Gateway: n.gateway}, nil
}

func (podNames) Teardown(context.Context, string) error { return nil }

// Prepare records the executor; its Pod's address is known once Start
// made it. See runtime.Driver.
func (d *Driver) Prepare(ctx context.Context, id string) (runtime.Network, error) {
	return d.execs.Prepare(ctx, id, &executor{})
}

// Start creates the executor's Pod and returns once its container runs.
// See runtime.Driver.
func (d *Driver) Start(ctx context.Context, spec runtime.Spec) (*runtime.Executor, error) {
	return d.execs.Start(spec, func(e *executor) (*runtime.Executor, error) { return d.start(ctx, e, spec) })
}

func (d *Driver) start(ctx context.Context, e *executor, spec runtime.Spec) (*runtime.Executor, error) {
	if e.w != nil {
		return nil, hangar.Errorf(hangar.KindConflict, "executor %s is already started", spec.ID)
	}
	if len(spec.Forwards) > 0 && d.cfg.ForwardAddr == "" {
		return nil, hangar.Errorf(hangar.KindInvalid,
			"executor %s: forwards need the address Pods reach Hangar at (--k8s-forward-addr)", spec.ID)
	}
	if spec.MemoryMiB == 0 {
		spec.MemoryMiB = hangar.DefaultMemoryMiB
	}
	logger := d.logger.With("executor", spec.ID, "app", spec.App, "version", spec.Version)
	begin := time.Now()
	ref, dir, hostRoot := d.cfg.HostRootImage, spec.Dir, false
	switch {
	case spec.Image.AppID != "" && d.cfg.Images != nil:
		var err error
		if ref, err = d.cfg.Images.Ref(ctx, spec); err != nil {
			return nil, fmt.Errorf("start executor %s: image: %w", spec.ID, err)
		}
		dir = runtime.AppDir
	case spec.Image.AppID != "":
		return nil, hangar.Errorf(hangar.KindInvalid, "executor %s: the kubernetes driver has no registry to push images to", spec.ID)
	case ref == "":
		return nil, hangar.Errorf(hangar.KindInvalid, "executor %s: the kubernetes driver needs an image", spec.ID)
	default:
		hostRoot = true
		if err := shareDir(spec.Dir, d.cfg.GID); err != nil {
			return nil, fmt.Errorf("start executor %s: open app folder to the executor: %w", spec.ID, err)
		}
	}
	pod := d.podSpec(e.Name, ref, dir, hostRoot, spec)

	fw, err := openForwards(d.cfg.ForwardAddr, spec.Forwards, d.logger)
	if err != nil {
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, err)
	}
	w := d.watch(e, spec, fw)
	if _, err := d.cs.CoreV1().Pods(d.cfg.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		d.unwatch(e.Name)
		w.closeForwards()
		kind := hangar.KindUnavailable
		if apierrors.IsAlreadyExists(err) {
			kind = hangar.KindConflict
		}
		return nil, hangar.Errorf(kind, "start executor %s: create pod: %v", spec.ID, err)
	}
	e.w, e.unset = w, unsetAdded(spec.Env)
	e.Done, e.StartedAt = w.arm(&e.Entry), begin

	tctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	ip, hostIP, err := w.waitRunning(tctx)
	if err != nil {
		close(w.logDone) // no log to read: Stop need not wait for one
		return nil, fmt.Errorf("start executor %s: %w", spec.ID, err)
	}
	if spec.Stdout != nil {
		d.wg.Go(func() { d.readLog(e.Name, spec.Stdout, w, logger) })
	} else {
		close(w.logDone)
	}
	// The Pod's PID namespace is its own and the node's PIDs are not in
	// the API: the app's PID is its init's, 1. Its gateway is where its
	// forwards listen, or else its node.
	e.PID = 1
	e.Addr = net.JoinHostPort(ip, strconv.Itoa(spec.Port))
	if d.cfg.ForwardAddr != "" {
		hostIP = d.cfg.ForwardAddr
	}
	logger.InfoContext(ctx, "executor started", "pod", e.Name, "addr", e.Addr, "image", ref,
		"memory_mib", spec.MemoryMiB, "took", time.Since(begin))
	return &runtime.Executor{ID: spec.ID, Addr: e.Addr, Gateway: hostIP, PID: e.PID}, nil
}

// Wait blocks until the executor's container exits. See runtime.Driver.
func (d *Driver) Wait(ctx context.Context, id string) (runtime.Status, error) {
	return d.execs.Wait(ctx, id)
}

// Inspect reports the executor's state as the informer saw it last. See
// runtime.Driver.
func (d *Driver) Inspect(_ context.Context, id string) (runtime.Info, error) {
	return d.execs.Inspect(id)
}

// Stop deletes the Pod with grace as its grace period (the kubelet sends
// SIGTERM, then SIGKILL), and returns once the Pod is gone. See
// runtime.Driver.
func (d *Driver) Stop(ctx context.Context, id string, grace time.Duration) error {
	return d.execs.Stop(ctx, id,
		func(e *executor) error { return d.terminate(ctx, e, grace) },
		func(e *executor) error {
			d.unwatch(e.Name)
			if e.w != nil {
				e.w.closeForwards()
			}
			return nil
		})
}

func (d *Driver) terminate(ctx context.Context, e *executor, grace time.Duration) error {
	secs := int64((grace + time.Second - 1) / time.Second)
	if ctx.Err() != nil {
		secs = 0
	}
	kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	err := d.cs.CoreV1().Pods(d.cfg.Namespace).Delete(kctx, e.Name, metav1.DeleteOptions{
		GracePeriodSeconds: &secs,
		Preconditions:      &metav1.Preconditions{UID: e.w.podUID()},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return fmt.Errorf("delete pod %s: %w", e.Name, err)
	}
	// The log is read to its end before the Pod, and its log, go.
	select {
	case <-e.w.logDone:
	case <-e.Done:
		select {
		case <-e.w.logDone:
		case <-time.After(logTimeout):
		}
	case <-kctx.Done():
	}
	select {
	case <-e.w.gone:
		return nil
	case <-kctx.Done():
		return fmt.Errorf("pod %s is not gone after %v", e.Name, cleanupTimeout)
	}
}

// errPodGone is the status error of an executor whose Pod was deleted
// before its container's exit was seen.
var errPodGone = errors.New("pod deleted")

// labelValue makes s a valid label value: at most 63 characters of
// [A-Za-z0-9._-], starting and ending with a letter or digit.
func labelValue(s string) string {
	b := []byte(s)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			b[i] = '_'
		}
	}
	if len(b) > 63 {
		b = b[:63]
	}
	return strings.Trim(string(b), "._-")
}

// Cleanup deletes the Pods a previous run of an instance with the same
// Prefix left behind; this driver's own are left alone. Call it at
// start-up, before the first Prepare.
func (d *Driver) Cleanup(ctx context.Context) error {
	ours := d.execs.Names()
	pods, err := d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{LabelPrefix: d.cfg.Prefix, LabelManagedBy: "hangar"}.String(),
	})
	if err != nil {
		return fmt.Errorf("clean up executors: list pods: %w", err)
	}
	var errs []error
	n := 0
	for _, p := range pods.Items {
		if ours[p.Name] {
			continue
		}
		if err := d.cs.CoreV1().Pods(d.cfg.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
		n++
	}
	if n > 0 {
		d.logger.InfoContext(ctx, "removed leftover executors", "count", n)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("clean up executors: %w", err)
	}
	return nil
}

// RemovePrefix deletes, in the driver's namespace, the Pods and the
// egress NetworkPolicy of another Hangar process's prefix: what a dead
// replica left, when a live one takes it over (docs/replicas.md). It
// refuses the driver's own prefix.
func (d *Driver) RemovePrefix(ctx context.Context, prefix string) error {
	if prefix == d.cfg.Prefix {
		return fmt.Errorf("remove executors of prefix %q: it is this driver's own", prefix)
	}
	pods, err := d.cs.CoreV1().Pods(d.cfg.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{LabelPrefix: prefix, LabelManagedBy: "hangar"}.String(),
	})
	if err != nil {
		return fmt.Errorf("remove executors of prefix %q: list pods: %w", prefix, err)
	}
	var errs []error
	for _, p := range pods.Items {
		if err := d.cs.CoreV1().Pods(d.cfg.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	err = d.cs.NetworkingV1().NetworkPolicies(d.cfg.Namespace).Delete(ctx, egressPolicyName(prefix), metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		errs = append(errs, err)
	}
	if len(pods.Items) > 0 {
		d.logger.InfoContext(ctx, "removed the executors of another prefix", "prefix", prefix, "count", len(pods.Items))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove executors of prefix %q: %w", prefix, err)
	}
	return nil
}
