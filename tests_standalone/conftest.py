"""Fixtures shared by the plain pytest suites (core, mock issuer, box client).

End-to-end fixtures start the real mock issuer and box client as processes
(``python -m mock_issuer`` / ``python -m box_client`` from the repository root).
"""

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from iot_pki import codes, profile
from testkit.tls import TlsServer

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_ZONE = "iot.example.com"
PUBLIC_URL = "http://pki.example.com"


# === PKILINT ===


def pkilint_binary():
    """pkilint's CLI: $PKILINT, or the one beside this python (pkilint needs cryptography >= 39,
    so the suite run with Odoo's cryptography 3.4.8 borrows the one of the main venv)."""
    candidate = os.environ.get("PKILINT") or shutil.which("lint_cabf_serverauth_cert")
    if not candidate:
        candidate = str(Path(sys.executable).parent / "lint_cabf_serverauth_cert")
    if not Path(candidate).exists():
        pytest.fail("pkilint is not installed: run tools/test.sh, or set PKILINT to lint_cabf_serverauth_cert")
    return candidate


def pkilint_findings(leaf_pem, tmp_path):
    """Findings at ERROR or above of ``lint_cabf_serverauth_cert -t DV-FINAL-CERTIFICATE``."""
    path = tmp_path / f"leaf-{time.monotonic_ns()}.pem"
    path.write_text(first_pem(leaf_pem))
    result = subprocess.run(
        [pkilint_binary(), "lint", "-t", "DV-FINAL-CERTIFICATE", "-s", "ERROR", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if "Failed to load" in result.stdout + result.stderr:
        pytest.fail(f"pkilint could not read the certificate: {result.stdout}{result.stderr}")
    return [line for line in result.stdout.splitlines() if line.strip()], result.returncode


def first_pem(chain_pem):
    """The first PEM block of a chain (the leaf)."""
    match = re.search(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", chain_pem, re.S)
    assert match, "no certificate in the chain"
    return match.group(0)


def pem_blocks(chain_pem):
    return re.findall(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", chain_pem, re.S)


# === ODOO 17 ===


def _run_probe(python, source, code):
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if source:
        env["PYTHONPATH"] = source
    try:
        return subprocess.run([*python, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    except OSError:
        return None


def find_odoo():
    """The installed Odoo 17, found in tools/lib.sh ``find_odoo``'s order: $ODOO_PYTHON, else
    python3 when $ODOO_SRC is set, else a python3 that imports odoo, else the python of the
    ``odoo`` command's shebang. $ODOO_SRC goes on PYTHONPATH.

    :return: (python argv, PYTHONPATH or "", Odoo's root folder), or None
    """
    source = os.environ.get("ODOO_SRC", "")
    odoo_command = shutil.which("odoo")
    if os.environ.get("ODOO_PYTHON"):
        python = [os.environ["ODOO_PYTHON"]]
    elif source:
        python = ["python3"]
    elif (probe := _run_probe(["python3"], "", "import odoo")) and probe.returncode == 0:
        python = ["python3"]
    elif odoo_command:
        with open(os.path.realpath(odoo_command), encoding="utf-8", errors="replace") as script:
            shebang = script.readline()
        if not shebang.startswith("#!"):
            return None
        python = shlex.split(shebang[2:])
    else:
        return None
    probe = _run_probe(
        python,
        source,
        "import json, os, odoo, odoo.release as r;"
        "print(json.dumps([r.version_info[0], os.path.dirname(os.path.dirname(odoo.__file__))]))",
    )
    if probe is None or probe.returncode != 0:
        return None
    major, odoo_root = json.loads(probe.stdout.strip().splitlines()[-1])
    return (python, source, odoo_root) if major == 17 else None


# === PROCESSES ===


def run_module(module, *args, env=None, timeout=60):
    """Run ``python -m <module> ...`` from the repository root."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )


def mock_issuer(data_dir, *args, **kwargs):
    return run_module("mock_issuer", "--data", data_dir, *args, **kwargs)


def box(state_dir, *args, **kwargs):
    return run_module("box_client", "--state-dir", state_dir, *args, **kwargs)


def issuer_list(data_dir):
    """``python -m mock_issuer list``: (certificate rows, request rows), each row split on blanks."""
    result = mock_issuer(data_dir, "list")
    assert result.returncode == 0, result.stderr
    sections, current = {}, None
    for line in result.stdout.splitlines():
        if not line.startswith(" "):
            current = sections.setdefault(line.rstrip(":"), [])
        else:
            current.append(line.split())
    return sections["certificates"], sections["requests"]


def expected_subject(data_dir, db_uuid):
    """The wildcard subject the issuer in ``data_dir`` gives ``db_uuid``, computed from its label key."""
    label_key = bytes.fromhex((Path(data_dir) / "ca" / "label.key").read_text().strip())
    return f"*.{profile.database_label(label_key, db_uuid)}.{PUBLIC_ZONE}"


UNKNOWN_UUID = "ffffffff-0000-4000-8000-000000000000"
WRONG_CODE = "M2411WRONG"


def wrong_credentials(db_uuid, code):
    """The two ways a box's credentials are wrong for the database (``db_uuid``, ``code``):
    (case name, UUID sent, code sent); the issuers answer both alike."""
    return (("unknown-uuid", UNKNOWN_UUID, code), ("wrong-code", db_uuid, WRONG_CODE))


# Databases the issuers refuse, and why.
INELIGIBLE = {
    # case: (database type, subscription state, IoT box line, refusal reason)
    "staging": ("staging", "in_progress", True, codes.NOT_PRODUCTION),
    "development": ("development", "in_progress", True, codes.NOT_PRODUCTION),
    "duplicate": ("duplicate", "in_progress", True, codes.NOT_PRODUCTION),
    "draft": ("production", "draft", True, codes.SUBSCRIPTION_NOT_IN_PROGRESS),
    "paused": ("production", "paused", True, codes.SUBSCRIPTION_NOT_IN_PROGRESS),
    "closed": ("production", "closed", True, codes.SUBSCRIPTION_NOT_IN_PROGRESS),
    "no-iot-box-line": ("production", "in_progress", False, codes.NO_IOT_BOX_LINE),
}


def register_ineligible(data_dir, cases, db_uuid, code):
    """Register one database per case of ``cases`` (a part of INELIGIBLE), its UUID and code
    derived from ``db_uuid`` and ``code``: yields (case name, UUID, code, refusal reason)."""
    for index, (name, (database_type, state, line, reason)) in enumerate(cases.items()):
        case_uuid, case_code = f"{db_uuid[:-2]}{index:02d}", f"{code}{index}"
        register(data_dir, case_uuid, case_code, database_type=database_type, state=state, line=line)
        yield name, case_uuid, case_code, reason


def register(data_dir, db_uuid, code, database_type="production", state="in_progress", line=True):
    result = mock_issuer(
        data_dir, "register", "--db-uuid", db_uuid, "--enterprise-code", code,
        "--database-type", database_type, "--subscription-state", state,
        "--iot-box-line" if line else "--no-iot-box-line",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result


class IssuerProcess:
    """A running ``python -m mock_issuer serve`` on a free loopback port."""

    def __init__(self, data_dir, log_path, extra_args=(), env=None):
        self.data_dir = Path(data_dir)
        self.log_path = Path(log_path)
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mock_issuer", "--data", str(data_dir), "serve", "--port", "0", *extra_args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=full_env,
        )
        self.scheme = "https" if "--tls-cert" in extra_args else "http"
        self.port = self._wait_for_port()
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def _wait_for_port(self):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"serving https?://[\d.]+:(\d+)/", self.log())
            if match:
                return int(match.group(1))
            if self.process.poll() is not None:
                raise RuntimeError(f"mock issuer exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mock issuer did not start:\n{self.log()}")

    def log(self):
        return self.log_path.read_text()

    def post(self, payload, **kwargs):
        body = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        headers = kwargs.pop("headers", {"Content-Type": "application/json"})
        return requests.post(self.url + "/odoo-enterprise/iot/x509", data=body, headers=headers, timeout=30, **kwargs)

    def request_certificate(self, db_uuid, code, **params):
        return self.post({"params": {"db_uuid": db_uuid, "enterprise_code": code, **params}})

    def stop(self, sig=signal.SIGTERM):
        """Stop the server; :return: its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def issuer_data(tmp_path):
    """An initialized mock issuer folder with public names (certificates pass pkilint)."""
    data_dir = tmp_path / "issuer"
    result = mock_issuer(data_dir, "init", "--zone", PUBLIC_ZONE, "--public-url", PUBLIC_URL)
    assert result.returncode == 0, result.stderr
    return data_dir


@pytest.fixture
def start_issuer(tmp_path):
    """Start mock issuers; every one started is stopped at the end of the test."""
    started = []

    def start(data_dir, *extra_args, env=None):
        process = IssuerProcess(data_dir, tmp_path / f"issuer-{len(started)}.log", extra_args, env)
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def tls_servers():
    """Start loopback TLS servers (``start(chain_path, key_path)``); each is stopped at the end of the test."""
    started = []

    def start(chain_path, key_path):
        started.append(TlsServer(chain_path, key_path))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def issuer(issuer_data, start_issuer):
    return start_issuer(issuer_data)
