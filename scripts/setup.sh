#!/usr/bin/env bash
# Installs what Hangar needs on a fresh Debian/Ubuntu machine: PostgreSQL
# binaries (the embedded metadata cluster and managed database instances),
# iproute2, crun, runc and nftables (sandboxed executors and their networks),
# Node.js and npm (the official CLI in tests; apps get Node.js from their
# image), and with --test what only the tests need: Chromium (the console's
# browser test), and with --k8s what make k8s-test needs (etcd, containerd,
# the CNI plugins, the CNCF registry). Idempotent: installs only what is missing.
set -euo pipefail

need=()
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || need+=(postgresql)
command -v ip >/dev/null || need+=(iproute2)
command -v crun >/dev/null || need+=(crun)       # the sandbox's OCI runtime
command -v runc >/dev/null || need+=(runc)       # where crun cannot run, and the database instances' jails
command -v nft >/dev/null || need+=(nftables)    # executors' packet filter
command -v debootstrap >/dev/null || need+=(debootstrap) # the base image of builds and executors
PATH=$PATH:/sbin:/usr/sbin command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs) # the apps' disks (docs/disk.md)
PATH=$PATH:/sbin:/usr/sbin command -v losetup >/dev/null || need+=(mount)       # losetup, mount -o loop
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
command -v python3 >/dev/null || need+=(python3 python3-venv)
if [ "${1:-}" = "--test" ]; then
  command -v chromium >/dev/null || need+=(chromium)  # the console's browser test (e2e/console_test.go)
fi
if [ "${1:-}" = "--k8s" ]; then
  # make k8s-test: a one-node Kubernetes (scripts/k8s) and a registry
  command -v etcd >/dev/null || need+=(etcd-server)
  command -v containerd >/dev/null || need+=(containerd)
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
  command -v docker-registry >/dev/null || need+=(docker-registry)
  command -v bc >/dev/null || need+=(bc)
  command -v openssl >/dev/null || need+=(openssl)
fi

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need[*]}: run as root (or install them) first" >&2
    exit 1
  fi
  echo "setup: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# crun refuses a hybrid cgroup host (v1 controllers beside a cgroup2 mount)
# whose unified hierarchy holds controllers, as some VMs' inits leave
# hugetlb; systemd's hybrid layout leaves it empty. Give each such
# controller its v1 hierarchy (until reboot; Hangar uses runc without it).
if [ "$(id -u)" -eq 0 ] && [ -d /sys/fs/cgroup/memory ] && [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
  for c in $(cat /sys/fs/cgroup/unified/cgroup.controllers); do
    { mkdir -p "/sys/fs/cgroup/$c" && mount -t cgroup -o "$c" cgroup "/sys/fs/cgroup/$c"; } ||
      echo "setup: could not mount the $c cgroup controller as v1: executors will run under runc" >&2
  done
fi
if ! id postgres >/dev/null 2>&1 && [ "$(id -u)" -eq 0 ]; then
  # PostgreSQL refuses to run as root; Hangar runs it as this user.
  useradd --system --home-dir /var/lib/postgresql --shell /usr/sbin/nologin postgres
fi
command -v go >/dev/null || { echo "setup: Go 1.26 is required (https://go.dev/dl/)" >&2; exit 1; }
go mod download
