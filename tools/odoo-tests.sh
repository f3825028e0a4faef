#!/usr/bin/env bash
# The Odoo suite of iot_https, on the Odoo 17 found by find_odoo (tools/lib.sh):
#   1. odoo-bin --test-enable: install the addon on a new database and run tests/;
#   2. pytest-odoo on the same database (with --odoo-http for the HttpCase tests).
# pytest-odoo is installed into .build/pytest-odoo (never into Odoo's python).
# Full logs: .build/odoo-tests.log and .build/odoo-pytest.log. The last line
# says "N passed, M failed" (both phases). KEEP_DB=1 keeps the database.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source tools/lib.sh
find_odoo || { echo "$ODOO_MISSING"; echo "0 passed, 1 failed"; exit 1; }

mkdir -p .build
odoo_root=$(PYTHONPATH=$ODOO_PYTHONPATH "$ODOO_PY" -c 'import odoo, os; print(os.path.dirname(os.path.dirname(odoo.__file__)))')
addons_dir=$(mktemp -d)
ln -s "$ROOT" "$addons_dir/iot_https"  # Odoo loads the addon from a folder named after it
db="iot_https_test_$$"
data_dir=$(mktemp -d)
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
cleanup() {
    [ "${KEEP_DB:-0}" = 1 ] || dropdb --if-exists "$db" >/dev/null 2>&1
    rm -rf "$addons_dir" "$data_dir"
}
trap cleanup EXIT

addons_path="$addons_dir"
for candidate in "$odoo_root/addons" "$odoo_root/odoo/addons"; do
    [ -d "$candidate" ] && addons_path="$addons_path,$candidate"
done

# pytest-odoo, and websocket-client for Odoo's browser tests, go into .build
# (never into Odoo's python); both phases find them on PYTHONPATH.
target=.build/pytest-odoo
wanted="pytest-odoo>=2.1 websocket-client>=1"
if [ "$(cat "$target/.stamp" 2>/dev/null)" != "$wanted" ]; then
    rm -rf "$target"
    # shellcheck disable=SC2086 # one argument per requirement
    PYTHONPATH=$ODOO_PYTHONPATH "$ODOO_PY" -m pip install --quiet --disable-pip-version-check \
        --target "$target" $wanted >.build/pytest-odoo-install.log 2>&1 \
        && echo "$wanted" >"$target/.stamp"
fi
extra_path="$ROOT/$target${ODOO_PYTHONPATH:+:$ODOO_PYTHONPATH}"

# === 1. odoo-bin --test-enable ===
log=.build/odoo-tests.log
PYTHONPATH=$extra_path "$ODOO_PY" -c 'import sys, odoo.cli; sys.exit(odoo.cli.main())' \
    --database="$db" --addons-path="$addons_path" --data-dir="$data_dir" \
    --init=iot_https --without-demo=all --test-enable --test-tags=/iot_https \
    --http-interface=127.0.0.1 --http-port="$(free_port)" --stop-after-init --log-level=test \
    >"$log" 2>&1
rc=$?

# Odoo's own count: "odoo.tests.result: F failed, E error(s) of N tests when loading database".
counts=$(grep -oE 'odoo.tests.result: [0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$log" | tail -n 1)
f=$(sed -nE 's/.*: ([0-9]+) failed.*/\1/p' <<<"$counts"); f=${f:-0}
e=$(sed -nE 's/.* ([0-9]+) error.*/\1/p' <<<"$counts"); e=${e:-0}
n=$(sed -nE 's/.* of ([0-9]+) tests/\1/p' <<<"$counts"); n=${n:-0}
# An error logged outside a test (module install, a failed query) fails the run too,
# and so does a Python warning raised by this addon's code.
problems='^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) |py.warnings: .*(iot_https|iot\.)'
logged=$(grep -cE "$problems" "$log")
failures=$((f + e))
[ "$failures" -eq 0 ] && [ "$logged" -gt 0 ] && failures=$logged
[ "$rc" -ne 0 ] && [ "$failures" -eq 0 ] && failures=1
[ "$n" -eq 0 ] && [ "$failures" -eq 0 ] && failures=1  # a suite that ran nothing did not pass
if [ "$failures" -gt 0 ]; then
    grep -E -A 25 "$problems|^(FAIL|ERROR):" "$log" | head -n 300
fi
echo "odoo-bin --test-enable: $((n > failures ? n - failures : 0)) passed, $failures failed (log: $log)"
passed=$((n > failures ? n - failures : 0))
failed=$failures

# === 2. pytest-odoo on the same database ===
plog=.build/odoo-pytest.log
if [ "$rc" -eq 0 ] && [ -f "$target/.stamp" ]; then
    conf="$data_dir/odoo.conf"
    printf '[options]\naddons_path = %s\ndata_dir = %s\nhttp_interface = 127.0.0.1\n' "$addons_path" "$data_dir" >"$conf"
    # -c /dev/null and -p no:cacheprovider: pytest-odoo reads no project config and writes nothing here.
    PYTHONPATH=$extra_path "$ODOO_PY" -m pytest -c /dev/null \
        -p no:cacheprovider --rootdir "$addons_dir" --odoo-config="$conf" --odoo-database="$db" --odoo-http \
        "$addons_dir/iot_https/tests" >"$plog" 2>&1
    prc=$?
    summary=$(grep -E '^=+ .*(passed|failed|error).* =+$' "$plog" | tail -n 1)
    pp=$(grep -oE '[0-9]+ passed' <<<"$summary" | grep -oE '[0-9]+'); pp=${pp:-0}
    pf=$(grep -oE '[0-9]+ (failed|errors?)' <<<"$summary" | awk '{s += $1} END {print s + 0}'); pf=${pf:-0}
    [ "$prc" -ne 0 ] && [ "$pf" -eq 0 ] && pf=1
    [ "$pp" -eq 0 ] && [ "$pf" -eq 0 ] && pf=1
    [ "$pf" -gt 0 ] && tail -n 80 "$plog"
    echo "pytest-odoo: $pp passed, $pf failed (log: $plog)"
    passed=$((passed + pp))
    failed=$((failed + pf))
else
    [ "$rc" -eq 0 ] && tail -n 20 .build/pytest-odoo-install.log
    echo "pytest-odoo: not run (the odoo-bin phase failed, or pytest-odoo could not be installed)"
    failed=$((failed + 1))
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
