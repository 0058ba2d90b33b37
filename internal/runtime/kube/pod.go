package kube

import (
	"os"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/hangar-oss/hangar/internal/runtime"
)

// containerName is the name of the app's container in every Pod.
const containerName = "app"

// initScript is the Pod's PID 1, a shell that runs the app as its child,
// as in the sandbox driver: the kernel drops signals to a namespace's init
// that has no handler for them, so an app run as PID 1 would ignore
// SIGTERM; this init forwards the usual signals, reaps orphans and exits
// with the app's status, 128+n when signal n killed it.
const initScript = `"$@" </dev/null &
child=$!
for s in TERM INT HUP QUIT USR1 USR2; do trap "kill -$s $child 2>/dev/null" $s; done
while :; do
	wait $child
	status=$?
	kill -0 $child 2>/dev/null || exit $status
done`

// hostRootDirs are the node's directories a Pod on HostRootImage sees,
// read-only, as the sandbox driver's executors see the host's root.
var hostRootDirs = []string{"/usr", "/bin", "/lib", "/lib64", "/sbin"}

// podSpec returns the Pod of an executor: spec's command under the init
// script on image ref in dir, as a non-root user without capabilities or
// privilege escalation, under the runtime's default seccomp profile, on a
// read-only root with a size-limited /tmp (and, when hostRoot, the
// node's hostRootDirs and spec.Dir), within spec's memory and the
// driver's CPU limit, ready once the app's port accepts connections.
func (d *Driver) podSpec(name, ref, dir string, hostRoot bool, spec runtime.Spec) *corev1.Pod {
	no, yes := false, true
	c := d.container(ref, dir, spec)
	tmp := resource.NewQuantity(int64(d.cfg.TmpMiB)<<20, resource.BinarySI)
	vols := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{
		EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: tmp}}}}
	if hostRoot {
		vols = append(vols, hostPaths(&c, spec.Dir)...)
	}
	var aliases []corev1.HostAlias
	var annotations map[string]string
	if len(spec.Forwards) > 0 {
		if d.cfg.ForwardHost != "" {
			aliases = []corev1.HostAlias{{IP: d.cfg.ForwardAddr, Hostnames: []string{d.cfg.ForwardHost}}}
		}
		if len(d.cfg.ForwardCA) > 0 {
			annotations = map[string]string{AnnotationCA: string(d.cfg.ForwardCA)}
			vols = append(vols, caVolume(&c))
		}
	}
	var rc *string
	if d.cfg.RuntimeClass != "" {
		rc = &d.cfg.RuntimeClass
	}
	uid, gid := d.cfg.UID, d.cfg.GID
	grace := int64(30)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   d.cfg.Namespace,
			Annotations: annotations,
			Labels: map[string]string{
				LabelManagedBy: "hangar",
				LabelPrefix:    d.cfg.Prefix,
				LabelExecutor:  labelValue(spec.ID),
				LabelOrg:       labelValue(spec.Org),
				LabelApp:       labelValue(spec.App),
				LabelVersion:   labelValue(spec.Version),
			},
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &no,
			EnableServiceLinks:            &no,
			RuntimeClassName:              rc,
			TerminationGracePeriodSeconds: &grace,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   &yes,
				RunAsUser:      &uid,
				RunAsGroup:     &gid,
				FSGroup:        &gid,
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers:  []corev1.Container{c},
			Volumes:     vols,
			HostAliases: aliases,
		},
	}
}

// container returns the executor's container: spec's command under the
// init script on image ref in dir, unprivileged, on a read-only root,
// within spec's memory and the driver's CPU limit, ready once the app's
// port accepts connections.
func (d *Driver) container(ref, dir string, spec runtime.Spec) corev1.Container {
	no, yes := false, true
	mem := resource.NewQuantity(int64(spec.MemoryMiB)<<20, resource.BinarySI)
	cpu := resource.NewMilliQuantity(int64(d.cfg.CPUs*1000), resource.DecimalSI)
	cpuReq := resource.NewMilliQuantity(max(int64(d.cfg.CPUs*100), 1), resource.DecimalSI)
	return corev1.Container{
		Name:            containerName,
		Image:           ref,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Command:         escape(append([]string{"/bin/sh", "-c", unsetAdded(spec.Env) + initScript, "init"}, spec.Command...)),
		WorkingDir:      dir,
		Env:             envVars(spec.Env),
		Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: int32(spec.Port), Protocol: corev1.ProtocolTCP}},
		ReadinessProbe: &corev1.Probe{
			ProbeHandler:  corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(int32(spec.Port))}},
			PeriodSeconds: 1, FailureThreshold: 3,
		},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpuReq},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: *mem, corev1.ResourceCPU: *cpu},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &no,
			Privileged:               &no,
			ReadOnlyRootFilesystem:   &yes,
			RunAsNonRoot:             &yes,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts:             []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
		TerminationMessagePolicy: corev1.TerminationMessageReadFile,
	}
}

// caVolume returns the volume of the CA at CAFile, a read-only downwardAPI
// volume of the Pod's AnnotationCA, and mounts it in c.
func caVolume(c *corev1.Container) corev1.Volume {
	mode := int32(0o444)
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "ca", MountPath: path.Dir(CAFile), ReadOnly: true})
	return corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
		DefaultMode: &mode,
		Items: []corev1.DownwardAPIVolumeFile{{Path: path.Base(CAFile),
			FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.annotations['" + AnnotationCA + "']"}}},
	}}}
}

// hostPaths returns the hostPath volumes of a Pod on HostRootImage, the
// node's hostRootDirs read-only and dir read-write, and mounts them in c.
func hostPaths(c *corev1.Container, dir string) []corev1.Volume {
	var vols []corev1.Volume
	dirType := corev1.HostPathDirectory
	for i, p := range append(append([]string{}, hostRootDirs...), dir) {
		if _, err := os.Stat(p); err != nil {
			continue
		}
		v := "host" + string(rune('a'+i))
		vols = append(vols, corev1.Volume{Name: v, VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: p, Type: &dirType}}})
		c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: v, MountPath: p, ReadOnly: p != dir})
	}
	return vols
}

// envVars turns "NAME=value" entries into the container's environment,
// escaped (see escape).
func envVars(env []string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		out = append(out, corev1.EnvVar{Name: k, Value: strings.ReplaceAll(v, "$", "$$")})
	}
	return out
}

// escape protects args from the kubelet, which expands $(NAME) in a
// container's command and env values and turns $$ into $: each $ becomes
// $$, so that the app gets the strings of its Spec.
func escape(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "$", "$$")
	}
	return out
}

// addedEnv are the variables a container gets that its Spec does not set:
// the container runtime's default PATH, and the API server's address,
// which the kubelet adds even without service links.
var addedEnv = []string{"PATH", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "KUBERNETES_SERVICE_PORT_HTTPS",
	"KUBERNETES_PORT", "KUBERNETES_PORT_443_TCP", "KUBERNETES_PORT_443_TCP_PROTO", "KUBERNETES_PORT_443_TCP_PORT",
	"KUBERNETES_PORT_443_TCP_ADDR"}

// unsetAdded returns the shell line that removes from the init's
// environment the addedEnv variables env does not set, so that the app's
// environment is its Spec's, as on the sandbox driver.
func unsetAdded(env []string) string {
	set := make(map[string]bool, len(env))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		set[k] = true
	}
	var drop []string
	for _, k := range addedEnv {
		if !set[k] {
			drop = append(drop, k)
		}
	}
	if len(drop) == 0 {
		return ""
	}
	return "unset " + strings.Join(drop, " ") + "\n"
}

// shareDir makes the app folder dir writable to the executors' group, as
// the sandbox driver does: it is bound into the Pod from the node.
func shareDir(dir string, gid int64) error {
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if err := os.Lchown(dir, -1, int(gid)); err != nil {
		return err
	}
	return os.Chmod(dir, fi.Mode().Perm()|0o070)
}
