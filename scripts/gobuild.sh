#!/usr/bin/env bash
# scripts/gobuild.sh OUTDIR PKG...: builds the packages (paths from the
# repository's root) into OUTDIR the way Hangar's binaries are built
# everywhere (make build, the benchmarks, the end-to-end suite): with the
# scheduler overlay of tools/rtpatch (docs/runtime-patch.md).
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
shift
go=${GO:-go}
overlay=$("$go" run ./tools/rtpatch -goroot "$("$go" env GOROOT)" -out "$out/.rtpatch")
"$go" build -overlay "$overlay" -o "$out/" "$@"
