#!/usr/bin/env bash
# Run every test suite of iot_https:
#   1. ruff (lint and format check) and pylint-odoo (OCA's checks for 17.0);
#   2. the core, mock issuer and box client (pytest) with current libraries;
#   3. the same with the versions Odoo 17 pins (cryptography 3.4.8, requests 2.25.1, urllib3 1.26.5);
#   4. the Odoo addon suite on Odoo 17 + PostgreSQL, when Odoo 17 is installed.
# Odoo is found, in order, through $ODOO_PYTHON (a python that imports odoo),
# $ODOO_SRC (an Odoo 17 source tree), a python3 that imports odoo, or an
# `odoo` command on the PATH. It is never installed by this project.
# Extra arguments go to pytest (e.g. -k csr).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
# shellcheck source=tools/lib.sh
source tools/lib.sh

ensure_venv .venv requirements-dev.txt
ensure_venv .venv-compat requirements-compat.txt
ensure_wrk || true  # the benchmark's smoke test says so if it is missing

passed=0
failed=0
record() {  # record NAME PASSED FAILED
    passed=$((passed + $2)); failed=$((failed + $3))
    summary+=("$1: $2 passed, $3 failed")
}
summary=()

pytest_counts() {  # parse pytest's last line: "N passed, M failed, K error"
    local line=$1 p f e
    p=$(grep -oE '[0-9]+ passed' <<<"$line" | grep -oE '[0-9]+' || true)
    f=$(grep -oE '[0-9]+ failed' <<<"$line" | grep -oE '[0-9]+' || true)
    e=$(grep -oE '[0-9]+ errors?' <<<"$line" | grep -oE '[0-9]+' || true)
    echo "${p:-0} $(( ${f:-0} + ${e:-0} ))"
}

run_pytest() {  # run_pytest NAME VENV [env...]
    local name=$1 venv=$2 log rc=0
    shift 2
    log=$(mktemp)
    echo "== $name"
    env "$@" "$venv/bin/python" -m pytest tests_standalone "${PYTEST_ARGS[@]}" 2>&1 | tee "$log" || rc=$?
    read -r p f < <(pytest_counts "$(tail -n 1 "$log")")
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi  # collection errors and crashes count as failures
    record "$name" "$p" "$f"
    rm -f "$log"
}

PYTEST_ARGS=("$@")
PKILINT_BIN="$ROOT/.venv/bin/lint_cabf_serverauth_cert"

echo "== ruff"
if .venv/bin/ruff check . && .venv/bin/ruff format --check . >/dev/null; then
    record ruff 1 0
else
    .venv/bin/ruff format --diff . || true
    record ruff 0 1
fi

echo "== pylint-odoo (OCA checks for 17.0)"
if .venv/bin/pylint --rcfile=.pylintrc __manifest__.py __init__.py models controllers wizard tests testkit; then
    record pylint-odoo 1 0
else
    record pylint-odoo 0 1
fi

run_pytest "pytest (current libraries)" .venv "PKILINT=$PKILINT_BIN"
# IOT_HTTPS_COMPAT=1: schemathesis (the OpenAPI check) runs with current libraries only.
run_pytest "pytest (Odoo 17 pins: cryptography 3.4.8)" .venv-compat "PKILINT=$PKILINT_BIN" IOT_HTTPS_COMPAT=1

if find_odoo; then
    echo "== Odoo suite: running on Odoo $ODOO_VERSION ($ODOO_PY)"
    ensure_postgres
    ensure_chromium || true  # the screen tests fail, saying so, without it
    if out=$(tools/odoo-tests.sh); then rc=0; else rc=$?; fi
    echo "$out"
    p=$(tail -n 1 <<<"$out" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\1/p')
    f=$(tail -n 1 <<<"$out" | sed -nE 's/^([0-9]+) passed, ([0-9]+) failed$/\2/p')
    p=${p:-0}; f=${f:-0}
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    record "Odoo suite (Odoo $ODOO_VERSION + PostgreSQL; odoo-bin --test-enable and pytest-odoo)" "$p" "$f"
else
    echo "== Odoo suite: NOT RUN ($ODOO_MISSING)"
    summary+=("Odoo suite: not run ($ODOO_MISSING)")
fi

echo
echo "== summary"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
