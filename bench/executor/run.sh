#!/usr/bin/env bash
# Executor benchmark: spawn-to-ready latency of a tiny Node HTTP app in the
# sandbox driver (its default OCI runtime, crun or runc; HANGAR_OCI_RUNTIME
# picks one) against a bare child process (the netns driver, same network
# setup) of the same Node.js binary, as a ratio in one run, on the host's
# root and on the app's image, and the host memory Hangar keeps per
# sandboxed executor outside the app (the runtime's run process that waits
# for it). Needs root, crun or runc, nftables and /usr/bin/node; everything
# is torn down at the end. It prints means and medians, and the load
# average before and after. Usage: bench/executor/run.sh [iterations,
# default 10]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
go test -run '^$' -bench 'BenchmarkExecutor_SpawnToReady' -benchtime "${1:-10}x" ./internal/runtime/sandbox/ |
  awk '/^OCI runtime:/ { print }
  /^BenchmarkExecutor_SpawnToReady/ {
    for (i = 3; i < NF; i += 2) v[$(i+1)] = $i
    printf "spawn to ready: sandbox %.1f ms, bare child %.1f ms, ratio %.2f\n", v["ms-sandbox/op"], v["ms-bare/op"], v["ratio"]
    printf "spawn to ready on the image: %.1f ms, bare child on the same Node.js %.1f ms, ratio %.2f\n", v["ms-image/op"], v["ms-bare-image-node/op"], v["ratio-image"]
    printf "medians: on the image %.1f ms, bare child %.1f ms, ratio %.2f; on the host root ratio %.2f\n", v["ms-image-median"], v["ms-bare-image-node-median"], v["ratio-image-median"], v["ratio-median"]
    printf "host memory per sandboxed executor outside the app: %.1f MiB (the OCI runtime\047s process)\n", v["MiB-host-overhead/executor"]
    found = 1
  }
  END { if (!found) exit 1 }'
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
