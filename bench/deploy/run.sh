#!/usr/bin/env bash
# Deploy benchmark: for the greeter fixture (testdata/apps/greeter), the time
# from the official CLI's start to AVAILABLE (the CLI returns once it reads
# AVAILABLE), split by pipeline step from the deploy log, for a first deploy
# and for redeploys with unchanged dependencies (BENCH_REDEPLOYS of them,
# default 5, and their median). The CLI is installed once into the work dir
# and run from its bin, as by a user who installed dbos-cloud globally: the
# timings start when that command starts, not when npx resolves the
# package (which adds about 0.8 s). Each line shows the load average. Runs
# as root (executors use network namespaces); everything is on loopback and
# torn down at the end. HANGAR_BENCH_PREFIX and HANGAR_BENCH_SUBNET (default
# bench, 10.223.0.0/16) keep runs on one host apart.
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
version=2.10.24
bench_init hangar-bench-XXXXXX
bench_build ./cmd/hangar ./cmd/dbos-cloud
# Installed before the environment points Node.js at Hangar's CA, which
# the registry's certificate does not chain to.
npm install --prefix "$work/cli" --prefer-offline --no-audit --no-fund --loglevel=error "@dbos-inc/dbos-cloud@$version" >/dev/null
# The images (Debian base, Node.js) are built once per cache: the tests'
# shared cache by default. The first deploy prints whether it built them.
images=${HANGAR_IMAGE_CACHE:-/var/cache/hangar-test-images}
HANGAR_PG_SETTINGS=fsync=off bench_serve --network-prefix "${HANGAR_BENCH_PREFIX:-bench}" --subnet "${HANGAR_BENCH_SUBNET:-10.223.0.0/16}" \
  --image-cache "$images"

export DBOS_DOMAIN="localhost:$port" NODE_EXTRA_CA_CERTS="$data/ca.pem" SSL_CERT_FILE="$data/ca.pem"
# The CLI starts, at every run, a detached node process that asks the npm
# registry for a newer CLI (update-notifier with a 0 interval). It does not
# delay the CLI, but costs 0.6-1.2 s of CPU while the deploy runs: on a
# user's machine that is not the server's CPU, here it would be one of the
# server's two. It is off, as it is in CI.
export NO_UPDATE_NOTIFIER=1
token=$(bench_user bench)
app="$work/greeter"
mkdir "$app"
(cd "$root/testdata/apps/greeter" && tar --exclude=node_modules -cf - .) | (cd "$app" && tar xf -)
cd "$app"
"$work/bin/dbos-cloud" login --with-refresh-token "$token" >/dev/null
cli="$work/cli/node_modules/.bin/dbos-cloud"
"$cli" db provision benchdb -U dbos_admin -W bench-password >/dev/null

# deploy LABEL deploys the app, prints the time from the CLI's start to
# its exit (it exits once it reads AVAILABLE) with the load average, then
# the pipeline's steps, and appends the time in seconds to $work/times.
deploy() {
  local label=$1 t0 t1
  t0=$(date +%s%N)
  "$cli" app deploy >"$work/deploy.out" 2>&1 || { cat "$work/deploy.out"; exit 1; }
  t1=$(date +%s%N)
  awk -v d="$((t1 - t0))" 'BEGIN {print d / 1e9}' >>"$work/times"
  awk -v l="$label" -v d="$((t1 - t0))" -v load="$(cut -d' ' -f1 /proc/loadavg)" \
    'BEGIN {printf "%-44s %6.2f s   (load %s)\n", l ": CLI start -> AVAILABLE", d / 1e9, load}'
  # Each version records its steps' durations; Hangar adds them to app versions.
  "$cli" app versions --json 2>/dev/null | node -e '
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

echo "Hangar deploy benchmark (greeter fixture, official CLI $version, installed)"
t0=$(date +%s%N)
"$cli" --version >/dev/null
t1=$(date +%s%N)
awk -v d="$((t1 - t0))" 'BEGIN {printf "the CLI alone (dbos-cloud --version):        %6.2f s\n", d / 1e9}'
deploy "first deploy"
# The one-time image builds, if this first deploy did them.
grep 'msg="built image"' "$work/serve.log" | sed -E 's/.*image=([^ ]+) took=([^ ]+).*/    one-time image build: \1 in \2/' || echo "    images already in $images"
: >"$work/times"
for i in $(seq "${BENCH_REDEPLOYS:-5}"); do
  deploy "redeploy $i, unchanged deps"
done
sort -n "$work/times" | awk '{ t[NR] = $1 } END { m = NR % 2 ? t[(NR + 1) / 2] : (t[NR / 2] + t[NR / 2 + 1]) / 2
  printf "redeploy, unchanged deps: median of %d        %6.2f s\n", NR, m }'
load >"$work/load.out" &
load_pid=$!
sed -i 's/"greeter v1"/"greeter v2"/' app.mjs
deploy "redeploy under load"
touch "$work/stop"
wait "$load_pid"
read -r ok failed <"$work/load.out"
echo "requests during the redeploy under load: $ok ok, $failed failed"
