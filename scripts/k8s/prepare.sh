#!/bin/bash
# Lays this kit out in a work dir $K (default /var/tmp/hangar-k8s): scripts, configs with their paths set to $K,
# image sources. Then: bash $K/scripts/ci-all.sh (build + up + smoke + teardown),
# or bash $K/scripts/up.sh / $K/scripts/99-cleanup.sh around your own tests. Read NOTES.md first.
set -euo pipefail
K=${K:-/var/tmp/hangar-k8s}; here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$K"
for d in scripts containerd kubelet-conf cni images; do rm -rf "$K/$d"; cp -r "$here/$d" "$K/$d"; done
grep -rl "@K@" "$K/containerd" "$K/kubelet-conf" "$K/cni" 2>/dev/null | xargs -r sed -i "s|@K@|$K|g"
chmod +x "$K"/scripts/*.sh
echo "kit laid out in $K; next: K=$K bash $K/scripts/ci-all.sh"
