"""A real Odoo 17 server with workers, on a throwaway PostgreSQL cluster.

Used by the end-to-end tests (tests_standalone/test_odoo_server.py) and by the
benchmark: what a test database inside Odoo cannot show (several workers,
PostgreSQL restarts, load from another process).
"""

import glob
import json
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import xmlrpc.client
from pathlib import Path

import requests

from iot_pki import profile

ROOT = Path(__file__).resolve().parent.parent
DB = "iot_https_server_test"
ADMIN = ("admin", "admin")
PASSPHRASE = "system test passphrase"  # noqa: S105 - a test's passphrase


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PrivatePostgres:
    """A throwaway PostgreSQL cluster on a Unix socket: restarted by the fault test, alone."""

    def __init__(self):
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not candidates and not shutil.which("initdb"):
            raise RuntimeError("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
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
        self._log = open(self.log_path, "a")
        self.process = subprocess.Popen(
            [*self.command, "-d", DB], env=self._env(), stdout=self._log, stderr=subprocess.STDOUT
        )
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

    def request(self, db_uuid, code, csr_pem=None, timeout=60):
        params = {"db_uuid": db_uuid, "enterprise_code": code}
        if csr_pem:
            params["csr_pem"] = csr_pem
        return requests.post(
            self.url + profile.X509_PATH,
            data=json.dumps({"params": params}),
            headers={"Content-Type": "application/json", "Connection": "close"},
            timeout=timeout,
        )
