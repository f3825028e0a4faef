#!/usr/bin/env bash
# Start the mock issuer on an embedded default: a CA in ./mock-issuer-data,
# one eligible demo database, http://127.0.0.1:8070. Ctrl-C stops it.
# HOST, PORT and DATA override the defaults.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
source tools/lib.sh
ensure_venv .venv requirements-dev.txt

HOST=${HOST:-127.0.0.1}
PORT=${PORT:-8070}
DATA=${DATA:-mock-issuer-data}
PY=.venv/bin/python

$PY -m mock_issuer --data "$DATA" init --zone iot.example.com --public-url "http://$HOST:$PORT"
$PY -m mock_issuer --data "$DATA" register --db-uuid demo-db-uuid --enterprise-code demo-enterprise-code \
    --database-type production --subscription-state in_progress --iot-box-line
cat <<TXT

In another terminal, be a box asking for its certificate:
  $PY -m box_client --state-dir box-state configure --pairing 'http://$HOST:$PORT|demo-token|demo-db-uuid|demo-enterprise-code' --ip 10.0.0.5
  $PY -m box_client --state-dir box-state check

TXT
exec $PY -m mock_issuer --data "$DATA" serve --host "$HOST" --port "$PORT"
