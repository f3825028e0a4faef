#!/usr/bin/env bash
# Install iot_https on a new database of the Odoo 17 found by find_odoo and
# run its test suite (odoo-bin --test-enable). The last line says
# "N passed, M failed". Set KEEP_DB=1 to keep the database.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source tools/lib.sh
find_odoo || { echo "$ODOO_MISSING"; echo "0 passed, 1 failed"; exit 1; }

odoo_root=$(PYTHONPATH=$ODOO_PYTHONPATH "$ODOO_PY" -c 'import odoo, os; print(os.path.dirname(os.path.dirname(odoo.__file__)))')
addons_dir=$(mktemp -d)
ln -s "$ROOT" "$addons_dir/iot_https"  # Odoo loads the addon from a folder named after it
db="iot_https_test_$$"
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
data_dir=$(mktemp -d)

addons_path="$addons_dir"
for candidate in "$odoo_root/addons" "$odoo_root/odoo/addons"; do
    [ -d "$candidate" ] && addons_path="$addons_path,$candidate"
done

PYTHONPATH=$ODOO_PYTHONPATH "$ODOO_PY" -c 'import sys, odoo.cli; sys.exit(odoo.cli.main())' \
    --database="$db" --addons-path="$addons_path" --data-dir="$data_dir" \
    --init=iot_https --without-demo=all --test-enable --test-tags=/iot_https \
    --http-interface=127.0.0.1 --http-port="$port" --stop-after-init --log-level=test \
    2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

# Odoo's own count: "odoo.tests.result: F failed, E error(s) of N tests when loading database".
read -r f e n < <(grep -oE 'odoo.tests.result: [0-9]+ failed, [0-9]+ error\(s\) of [0-9]+ tests' "$log" \
    | tail -n 1 | grep -oE '[0-9]+' | tr '\n' ' ')
f=${f:-0}; e=${e:-0}; n=${n:-0}
# An error logged outside a test (module install, a failed query) fails the run too.
# So does a Python warning raised by this addon's code (deprecations, field definitions).
logged=$(grep -cE '^[0-9-]+ [0-9:,]+ [0-9]+ (ERROR|CRITICAL) |py.warnings: .*(iot_https|iot\.)' "$log")
failures=$((f + e))
[ "$failures" -eq 0 ] && [ "$logged" -gt 0 ] && failures=$logged
[ "$rc" -ne 0 ] && [ "$failures" -eq 0 ] && failures=1
[ "$n" -eq 0 ] && [ "$failures" -eq 0 ] && failures=1  # a suite that ran nothing did not pass
ran=$n

[ "${KEEP_DB:-0}" = 1 ] || dropdb --if-exists "$db" >/dev/null 2>&1
rm -rf "$addons_dir" "$data_dir" "$log"
echo "$((ran > failures ? ran - failures : 0)) passed, $failures failed"
[ "$rc" -eq 0 ] && [ "$failures" -eq 0 ]
