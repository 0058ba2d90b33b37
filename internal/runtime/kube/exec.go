package kube

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// execWrapper runs a command as the process whose PID it writes to the file
// named by $0 first. The runtime makes an exec'd process the leader of its
// own session, so that PID names the process group of everything the
// command starts, which a cancelled Exec kills.
const execWrapper = `echo $$ > "$0" && exec "$@"`

// Exec runs spec.Args in the executor's container through the pods/exec
// subresource, which runs it as the app runs: the container's user,
// capabilities, seccomp profile, cgroups, environment and working
// directory. The API server's exec stream does not kill the process when
// the stream ends, so when ctx is done first, a second exec kills the
// command's process group. See runtime.Driver.
func (d *Driver) Exec(ctx context.Context, id string, spec runtime.ExecSpec) (int, error) {
	if err := spec.Validate(); err != nil {
		return -1, err
	}
	e, err := d.execs.Running(id)
	if err != nil {
		return -1, err
	}
	pidFile := "/tmp/.hangar-exec-" + rand.Text()[:16]
	args := append([]string{"/bin/sh", "-c", e.unset + execWrapper, pidFile}, spec.Args...)
	code, err := d.exec(ctx, e.Name, args, spec.Stdin, spec.Stdout, spec.Stderr)
	if ctx.Err() != nil {
		kctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
		defer cancel()
		kill := `for i in 1 2 3 4 5 6 7 8 9 10; do [ -s "$0" ] && break; sleep 0.1; done; pid=$(cat "$0") && kill -9 "-$pid"; rm -f "$0"`
		if _, kerr := d.exec(kctx, e.Name, []string{"/bin/sh", "-c", kill, pidFile}, nil, nil, nil); kerr != nil {
			d.logger.WarnContext(ctx, "kill a cancelled exec", "executor", id, "err", kerr)
		}
		return -1, ctx.Err()
	}
	if err != nil {
		return -1, fmt.Errorf("exec in executor %s: %w", id, err)
	}
	// The PID file goes with the process; errors only leave a few bytes
	// in the executor's /tmp.
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, _ = d.exec(rctx, e.Name, []string{"/bin/rm", "-f", pidFile}, nil, nil, nil)
	return code, nil
}

// exec runs args in Pod pod's app container and returns its exit code.
func (d *Driver) exec(ctx context.Context, pod string, args []string, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	req := d.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(d.cfg.Namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: containerName, Command: args,
			Stdin: stdin != nil, Stdout: true, Stderr: true,
		}, scheme.ParameterCodec)
	ws, err := remotecommand.NewWebSocketExecutor(d.rest, "GET", req.URL().String())
	if err != nil {
		return -1, err
	}
	spdy, err := remotecommand.NewSPDYExecutor(d.rest, "POST", req.URL())
	if err != nil {
		return -1, err
	}
	x, err := remotecommand.NewFallbackExecutor(ws, spdy, httpstream.IsUpgradeFailure)
	if err != nil {
		return -1, err
	}
	err = x.StreamWithContext(ctx, remotecommand.StreamOptions{Stdin: stdin, Stdout: stdout, Stderr: stderr})
	if ee, ok := errors.AsType[utilexec.ExitError](err); ok {
		return ee.ExitStatus(), nil
	}
	if err != nil {
		return -1, err
	}
	return 0, nil
}
