#!/usr/bin/env bash
# Router benchmark: deploys the gogreeter fixture (testdata/apps/gogreeter, a
# DBOS Go app) on a real `hangar serve` with Hangar's CLI and benchmarks its
# GET /, a plain Go handler that does no database work, so that the executor
# answers far faster than either proxy and the proxies set the pace (the
# express+DBOS greeter answers 1-2k req/s directly, which measured the app,
# not the proxy). It runs wrk (keep-alive, 1
# thread) against the same executors three ways in one run: directly at an
# executor's address (plain HTTP, as the router reaches it), through nginx
# (1 worker, HTTPS with a certificate from Hangar's CA, keep-alive upstream)
# and through Hangar's router (HTTPS). It prints requests/s and p50/p99
# latency of each, and Hangar/nginx ratios; with 1 executor and then with 4
# behind the app, each at 32 and at 200 connections, for $ROUNDS rounds
# (default 5) of $DURATION (default 6s) each, the three ways interleaved:
# in each round one proxy runs between two runs of the other (nginx,
# Hangar, nginx, then Hangar, nginx, Hangar) and is compared with their
# means, so that the host's drift (its other load) favours neither.
# Then, since browsers speak HTTP/2, h2load (1 thread, 32 connections of
# 10 streams each) against nginx and Hangar, one run each per round, in
# turns first; p50/p99 from h2load's per-request log. Issue 11's targets
# are wrk's (HTTP/1.1); the HTTP/2 lines show where that path stands.
# Before the first load, what an idle keep-alive connection costs each
# proxy in resident memory (bench/router/idleconns holds 1,000 of each
# protocol open).
# Installs nginx, wrk and h2load (nghttp2-client) with apt when missing.
# Runs as root (executors use network namespaces); everything is on
# loopback and torn down at the end.
# BENCH_SUBNET and BENCH_PREFIX (or HANGAR_BENCH_SUBNET and
# HANGAR_BENCH_PREFIX, as the other benchmarks read them) keep executors'
# networks apart from another Hangar on the host.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
. "$root/bench/lib.sh"
images=${HANGAR_IMAGE_CACHE:-}
rounds=${ROUNDS:-5}
duration=${DURATION:-6s}
subnet=${BENCH_SUBNET:-${HANGAR_BENCH_SUBNET:-10.225.0.0/16}}
prefix=${BENCH_PREFIX:-${HANGAR_BENCH_PREFIX:-brt}}

need=()
command -v nginx >/dev/null || need+=(nginx-light)
command -v wrk >/dev/null || need+=(wrk)
command -v h2load >/dev/null || need+=(nghttp2-client)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

bench_init hangar-bench-router-XXXXXX
nginx_pid=""
# nginx is restarted for each executor count: stop the one running, then
# what bench_cleanup stops.
cleanup() {
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid" 2>/dev/null || true; wait "$nginx_pid" 2>/dev/null || true; fi
  bench_cleanup
}
trap cleanup EXIT

bench_build ./cmd/hangar ./cmd/dbos-cloud ./bench/router/idleconns
HANGAR_PG_SETTINGS=fsync=off bench_serve --network-prefix "$prefix" --subnet "$subnet"

export DBOS_DOMAIN="localhost:$port" NODE_EXTRA_CA_CERTS="$data/ca.pem" SSL_CERT_FILE="$data/ca.pem"
token=$(bench_user bench)
app="$work/gogreeter"
mkdir "$app"
(cd "$root/testdata/apps/gogreeter" && tar -cf - .) | (cd "$app" && tar xf -)
cd "$app"
cloud() { "$work/bin/dbos-cloud" "$@"; }
cloud login --with-refresh-token "$token" >/dev/null
cloud db provision benchdb -U dbos_admin -W bench-password >/dev/null
deploy() { cloud app deploy >"$work/deploy.out" 2>&1 || { cat "$work/deploy.out"; exit 1; }; }

host="bench-gogreeter.localhost"
# wrk takes the TLS server name from the URL and resolves it with the
# system's resolver: give it a hosts file of its own in a private mount
# namespace rather than edit the host's.
printf '127.0.0.1 localhost %s\n' "$host" >"$work/hosts"
wrk_() { unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec wrk "$@"' "$work/hosts" "$@"; }

# A certificate for nginx from Hangar's CA, with a P-256 key like the ones
# Hangar issues.
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$host" \
  -keyout "$work/nginx.key" -out "$work/nginx.csr" 2>/dev/null
printf 'subjectAltName=DNS:%s\n' "$host" >"$work/san.ext"
openssl x509 -req -in "$work/nginx.csr" -CA "$data/ca.pem" -CAkey "$data/ca-key.pem" -CAcreateserial \
  -days 2 -extfile "$work/san.ext" -out "$work/nginx.crt" 2>/dev/null
nport=$(freeport)

# start_nginx proxies https://$host:$nport to the executors given.
start_nginx() {
  if [ -n "$nginx_pid" ]; then kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true; fi
  mkdir -p "$work/nginx"
  {
    echo "worker_processes 1; user root; pid $work/nginx/nginx.pid; error_log $work/nginx/error.log;"
    echo "events { worker_connections 4096; }"
    echo "http { access_log off;"
    echo "  client_body_temp_path $work/nginx/body; proxy_temp_path $work/nginx/proxy;"
    echo "  upstream app {"
    for a in "$@"; do echo "    server $a;"; done
    # Like Hangar's router: below Node's 5 s keep-alive timeout.
    echo "    keepalive 512; keepalive_requests 1000000; keepalive_timeout 4s; }"
    echo "  server { listen 127.0.0.1:$nport ssl http2; server_name $host;"
    # TLS 1.3, as Hangar and wrk negotiate: Debian 12's nginx (1.22)
    # offers up to TLS 1.2 unless told. The version alone moves the tail:
    # at 200 connections, in 2 s runs, nginx's own p99 went from 27-35 ms
    # with TLS 1.2 to 90-140 ms with TLS 1.3 (the first requests of each
    # run).
    echo "    ssl_protocols TLSv1.2 TLSv1.3;"
    echo "    ssl_certificate $work/nginx.crt; ssl_certificate_key $work/nginx.key;"
    echo "    keepalive_requests 1000000;"
    echo "    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\";"
    echo "      proxy_set_header Host \$host; proxy_set_header X-Forwarded-For \$remote_addr;"
    echo "      proxy_set_header X-Forwarded-Proto \$scheme; proxy_set_header X-Forwarded-Host \$host; } } }"
  } >"$work/nginx/nginx.conf"
  nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
  nginx_pid=$!
  for _ in $(seq 100); do curl -fsS -o /dev/null 2>/dev/null --cacert "$data/ca.pem" --resolve "$host:$nport:127.0.0.1" "https://$host:$nport/" && return; sleep 0.1; done
  echo "nginx did not start"; cat "$work/nginx/error.log"; exit 1
}

# cputicks prints the CPU time (user + system, in clock ticks) the
# processes $@ have used so far.
cputicks() {
  local p t=0
  for p; do t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat"))); done
  echo "$t"
}

# idleticks prints the CPU ticks the processes $@ spend idle over
# $duration: what a proxy spends without requests (Hangar's supervisor and
# log shipping) is not the requests' cost.
idleticks() {
  local before
  before=$(cputicks "$@")
  sleep "$duration"
  echo $(($(cputicks "$@") - before))
}

# measure prints "<req/s> <p50 ms> <p99 ms> <proxy CPU µs per request>" of
# wrk against $1 with $2 connections, the proxy being the processes $4...
# (none for direct) which spend $3 ticks idle over as long.
measure() {
  local url=$1 conns=$2 idle=$3 before after out
  shift 3
  before=$(cputicks "$@")
  out=$(wrk_ -t1 -c"$conns" -d"$duration" --latency "$url")
  after=$(cputicks "$@")
  awk -v ticks=$((after - before - idle)) -v hz="$(getconf CLK_TCK)" '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    $1 == "50%" { p50 = ms($2) } $1 == "99%" { p99 = ms($2) } $1 == "Requests/sec:" { rps = $2 }
    $2 == "requests" && $3 == "in" { n = $1 }
    /Non-2xx|Socket errors/ { err = err " " $0 }
    END { printf "%.0f %.2f %.2f %.0f%s\n", rps, p50, p99, (n ? ticks * 1e6 / hz / n : 0), (err ? "  [" err " ]" : "") }' <<<"$out"
}

# measure_h2 prints "<req/s> <p50 ms> <p99 ms> <proxy CPU µs per request>"
# of h2load (HTTP/2, 32 connections of 10 streams) against $1, the proxy
# being the processes $3... which spend $2 ticks idle over $duration
# (whole seconds: h2load's -D takes a number).
measure_h2() {
  local url=$1 idle=$2 before after out
  shift 2
  before=$(cputicks "$@")
  out=$(unshare -m sh -c 'mount --bind "$0" /etc/hosts && exec h2load "$@"' "$work/hosts" \
    -t1 -c32 -m10 -D"${duration%s}" --log-file="$work/h2.log" "$url" 2>&1) || { echo "$out" >&2; exit 1; }
  after=$(cputicks "$@")
  # The log's third column: microseconds from request to response's end.
  local p50 p99
  read -r p50 p99 < <(cut -f3 "$work/h2.log" | sort -n |
    awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)], v[int((NR * 99 + 99) / 100)] }')
  awk -v ticks=$((after - before - idle)) -v hz="$(getconf CLK_TCK)" -v p50="$p50" -v p99="$p99" '
    $1 == "finished" { rps = $4 } $1 == "requests:" { n = $8; fail = $10 + $12 + $14 } $1 == "status" { ok = $3 }
    END { err = (fail ? " " fail " failed" : "") (ok < n ? " " n - ok " not 2xx" : "")
      printf "%.0f %.2f %.2f %.0f%s\n", rps, p50 / 1000, p99 / 1000, (n ? ticks * 1e6 / hz / n : 0), (err ? "  [" err " ]" : "") }' <<<"$out"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { print (b > 0 ? a / b : 0) }'; }

# mean2 prints the means of two runs' "<req/s> <p50> <p99> <CPU/req>".
mean2() { awk -v a="$1" -v b="$2" 'BEGIN { split(a, x); split(b, y); printf "%.0f %.2f %.2f %.0f\n", (x[1] + y[1]) / 2, (x[2] + y[2]) / 2, (x[3] + y[3]) / 2, (x[4] + y[4]) / 2 }'; }

# idle_cost prints what idle connections cost the proxy listening on port
# $1, whose process is $2: the growth of its resident memory, in KiB per
# connection, with 1,000 HTTP/1.1 connections held open, then with 1,000
# HTTP/2 ones more (held on top of the first, so that neither reuses
# memory the other freed).
idle_cost() {
  local port=$1 pid=$2 a b c p1 p2
  rss() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
  opened() { for _ in $(seq 600); do grep -q '^open' "$1" && return; sleep 0.1; done; echo "idleconns: $(cat "$1")" >&2; exit 1; }
  a=$(rss "$pid")
  "$work/bin/idleconns" -addr "127.0.0.1:$port" -host "$host" -n 1000 -net 1 >"$work/idle1" 2>&1 &
  p1=$!
  opened "$work/idle1"
  sleep 1
  b=$(rss "$pid")
  "$work/bin/idleconns" -addr "127.0.0.1:$port" -host "$host" -n 1000 -net 2 -h2 >"$work/idle2" 2>&1 &
  p2=$!
  opened "$work/idle2"
  sleep 1
  c=$(rss "$pid")
  kill "$p1" "$p2"
  wait "$p1" "$p2" 2>/dev/null || true
  awk -v a="$a" -v b="$b" -v c="$c" 'BEGIN { printf "%.1f %.1f\n", (b - a) / 1000, (c - b) / 1000 }'
}

# idle_memory prints both proxies' cost of idle connections (idle_cost).
idle_memory() {
  local n_h1 n_h2 h_h1 h_h2
  read -r n_h1 n_h2 < <(idle_cost "$nport" "$(pgrep -P "$nginx_pid" | head -1)")
  read -r h_h1 h_h2 < <(idle_cost "$port" "$serve_pid")
  echo
  echo "== idle connections: resident memory per connection held open, 1,000 of each protocol (KiB) =="
  printf 'HTTP/1.1  nginx %5.1f | hangar %5.1f | hangar/nginx %.2fx\n' "$n_h1" "$h_h1" "$(ratio "$h_h1" "$n_h1")"
  printf 'HTTP/2    nginx %5.1f | hangar %5.1f | hangar/nginx %.2fx\n' "$n_h2" "$h_h2" "$(ratio "$h_h2" "$n_h2")"
}

# run benchmarks the executors in $@ at 32 and 200 connections.
run() {
  local label=$1
  shift
  start_nginx "$@"
  local nginx_procs=("$nginx_pid" $(pgrep -P "$nginx_pid")) n_idle h_idle
  n_idle=$(idleticks "${nginx_procs[@]}")
  h_idle=$(idleticks "$serve_pid")
  # Before any load, so that no connection's memory is there to reuse.
  if [ "$label" = "1 executor" ]; then idle_memory; fi
  # Each sets its proxy's n_* or h_* (bash functions see run's locals).
  measure_nginx() { read -r n_rps n_p50 n_p99 n_cpu n_err < <(measure "https://$host:$nport/" "$conns" "$n_idle" "${nginx_procs[@]}"); }
  measure_hangar() { read -r h_rps h_p50 h_p99 h_cpu h_err < <(measure "https://$host:$port/" "$conns" "$h_idle" "$serve_pid"); }
  for conns in 32 200; do
    echo
    echo "== $label, $conns connections, $rounds rounds of $duration (req/s, p50 ms, p99 ms, proxy CPU per request) =="
    for r in $(seq "$rounds"); do
      read -r d_rps d_p50 d_p99 _ d_err < <(measure "http://$1/" "$conns" 0)
      # The host's speed drifts within a round: the proxy run once sits
      # between two runs of the other, whose means it is compared with
      # (nginx, Hangar, nginx; then Hangar, nginx, Hangar).
      if ((r % 2)); then
        measure_nginx
        local first=("$n_rps" "$n_p50" "$n_p99" "$n_cpu") first_err=$n_err
        measure_hangar
        measure_nginx
        read -r n_rps n_p50 n_p99 n_cpu < <(mean2 "${first[*]}" "$n_rps $n_p50 $n_p99 $n_cpu")
        n_err=$first_err$n_err
      else
        measure_hangar
        local first=("$h_rps" "$h_p50" "$h_p99" "$h_cpu") first_err=$h_err
        measure_nginx
        measure_hangar
        read -r h_rps h_p50 h_p99 h_cpu < <(mean2 "${first[*]}" "$h_rps $h_p50 $h_p99 $h_cpu")
        h_err=$first_err$h_err
      fi
      printf 'round %d  direct %6d %7.2f %7.2f | nginx %6d %7.2f %7.2f %4d µs | hangar %6d %7.2f %7.2f %4d µs | hangar/nginx: req/s %.2fx, p99 %.2fx, CPU/req %.2fx%s\n' \
        "$r" "$d_rps" "$d_p50" "$d_p99" "$n_rps" "$n_p50" "$n_p99" "$n_cpu" "$h_rps" "$h_p50" "$h_p99" "$h_cpu" \
        "$(ratio "$h_rps" "$n_rps")" "$(ratio "$h_p99" "$n_p99")" "$(ratio "$h_cpu" "$n_cpu")" "${d_err:+ direct:$d_err}${n_err:+ nginx:$n_err}${h_err:+ hangar:$h_err}"
      echo "$n_rps $h_rps $(ratio "$h_p99" "$n_p99") $(ratio "$h_cpu" "$n_cpu")" >>"$work/rounds"
    done
    # Rounds swing with the machine's other load: sum the requests, take
    # the median of the ratios.
    awk '{ n += $1; h += $2; p99[NR] = $3; cpu[NR] = $4 }
      function median(a, k, i, j, t) { for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        return k % 2 ? a[(k + 1) / 2] : (a[k / 2] + a[k / 2 + 1]) / 2 }
      END { printf "all rounds: hangar/nginx requests %.2fx, median p99 %.2fx, median CPU/req %.2fx\n", h / n, median(p99, NR), median(cpu, NR) }' "$work/rounds"
    rm "$work/rounds"
  done
  echo
  echo "== $label, HTTP/2 (h2load, 32 connections x 10 streams), $rounds rounds of $duration (req/s, p50 ms, p99 ms, proxy CPU per request) =="
  for r in $(seq "$rounds"); do
    # One run each, in turns first.
    if ((r % 2)); then
      read -r n_rps n_p50 n_p99 n_cpu n_err < <(measure_h2 "https://$host:$nport/" "$n_idle" "${nginx_procs[@]}")
      read -r h_rps h_p50 h_p99 h_cpu h_err < <(measure_h2 "https://$host:$port/" "$h_idle" "$serve_pid")
    else
      read -r h_rps h_p50 h_p99 h_cpu h_err < <(measure_h2 "https://$host:$port/" "$h_idle" "$serve_pid")
      read -r n_rps n_p50 n_p99 n_cpu n_err < <(measure_h2 "https://$host:$nport/" "$n_idle" "${nginx_procs[@]}")
    fi
    printf 'round %d  nginx %6d %7.2f %7.2f %4d µs | hangar %6d %7.2f %7.2f %4d µs | hangar/nginx: req/s %.2fx, p99 %.2fx, CPU/req %.2fx%s\n' \
      "$r" "$n_rps" "$n_p50" "$n_p99" "$n_cpu" "$h_rps" "$h_p50" "$h_p99" "$h_cpu" \
      "$(ratio "$h_rps" "$n_rps")" "$(ratio "$h_p99" "$n_p99")" "$(ratio "$h_cpu" "$n_cpu")" "${n_err:+ nginx:$n_err}${h_err:+ hangar:$h_err}"
  done
}

executors() { grep 'msg="executor started" component=fleet app=gogreeter' "$work/serve.log" | tail -n "$1" | sed 's/.*addr=\([^ ]*\).*/\1/'; }

# Whether the build carries the scheduler overlay (docs/runtime-patch.md).
overlay="scheduler overlay: no (stock runtime)"
grep -q runtime/hangar_preempt.go "$work/bin/hangar" && overlay="scheduler overlay: yes"
echo "Hangar router benchmark: gogreeter fixture's GET /, wrk -t1 keep-alive, $(nproc) CPUs, $overlay"
deploy
mapfile -t one < <(executors 1)
run "1 executor" "${one[@]}"

cloud app update gogreeter --min-executors 4 >/dev/null
deploy
mapfile -t four < <(executors 4)
run "4 executors" "${four[@]}"
