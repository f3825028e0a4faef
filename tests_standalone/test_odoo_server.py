"""The Odoo endpoint as it runs in production: a real Odoo 17 server with 2 workers
on its own PostgreSQL cluster, driven over HTTP and XML-RPC.

What a test database cannot show: 50 boxes at the same moment on several
workers, rate limits shared by the workers, PostgreSQL restarting under load,
the CA passphrase from odoo.conf. Runs when Odoo 17 is installed (found as
tools/test.sh finds it) and PostgreSQL's server programs are on the machine.
"""

import glob
import json
import os
import pwd
import shutil
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import xmlrpc.client
from pathlib import Path

import pytest
import requests
from conftest import ROOT, find_odoo, first_pem
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iot_pki import keys, profile

DB = "iot_https_server_test"
UUID = "7a6b5c4d-3e2f-4a1b-9c8d-7e6f5a4b3c2d"
CODE = "M24SERVERTEST"
PASSPHRASE = "system test passphrase"
ADMIN = ("admin", "admin")
REPORT = ROOT / ".build" / "odoo-server-figures.json"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a Unix socket: restarted by the fault test, alone."""

    def __init__(self):
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not candidates and not shutil.which("initdb"):
            pytest.fail("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
        self.bindir = Path(candidates[-1]).parent if candidates else Path(shutil.which("initdb")).parent
        self.dir = Path(tempfile.mkdtemp(prefix="iot-https-pg-"))
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            user = pwd.getpwnam("postgres")
            os.chown(self.dir, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self._run("initdb", "-D", str(self.dir / "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        self.start()
        self.psql("CREATE ROLE odoo SUPERUSER LOGIN")

    def _run(self, program, *args):
        subprocess.run([*self.as_user, str(self.bindir / program), *args], check=True, capture_output=True, timeout=120)

    def start(self):
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=''"
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-o", options, "-l", str(self.dir / "pg.log"), "-w", "start")

    def stop(self):
        self._run("pg_ctl", "-D", str(self.dir / "data"), "-m", "fast", "-w", "stop")

    def psql(self, sql, database="postgres"):
        result = subprocess.run(
            [str(self.bindir.parent / "bin" / "psql") if (self.bindir / "psql").exists() else "psql",
             "-h", str(self.dir), "-p", str(self.port), "-U", "postgres", "-d", database, "-Atc", sql],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        return result.stdout.strip()

    def destroy(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


class OdooServer:
    def __init__(self, python, source, odoo_root, pg, work):
        self.python, self.source, self.pg, self.work = python, source, pg, work
        addons = work / "addons"
        addons.mkdir()
        (addons / "iot_https").symlink_to(ROOT)
        paths = [str(addons)] + [p for p in (f"{odoo_root}/addons", f"{odoo_root}/odoo/addons") if Path(p).is_dir()]
        self.port = free_port()
        self.data_dir = work / "data"
        self.config = work / "odoo.conf"
        self.config.write_text(
            "[options]\n"
            f"addons_path = {','.join(paths)}\n"
            f"data_dir = {self.data_dir}\n"
            f"db_host = {pg.dir}\ndb_port = {pg.port}\ndb_user = odoo\n"
            f"http_interface = 127.0.0.1\nhttp_port = {self.port}\n"
            "workers = 2\nmax_cron_threads = 0\nlimit_time_real = 300\nlist_db = False\n"
            f"dbfilter = ^{DB}$\n"
            f"iot_https_ca_passphrase = {PASSPHRASE}\n"
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "odoo.log"
        self.process = None
        # odoo-bin when there is one: the prefork server re-runs its own command line for its gevent process.
        odoo_bin = Path(odoo_root, "odoo-bin")
        launcher = [str(odoo_bin)] if odoo_bin.is_file() else ["-c", "import sys, odoo.cli; sys.exit(odoo.cli.main())"]
        self.command = [*python, *launcher, "-c", str(self.config)]

    def _env(self):
        env = dict(os.environ)
        if self.source:
            env["PYTHONPATH"] = self.source
        return env

    def odoo(self, *args, **kwargs):
        return subprocess.run([*self.command, *args], env=self._env(), capture_output=True, text=True, **kwargs)

    def install(self):
        result = self.odoo("-d", DB, "-i", "iot_https", "--without-demo=all", "--stop-after-init", timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]

    def start(self):
        env = dict(os.environ)
        if self.source:
            env["PYTHONPATH"] = self.source
        command = [*self.python, "-c", "import sys, odoo.cli; sys.exit(odoo.cli.main())", "-c", str(self.config)]
        self._log = open(self.log_path, "a")
        self.process = subprocess.Popen([*command, "-d", DB], env=env, stdout=self._log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(self.url + profile.ROOT_PATH, timeout=5).status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert self.process.poll() is None, self.log_path.read_text()[-3000:]
            time.sleep(0.3)
        raise AssertionError("Odoo did not start:\n" + self.log_path.read_text()[-3000:])

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process:
            self._log.close()

    def rpc(self, model, method, *args, **kwargs):
        common = xmlrpc.client.ServerProxy(self.url + "/xmlrpc/2/common")
        uid = common.authenticate(DB, *ADMIN, {})
        models = xmlrpc.client.ServerProxy(self.url + "/xmlrpc/2/object", allow_none=True)
        return models.execute_kw(DB, uid, ADMIN[1], model, method, list(args), kwargs)

    def set_param(self, key, value):
        self.rpc("ir.config_parameter", "set_param", key, value)

    def request(self, code=CODE, csr_pem=None, db_uuid=UUID, timeout=60):
        params = {"db_uuid": db_uuid, "enterprise_code": code}
        if csr_pem:
            params["csr_pem"] = csr_pem
        return requests.post(
            self.url + profile.X509_PATH,
            data=json.dumps({"params": params}),
            headers={"Content-Type": "application/json", "Connection": "close"},
            timeout=timeout,
        )


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
            responses[index] = server.request(**request_args)
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
    statuses = [server.request(code="WRONG").status_code for _attempt in range(8)]
    # Each request on a new connection: the two workers share the bucket in PostgreSQL.
    assert statuses == [200] * 5 + [429] * 3
    locked = server.request()
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
                response = server.request(csr_pem=csr, timeout=30)
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
    leaf = x509.load_pem_x509_certificate(first_pem(server.request(csr_pem=csr).json()["result"]["x509_pem"]).encode())
    [certificate_id] = server.rpc("iot.certificate", "search", [("serial", "=", f"{leaf.serial_number:x}")])
    server.rpc("iot.certificate", "action_revoke", [certificate_id])
    crl = x509.load_der_x509_crl(requests.get(server.url + profile.CRL_PATH, timeout=10).content)
    assert crl.get_revoked_certificate_by_serial_number(leaf.serial_number) is not None
    # Still eligible: the next request gets a new certificate.
    again = server.request(csr_pem=csr)
    assert again.status_code == 200 and again.json()["result"]
