"""The Odoo endpoint as it runs in production: a real Odoo 17 server with 2 workers
on its own PostgreSQL cluster, driven over HTTP and XML-RPC.

What a test database cannot show: 50 boxes at the same moment on several
workers, rate limits shared by the workers, PostgreSQL restarting under load,
the CA passphrase from odoo.conf. Runs when Odoo 17 is installed (found as
tools/test.sh finds it) and PostgreSQL's server programs are on the machine.
"""

import json
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import ROOT, find_odoo, first_pem
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from benchmark.odoo_harness import DB, OdooServer, PrivatePostgres
from iot_pki import keys, profile

UUID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
CODE = "M24SERVERTEST"


def ask(server, code=CODE, csr_pem=None, timeout=60):
    """A box of the shop's database asks for its certificate."""
    return server.request(UUID, code, csr_pem, timeout)


REPORT = ROOT / ".build" / "odoo-server-figures.json"


@pytest.fixture(scope="module")
def server():
    found = find_odoo()
    if found is None:
        pytest.skip("Odoo 17 not installed")
    python, source, odoo_root = found
    pg = PrivatePostgres()
    work = Path(tempfile.mkdtemp(prefix="iot-https-odoo-"))
    odoo = OdooServer(python, source, odoo_root, pg, work)
    try:
        odoo.install()
        odoo.start()
        odoo.set_param("iot_https.zone", "iot.example.com")
        odoo.set_param("iot_https.public_url", "http://pki.example.com")
        product = odoo.rpc("product.product", "create", {"name": "IoT Box", "iot_box_subscription": True})
        subscription = odoo.rpc(
            "iot.subscription",
            "create",
            {"code": CODE, "state": "in_progress", "line_ids": [(0, 0, {"product_id": product, "quantity": 1})]},
        )
        odoo.rpc(
            "iot.database",
            "create",
            {"name": "Shop", "uuid": UUID, "database_type": "production", "subscription_id": subscription},
        )
        odoo.subscription_id = subscription
        yield odoo
    finally:
        odoo.stop()
        pg.destroy()
        if odoo.log_path.exists():  # kept for a look after a failure
            REPORT.parent.mkdir(exist_ok=True)
            shutil.copy(odoo.log_path, REPORT.parent / "odoo-server.log")
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture
def fresh_buckets(server):
    server.pg.psql("DELETE FROM iot_rate_bucket", DB)
    yield
    server.set_param("iot_https.uuid_rate_limit", "10/60")
    server.set_param("iot_https.client_rate_limit", "30/10")
    server.pg.psql("DELETE FROM iot_rate_bucket", DB)


def record_figure(name, value):
    REPORT.parent.mkdir(exist_ok=True)
    figures = json.loads(REPORT.read_text()) if REPORT.exists() else {}
    figures[name] = value
    REPORT.write_text(json.dumps(figures, indent=2, sort_keys=True))


def burst(server, count, **request_args):
    """``count`` requests released at the same moment: (responses, latencies in s, wall time in s)."""
    barrier = threading.Barrier(count)
    responses, latencies = [None] * count, [None] * count

    def box(index):
        barrier.wait()
        started = time.perf_counter()
        try:
            responses[index] = ask(server, **request_args)
        except requests.RequestException as exc:
            responses[index] = exc
        latencies[index] = time.perf_counter() - started

    threads = [threading.Thread(target=box, args=(i,)) for i in range(count)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return responses, latencies, time.perf_counter() - started


# === CONCURRENCY ===


@pytest.mark.parametrize("mode", ["legacy", "csr"])
def test_fifty_boxes_at_once_all_get_certificates(server, fresh_buckets, mode):
    """A shop restarting after a power cut: 50 boxes of one database ask at the same moment."""
    csr = None
    if mode == "csr":
        key = ec.generate_private_key(ec.SECP256R1())
        csr = keys.make_csr(key).public_bytes(serialization.Encoding.PEM).decode()
    before = server.rpc("iot.certificate", "search_count", [])
    responses, latencies, wall = burst(server, 50, csr_pem=csr)
    statuses = [getattr(r, "status_code", repr(r)) for r in responses]
    assert statuses == [200] * 50, statuses
    serials = {
        x509.load_pem_x509_certificate(first_pem(r.json()["result"]["x509_pem"]).encode()).serial_number
        for r in responses
    }
    assert len(serials) == 50
    assert server.rpc("iot.certificate", "search_count", []) == before + 50
    record_figure(
        f"burst_50_{mode}",
        {
            "wall_s": round(wall, 2),
            "p50_ms": round(statistics.median(latencies) * 1000),
            "max_ms": round(max(latencies) * 1000),
        },
    )


# === BRUTE FORCE ===


def test_rate_limit_holds_across_workers(server, fresh_buckets):
    server.set_param("iot_https.uuid_rate_limit", "5/3600")
    server.set_param("iot_https.client_rate_limit", "1000/1")
    statuses = [ask(server, code="WRONG").status_code for _attempt in range(8)]
    # Each request on a new connection: the two workers share the bucket in PostgreSQL.
    assert statuses == [200] * 5 + [429] * 3
    locked = ask(
        server,
    )
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert locked.json()["error"]["code"] == "rate_limited"
    tokens = float(server.pg.psql("SELECT tokens FROM iot_rate_bucket WHERE key LIKE 'uuid:%'", DB))
    assert tokens < 1


# === FAULTS ===


def test_postgresql_restart_during_load(server, fresh_buckets):
    """5xx while PostgreSQL is down, certificates again after, with no restart of Odoo."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = keys.make_csr(key).public_bytes(serialization.Encoding.PEM).decode()
    results, stop = [], threading.Event()

    def load():
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline and len(results) < 3000:
            moment = time.monotonic()
            try:
                response = ask(server, csr_pem=csr, timeout=30)
                results.append((moment, response.status_code, response.text))
            except requests.RequestException as exc:
                results.append((moment, None, str(exc)))
            time.sleep(0.02)

    loader = threading.Thread(target=load)
    loader.start()
    time.sleep(2)
    server.pg.stop()
    down = time.monotonic()
    time.sleep(3)
    server.pg.start()
    up = time.monotonic()
    # Wait for 20 successes in a row after the restart, bounded.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = [status for moment, status, _text in results if moment > up]
        if len(after) >= 20 and after[-20:] == [200] * 20:
            break
        time.sleep(0.2)
    stop.set()
    loader.join(60)

    during = [(status, text) for moment, status, text in results if down < moment < up]
    after = [status for moment, status, _text in results if moment > up]
    assert during, "no request was made while PostgreSQL was down"
    # A request that starts while PostgreSQL comes back may still succeed; none gets a 4xx.
    assert all(status is None or status == 200 or status >= 500 for status, _text in during), {s for s, _t in during}
    assert any(status and status >= 500 for status, _text in during), "the outage was not visible"
    assert all("Traceback" not in text for _status, text in during)
    assert after[-20:] == [200] * 20, after[-40:]
    first_ok = next(moment for moment, status, _text in results if moment > up and status == 200)
    record_figure(
        "postgresql_restart",
        {
            "requests": len(results),
            "during_outage": {str(s): sum(1 for st, _t in during if st == s) for s in {st for st, _t in during}},
            "seconds_to_first_certificate_after_restart": round(first_ok - up, 2),
        },
    )


# === KEY CUSTODY AND REVOCATION ===


def test_ca_keys_encrypted_with_the_odoo_conf_passphrase(server):
    ca_dir = server.data_dir / "iot_https" / DB / "ca"
    for name in ("root.key", "issuing.key"):
        path = ca_dir / name
        assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        assert oct(path.stat().st_mode & 0o777) == "0o600"
    dump = server.pg.psql("SELECT string_agg(value, '') FROM ir_config_parameter", DB)
    assert "PRIVATE KEY" not in dump


def test_revocation_through_rpc_reaches_the_crl(server, fresh_buckets):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = keys.make_csr(key).public_bytes(serialization.Encoding.PEM).decode()
    leaf = x509.load_pem_x509_certificate(first_pem(ask(server, csr_pem=csr).json()["result"]["x509_pem"]).encode())
    [certificate_id] = server.rpc("iot.certificate", "search", [("serial", "=", f"{leaf.serial_number:x}")])
    server.rpc("iot.certificate", "action_revoke", [certificate_id])
    crl = x509.load_der_x509_crl(requests.get(server.url + profile.CRL_PATH, timeout=10).content)
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    # Still eligible: the next request gets a new certificate.
    again = ask(server, csr_pem=csr)
    assert again.status_code == 200 and again.json()["result"]
