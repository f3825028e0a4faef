# Shared helpers of tools/*.sh (sourced, not run).

# ensure_venv DIR REQUIREMENTS: a virtualenv with REQUIREMENTS installed,
# reinstalled only when the requirements files change.
ensure_venv() {
    local dir=$1 requirements=$2 stamp
    stamp=$(cat "$requirements" requirements.txt | sha256sum | cut -c1-16)
    if [ -f "$dir/.stamp" ] && [ "$(cat "$dir/.stamp")" = "$stamp" ]; then
        return 0
    fi
    echo "== installing $requirements into $dir"
    rm -rf "$dir"
    "${PYTHON:-python3}" -m venv "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
    echo "$stamp" >"$dir/.stamp"
}

# find_odoo: sets ODOO_PY (a python that imports Odoo 17), ODOO_PYTHONPATH and
# ODOO_VERSION; or ODOO_MISSING (why not) and returns 1.
find_odoo() {
    local candidate odoo_cmd
    ODOO_PYTHONPATH=${ODOO_SRC:-}
    if [ -n "${ODOO_PYTHON:-}" ]; then
        candidate=$ODOO_PYTHON
    elif [ -n "${ODOO_SRC:-}" ]; then
        candidate=python3
    elif python3 -c 'import odoo' >/dev/null 2>&1; then
        candidate=python3
    elif odoo_cmd=$(command -v odoo); then
        candidate=$(head -n 1 "$(readlink -f "$odoo_cmd")" | sed 's/^#! *//')
        case $candidate in  # "#!/usr/bin/env python3": the interpreter is the word after env
            */env\ *) candidate=$(command -v "${candidate##* }" || echo "$candidate") ;;
        esac
    else
        ODOO_MISSING="Odoo 17 not installed: set ODOO_SRC or ODOO_PYTHON, or put odoo on the PATH"
        return 1
    fi
    if ! ODOO_VERSION=$(PYTHONPATH=$ODOO_PYTHONPATH "$candidate" -c \
        'import odoo.release as r; print(r.version) if r.version_info[0] == 17 else exit(1)' 2>/dev/null); then
        ODOO_MISSING="$candidate does not import Odoo 17"
        return 1
    fi
    ODOO_PY=$candidate
    export ODOO_PY ODOO_PYTHONPATH ODOO_VERSION
}

# ensure_postgres: PostgreSQL answers for the current user, starting the local cluster if needed.
ensure_postgres() {
    if pg_isready -q 2>/dev/null; then
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null; then
        local version
        version=$(pg_lsclusters -h | awk 'NR==1 {print $1}')
        echo "== starting PostgreSQL $version"
        pg_ctlcluster "$version" main start || true
    fi
    for _ in $(seq 30); do
        pg_isready -q && break
        sleep 1
    done
    if ! psql -d postgres -Atc 'select 1' >/dev/null 2>&1; then
        if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
            su postgres -c "createuser --superuser $(id -un)" >/dev/null 2>&1 || true
        fi
    fi
    psql -d postgres -Atc 'select 1' >/dev/null
}

# ensure_wrk: the HTTP load generator of the benchmark (Debian's wrk package).
ensure_wrk() {
    command -v wrk >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing wrk"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
    fi
    command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; return 1; }
}

# ensure_chromium: the browser of the Odoo suite's screen tests (Debian's chromium package).
ensure_chromium() {
    command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "== installing chromium"
        apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
    command -v chromium >/dev/null || { echo "chromium is needed for the browser tests: apt-get install chromium" >&2; return 1; }
}
