#!/usr/bin/env bash
# Upload benchmark: generates an app folder of incompressible files (480 MiB
# by default, about 503 MB, so that its zip stays under the 500 MiB limit;
# pass another size in MiB as $1), deploys it with Hangar's dbos-cloud to a
# real `hangar serve` (--driver=netns) through the streaming upload, and
# prints the zip time, the upload throughput, the CLI's peak RSS (ru_maxrss,
# via peakrss) and the server's (the largest VmRSS sampled during the upload
# and VmHWM, its peak since it started). Runs as root; everything is on
# loopback and torn down at the end.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
size_mib=${1:-480}
bench_init hangar-bench-upload-XXXXXX
bench_build ./cmd/hangar ./cmd/dbos-cloud
(cd "$root" && go build -o "$work/bin/peakrss" bench/upload/peakrss.go)
HANGAR_PG_SETTINGS=fsync=off bench_serve --driver netns --network-prefix bup --subnet 10.224.0.0/16

export DBOS_DOMAIN="localhost:$port" SSL_CERT_FILE="$data/ca.pem" TMPDIR="$work"
token=$(bench_user bench)

# The app: a tiny HTTP server plus incompressible ballast, 10 MiB a file.
app="$work/bigapp"
mkdir -p "$app/ballast"
cat >"$app/package.json" <<'JSON'
{"name": "bigapp", "version": "1.0.0", "private": true, "scripts": {"start": "node server.js"}}
JSON
cat >"$app/server.js" <<'JS'
require("http").createServer((req, res) => res.end("bigapp")).listen(3000, "0.0.0.0");
JS
cat >"$app/dbos-config.yaml" <<'YAML'
name: bigapp
language: node
runtimeConfig:
  start:
    - node server.js
YAML
for i in $(seq 1 $((size_mib / 10))); do
  head -c $((10 << 20)) /dev/urandom >"$app/ballast/part-$i.bin"
done
if [ $((size_mib % 10)) -ne 0 ]; then head -c $(((size_mib % 10) << 20)) /dev/urandom >"$app/ballast/part-last.bin"; fi
folder_bytes=$(du -sb "$app" | cut -f1)

cd "$app"
"$work/bin/dbos-cloud" login --with-refresh-token "$token" >/dev/null
"$work/bin/dbos-cloud" db provision benchdb -U dbos_admin -W bench-password >/dev/null

# Sample the server's resident set every 100 ms while the CLI runs.
rss_kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
(
  max=0
  while :; do
    r=$(rss_kib "$serve_pid" VmRSS || echo 0)
    if [ "${r:-0}" -gt "$max" ]; then max=$r; echo "$max" >"$work/server-rss"; fi
    sleep 0.1
  done
) &
sampler_pid=$!
bench_pids+=("$sampler_pid")

t0=$(date +%s%N)
set +e
"$work/bin/peakrss" "$work/bin/dbos-cloud" app deploy >"$work/deploy.out" 2>"$work/deploy.err"
status=$?
set -e
t1=$(date +%s%N)
kill "$sampler_pid" 2>/dev/null || true
wait "$sampler_pid" 2>/dev/null || true
sampler_pid=""
server_hwm=$(rss_kib "$serve_pid" VmHWM)
server_rss=$(cat "$work/server-rss" 2>/dev/null || echo 0)
cli_kib=$(sed -n 's/^peakrss: \([0-9]*\) KiB$/\1/p' "$work/deploy.err")

echo "Hangar upload benchmark: $((folder_bytes / 1000000)) MB app folder ($size_mib MiB of random files), dbos-cloud app deploy"
grep -E '^(Archived|Uploaded)' "$work/deploy.out" | sed 's/^/  /'
grep -E '^==> step .* (done|failed)' "$work/deploy.out" | sed 's/^/  /' || true
if [ "$status" -ne 0 ]; then
  echo "  deploy failed (exit $status); the upload above is what is measured:"
  tail -5 "$work/deploy.err" | sed 's/^/    /'
fi
awk -v d="$((t1 - t0))" 'BEGIN {printf "  whole deploy command: %.1f s\n", d / 1e9}'
awk -v c="$cli_kib" -v s="$server_rss" -v h="$server_hwm" 'BEGIN {
  printf "  CLI peak RSS:                      %6.1f MiB %s\n", c / 1024, (c < 100 * 1024 ? "(< 100 MiB: ok)" : "(OVER 100 MiB)")
  printf "  server peak RSS during the deploy: %6.1f MiB %s\n", s / 1024, (s < 100 * 1024 ? "(< 100 MiB: ok)" : "(OVER 100 MiB)")
  printf "  server VmHWM since start:          %6.1f MiB %s\n", h / 1024, (h < 100 * 1024 ? "(< 100 MiB: ok)" : "(OVER 100 MiB)")
}'
