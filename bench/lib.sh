# bench/lib.sh: the setup the benchmark scripts share, sourced after
# `set -euo pipefail`:
#
#   . "$(dirname "$0")/../lib.sh"
#   bench_init hangar-bench-XXXXXX   # $root, $work (0755, under /tmp), $data
#   bench_build ./cmd/hangar ...     # go build into $work/bin
#   bench_serve --network-prefix p --subnet 10.x.0.0/16 ...
#                                    # hangar serve on a free port: $port,
#                                    # $serve_pid, log in $work/serve.log
#   token=$(bench_user bench)        # a new user's refresh token
#
# The exit trap stops what bench_serve started, and any process whose PID
# the script appends to bench_pids (stopped first), then removes $work.
# Hangar runs PostgreSQL as the postgres user when root: $work and $data
# are world-readable for it.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
serve_pid=""
bench_pids=()

bench_cleanup() {
  local pid
  for pid in ${bench_pids[@]+"${bench_pids[@]}"} $serve_pid; do
    kill -TERM "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  bench_remove "$work"
}

# bench_remove WORK: removes a stopped server's work dir and its apps' setup
# layers in the image cache ($images, when set). The server leaves its apps'
# disks mounted for its next start (docs/disk.md): they are unmounted and
# their loop devices detached first.
bench_remove() {
  local w=$1 dirs=("$1") a d m dev
  for a in "$w"/data/apps/*/; do
    [ -n "${images:-}" ] && [ -d "$a" ] && dirs+=("$images/layers/$(basename "$a")")
  done
  for d in "${dirs[@]}"; do
    findmnt -rn -o TARGET | awk -v p="$d/" 'index($0, p) == 1' | sort -r |
      while read -r m; do umount "$m" 2>/dev/null || umount -l "$m"; done
    losetup -l -n -O NAME,BACK-FILE | awk -v p="$d/" 'index($2, p) == 1 { print $1 }' |
      while read -r dev; do losetup -d "$dev"; done
  done
  rm -rf "${dirs[@]}"
}

# bench_init TEMPLATE: a work dir from mktemp's TEMPLATE, and the exit trap.
bench_init() {
  work=$(mktemp -d "/tmp/$1")
  chmod 755 "$work"
  data="$work/data"
  mkdir -m 755 "$data"
  trap bench_cleanup EXIT
}

# bench_build PKG...: builds the packages into $work/bin, as make build does.
bench_build() { "$root/scripts/gobuild.sh" "$work/bin" "$@"; }

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# bench_serve FLAG...: starts hangar serve on $data and a free port with
# the flags given, and waits up to $BENCH_SERVE_WAIT tenths of a second
# (default 600) for it to serve.
bench_serve() {
  port=$(freeport)
  "$work/bin/hangar" serve --data-dir "$data" --listen "127.0.0.1:$port" --domain "localhost:$port" "$@" \
    >"$work/serve.log" 2>&1 &
  serve_pid=$!
  for _ in $(seq "${BENCH_SERVE_WAIT:-600}"); do grep -q "Hangar is serving" "$work/serve.log" && break; sleep 0.1; done
  grep -q "Hangar is serving" "$work/serve.log" || { cat "$work/serve.log"; exit 1; }
}

# bench_user NAME: creates user NAME and prints its refresh token.
bench_user() { "$work/bin/hangar" users add "$1" --data-dir "$data" | awk 'END {print $NF}'; }
