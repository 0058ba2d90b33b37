#!/usr/bin/env bash
# make k8s-test: the kubernetes driver's tests on a real one-node cluster.
# Builds Kubernetes from the Go module proxy once (cached outside the clone in
# $HANGAR_K8S_CACHE/<version>, default /var/cache/hangar-k8s: later runs are
# warm), lays out the kit (scripts/k8s, NOTES.md there) in a work dir, brings
# the cluster up with its network guard, runs ./internal/runtime/kube and
# the e2e deploy on the cluster (TestKubernetes_*), and
# tears everything down: processes, bridge, netns, nftables tables, cgroups,
# mounts, cluster state, and the sysctls the kubelet and the CNI bridge
# change (vm.overcommit_memory, kernel.panic, kernel.panic_on_oops,
# net.ipv4.ip_forward, ...) back to what they were.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
V=${K8S_VERSION:-1.37.2}
CACHE=${HANGAR_K8S_CACHE:-/var/cache/hangar-k8s}/$V
export K=${K:-/var/tmp/hangar-k8s}
ts() { date +%s; }; T0=$(ts); lap() { echo "k8s-test: $1 ($(( $(ts)-T0 ))s)"; }

"$here/scripts/setup.sh" --k8s >/dev/null
if [ ! -x "$CACHE/bin/kubelet" ]; then
  echo "k8s-test: building Kubernetes $V from the module proxy into $CACHE (once; 8-15 minutes)"
  mkdir -p "$CACHE"; rm -rf "$CACHE/bin.tmp"
  OUT=$CACHE/bin.tmp WORK=$CACHE/kbuild bash "$here/scripts/k8s/scripts/01-build-k8s.sh" "$V" > "$CACHE/build.log" 2>&1 \
    || { tail -20 "$CACHE/build.log"; exit 1; }
  mv "$CACHE/bin.tmp" "$CACHE/bin"
  lap "built Kubernetes $V"
fi
export BIN=$CACHE/bin

bash "$here/scripts/k8s/prepare.sh" >/dev/null
mkdir -p "$K/containerd/certs.d"
rm -f "$K/state/sysctl.before" # record the sysctls as they are now
cleanup() {
  bash "$K/scripts/99-cleanup.sh" > "$K/cleanup.log" 2>&1 || { tail -20 "$K/cleanup.log"; }
  rm -rf "$K/containerd/certs.d"
  lap "cluster torn down"
}
trap cleanup EXIT
bash "$K/scripts/up.sh" > "$K/up.log" 2>&1 || { tail -30 "$K/up.log"; exit 1; }
lap "cluster up"

cd "$here"
export HANGAR_TEST_KUBECONFIG=$K/admin.kubeconfig HANGAR_TEST_CONTAINERD_HOSTS=$K/containerd/certs.d
go test -count=1 -timeout 20m ${K8S_TEST_ARGS:--v} ./internal/runtime/kube/
lap "driver tests done"
# The deploy end to end: the official CLI, the greeter on Pods (K8S_E2E=0 skips it).
if [ "${K8S_E2E:-1}" = 1 ]; then
  go test -count=1 -timeout 20m ${K8S_TEST_ARGS:--v} -run 'TestKubernetes_' ./e2e/
  lap "e2e done"
fi
