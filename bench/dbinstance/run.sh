#!/usr/bin/env bash
# Database instance benchmark: provisioning time of a managed instance and
# point-in-time restore time of a ~100 MB database, measured at the API
# (request sent -> status "available", polled every 100 ms; the official
# CLI polls 5 s after its request, then every 30 s, so it reports 5 s for
# anything under 5 s). Two restores:
#   restore/WAL:  from the instance's first base backup (taken empty at
#                 provisioning), replaying all ~100 MB of WAL;
#   restore/base: from a base backup that holds the ~100 MB (the restored
#                 instance's own first backup), replaying almost no WAL.
# A new instance is available before its first base backup, which then runs
# in the background (it bounds how early the instance can be restored to).
# Runs as root (Hangar runs PostgreSQL as the postgres user), with fsync on;
# everything is on loopback and torn down at the end.
# Usage: bench/dbinstance/run.sh [rows, default 350000 (~100 MB)]
set -euo pipefail
. "$(dirname "$0")/../lib.sh"
rows=${1:-350000}
bench_init hangar-bench-db-XXXXXX
psql=$(ls -d /usr/lib/postgresql/*/bin/psql 2>/dev/null | sort -V | tail -1)
[ -x "$psql" ] || psql=$(command -v psql)

bench_build ./cmd/hangar
BENCH_SERVE_WAIT=900 bench_serve --network-prefix benchdb --subnet 10.224.0.0/16

refresh=$(bench_user bench)
base="https://localhost:$port/v1alpha1"
api() { # api METHOD PATH [JSON]
  curl -fsS --cacert "$data/ca.pem" -X "$1" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    ${3:+--data "$3"} "$base$2"
}
token=$(curl -fsS --cacert "$data/ca.pem" -H 'Content-Type: application/json' \
  --data "{\"grant_type\":\"refresh_token\",\"refresh_token\":\"$refresh\"}" "https://localhost:$port/oauth/token" | jq -r .access_token)

now() { date +%s%N; }
# wait_available NAME: polls until the instance is available, fails on failed.
wait_available() {
  local s
  for _ in $(seq 36000); do
    s=$(api GET "/bench/databases/userdb/info/$1" | jq -r .Status)
    [ "$s" = available ] && return 0
    [ "$s" = failed ] && { echo "$1 failed"; tail -50 "$work/serve.log"; exit 1; }
    sleep 0.1
  done
  echo "$1 not available after an hour"; exit 1
}
secs() { awk -v d="$(($2 - $1))" 'BEGIN {printf "%.2f s", d / 1e9}'; }
sql() { # sql NAME DB SQL
  local p
  p=$(api GET "/bench/databases/userdb/info/$1" | jq -r .Port)
  PGPASSWORD=bench-password "$psql" -qAtX -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$p" -U bench_admin -d "$2" -c "$3"
}

t0=$(now)
api POST /bench/databases/userdb '{"Name":"benchdb","AdminName":"bench_admin","AdminPassword":"bench-password"}' >/dev/null
wait_available benchdb
t1=$(now)
echo "provision (request -> available): $(secs "$t0" "$t1")"

sql benchdb postgres "CREATE DATABASE data"
t0=$(now)
sql benchdb data "CREATE TABLE big AS SELECT g AS id, repeat(md5(g::text), 8) AS pad FROM generate_series(1, $rows) g"
t1=$(now)
size=$(sql benchdb data "SELECT pg_size_pretty(pg_database_size('data'))")
echo "load: $rows rows, database size $size, in $(secs "$t0" "$t1")"
target=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
sql benchdb data "INSERT INTO big VALUES (0, 'after the target')"

restore() { # restore SOURCE TARGET_NAME TIME|now LABEL
  local t0 t1 n
  # A restored instance can itself be restored once its first base backup
  # is done (503 until then).
  local at=$3
  for _ in $(seq 600); do
    [ "$3" = now ] && at=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
    t0=$(now)
    api POST "/bench/databases/userdb/$1/restore" "{\"RestoreName\":\"$2\",\"RestoreTimestamp\":\"$at\"}" >/dev/null 2>&1 && break
    sleep 0.1
  done
  wait_available "$2"
  t1=$(now)
  n=$(sql "$2" data "SELECT count(*) FROM big")
  echo "$4: $(secs "$t0" "$t1") ($n rows restored)"
}
restore benchdb restored1 "$target" "restore/WAL  (replay ~$size of WAL onto an empty base backup)"
restore restored1 restored2 now "restore/base (copy a $size base backup, little WAL)"
