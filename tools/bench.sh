#!/usr/bin/env bash
# The benchmark of the README: installs wrk if needed (Debian's package), then
# runs python -m benchmark in .venv. Arguments go to the benchmark
# (e.g. --seconds 10, --only core,http, --quick).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source tools/lib.sh
ensure_venv .venv requirements-dev.txt
ensure_wrk
exec .venv/bin/python -m benchmark "$@"
