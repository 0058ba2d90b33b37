#!/usr/bin/env bash
# Deploy benchmark: for the greeter fixture (testdata/apps/greeter), the time
# from the official CLI's start to AVAILABLE (the CLI returns once it reads
# AVAILABLE), split by pipeline step from the deploy log, for a first deploy
# and for a redeploy with unchanged dependencies. Runs as root (executors use
# network namespaces); everything is on loopback and torn down at the end.
# HANGAR_BENCH_PREFIX and HANGAR_BENCH_SUBNET (default bench, 10.223.0.0/16)
# keep runs on one host apart.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
cli="@dbos-inc/dbos-cloud@2.10.24"
bench_init hangar-bench-XXXXXX
bench_build ./cmd/hangar ./cmd/dbos-cloud
# The images (Debian base, Node.js) are built once per cache: the tests'
# shared cache by default. The first deploy prints whether it built them.
images=${HANGAR_IMAGE_CACHE:-/var/cache/hangar-test-images}
HANGAR_PG_SETTINGS=fsync=off bench_serve --network-prefix "${HANGAR_BENCH_PREFIX:-bench}" --subnet "${HANGAR_BENCH_SUBNET:-10.223.0.0/16}" \
  --image-cache "$images"

export DBOS_DOMAIN="localhost:$port" NODE_EXTRA_CA_CERTS="$data/ca.pem" SSL_CERT_FILE="$data/ca.pem"
token=$(bench_user bench)
app="$work/greeter"
mkdir "$app"
(cd "$root/testdata/apps/greeter" && tar --exclude=node_modules -cf - .) | (cd "$app" && tar xf -)
cd "$app"
"$work/bin/dbos-cloud" login --with-refresh-token "$token" >/dev/null
npx -y "$cli" --version >/dev/null # warm npx's cache: not part of a deploy
npx -y "$cli" db provision benchdb -U dbos_admin -W bench-password >/dev/null

deploy() {
  local label=$1 t0 t1 log
  t0=$(date +%s%N)
  npx -y "$cli" app deploy >"$work/deploy-$label.out" 2>&1 || { cat "$work/deploy-$label.out"; exit 1; }
  t1=$(date +%s%N)
  awk -v l="$label" -v d="$((t1 - t0))" 'BEGIN {printf "%-40s %6.2f s\n", l ": CLI start -> AVAILABLE", d / 1e9}'
  # Each version records its steps' durations; Hangar adds them to app versions.
  npx -y "$cli" app versions --json 2>/dev/null | node -e '
    const out = require("fs").readFileSync(0, "utf8");
    const v = JSON.parse(out.slice(out.indexOf("[")))[0];
    for (const s of v.Steps) console.log("    " + s.name.padEnd(24) + (s.duration_ms / 1000).toFixed(2) + " s");'
}
# load sends requests to the app in a loop until $work/stop exists and
# prints "<ok> <failed>".
load() {
  local ok=0 failed=0 url="https://bench-greeter.localhost:$port/"
  while [ ! -e "$work/stop" ] && [ $((ok + failed)) -lt 200000 ]; do
    if curl -fsS -o /dev/null --max-time 10 --cacert "$data/ca.pem" \
      --resolve "bench-greeter.localhost:$port:127.0.0.1" "$url" 2>/dev/null; then
      ok=$((ok + 1))
    else
      failed=$((failed + 1))
    fi
  done
  echo "$ok $failed"
}

echo "Hangar deploy benchmark (greeter fixture, official CLI ${cli##*@})"
deploy "first deploy"
# The one-time image builds, if this first deploy did them.
grep 'msg="built image"' "$work/serve.log" | sed -E 's/.*image=([^ ]+) took=([^ ]+).*/    one-time image build: \1 in \2/' || echo "    images already in $images"
deploy "redeploy, unchanged deps"
load >"$work/load.out" &
load_pid=$!
sed -i 's/"greeter v1"/"greeter v2"/' app.mjs
deploy "redeploy under load"
touch "$work/stop"
wait "$load_pid"
read -r ok failed <"$work/load.out"
echo "requests during the redeploy under load: $ok ok, $failed failed"
