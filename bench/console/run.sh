#!/usr/bin/env bash
# Console benchmark: p50 and p99 of every console page, rendered by the
# server and fetched over HTTPS on loopback, for an org with 50 apps, 10,000
# workflows and 14 days of metrics history (seeded directly into the
# databases). Needs root and what the end-to-end tests need.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
HANGAR_BENCH_CONSOLE=1 go test -count=1 -timeout 30m -run '^TestBenchConsole$' -v ./e2e | grep -E '^(page|/console|    console_bench)' 
