"""The real stock Odoo 17 IoT box code against the mock issuer.

``addons/hw_drivers/tools/helpers.py`` of an installed Odoo 17 runs unmodified
in a subprocess (``stock_box_driver.py``, with the python that imports Odoo);
only the edges of the box platform are redirected there: DNS of www.odoo.com to
the mock issuer on 127.0.0.1, the box's system files to a sandbox, and the
``sudo``/``systemctl`` commands to stubs. The mock issuer serves HTTPS, as the
stock box only speaks HTTPS to it.
"""

import datetime
import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import WRONG_CODE, find_odoo, mock_issuer, pem_blocks, register
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iot_pki import codes, keys
from testkit.tls import closed_port, self_signed

DRIVER = Path(__file__).resolve().parent / "stock_box_driver.py"
RESULT_PREFIX = "STOCK_BOX_RESULT "
HELPERS = Path("addons", "hw_drivers", "tools", "helpers.py")
SKIP_REASON = "Odoo 17 source not installed"

UUID = "6f1c2d3e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
CODE = "M2411STOCKBOX"
SERVER = "https://db.example.com"
TOKEN = "pairing-token"

# The box's files, as the stock code names them, and where the driver puts them.
BOX_CERT = "/etc/ssl/certs/nginx-cert.crt"
BOX_KEY = "/etc/ssl/private/nginx-cert.key"
BOX_FILES = (
    BOX_CERT,
    BOX_KEY,
    "/root_bypass_ramdisks/etc/ssl/certs/nginx-cert.crt",
    "/root_bypass_ramdisks/etc/ssl/private/nginx-cert.key",
)


# === FINDING ODOO (as tools/lib.sh find_odoo) ===


def find_stock_box():
    """The Odoo 17 to run the stock box code with, and its ``hw_drivers/tools/helpers.py``.

    :return: (python argv, PYTHONPATH or "", path of helpers.py), or None
    """
    found = find_odoo()
    if found is None:
        return None
    python, source, odoo_root = found
    # A source tree (addons/ beside odoo/) or an installed package (odoo/addons/).
    for helpers in (Path(odoo_root, HELPERS), Path(odoo_root, "odoo", HELPERS)):
        if helpers.is_file():
            return python, source, helpers
    return None


@pytest.fixture(scope="module")
def odoo17():
    found = find_stock_box()
    if found is None:
        pytest.skip(SKIP_REASON)
    return found


# === THE STOCK BOX ===


class StockBox:
    """One stock IoT box: its files live in ``sandbox`` from one run of the driver to the next."""

    def __init__(self, odoo17, sandbox):
        self.python, self.source, self.helpers = odoo17
        self.sandbox = sandbox
        self.last_stderr = ""

    def run(self, issuer_port, *calls):
        """Call the stock functions in order, www.odoo.com:443 resolving to 127.0.0.1:``issuer_port``.

        :param calls: (function name, argument, ...) tuples
        :return: the driver's report: ``results`` (one per call), ``lookups``, ``pauses``
        """
        config = {
            "helpers": str(self.helpers),
            "sandbox": str(self.sandbox),
            "issuer_port": issuer_port,
            "calls": [[name, list(args)] for name, *args in calls],
        }
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        if self.source:
            env["PYTHONPATH"] = self.source
        result = subprocess.run(
            [*self.python, str(DRIVER), json.dumps(config)],
            cwd=self.sandbox,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        self.last_stderr = result.stderr
        lines = [line for line in result.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
        assert result.returncode == 0 and lines, f"driver failed ({result.returncode}):\n{result.stderr}"
        report = json.loads(lines[-1][len(RESULT_PREFIX) :])
        # Only the stock issuer's name was looked up: nothing left for the internet.
        assert set(report["lookups"]) <= {"www.odoo.com:443"}, report["lookups"]
        return report

    def file(self, box_path):
        """A system file of the box (``/etc/ssl/...``) in the sandbox, or None when absent."""
        path = self.sandbox / "root" / box_path.lstrip("/")
        return path.read_text() if path.exists() else None

    def conf(self, name):
        path = self.sandbox / "home" / name
        return path.read_text() if path.exists() else None

    def commands(self, name):
        """The argument lines the stock code gave the ``sudo`` or ``systemctl`` stub."""
        path = self.sandbox / f"{name}.log"
        return path.read_text().splitlines() if path.exists() else []


@pytest.fixture
def stock_box(odoo17, tmp_path):
    sandbox = tmp_path / "box"
    sandbox.mkdir()
    before = _real_box_files()
    yield StockBox(odoo17, sandbox)
    assert _real_box_files() == before, "the stock box code wrote outside its sandbox"


def _real_box_files():
    return {path: (os.stat(path).st_mtime_ns if os.path.exists(path) else None) for path in BOX_FILES}


def pair(db_uuid=UUID, code=CODE):
    """The stock pairing call: what the box saves when the pairing string is pasted."""
    return ("save_conf_server", SERVER, TOKEN, db_uuid, code)


# === THE MOCK ISSUER OVER HTTPS ===


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    """A self-signed EC certificate for the mock issuer (the stock box does not verify it)."""
    directory = tmp_path_factory.mktemp("tls")
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate, key = self_signed(
        "mock-issuer.test", now + datetime.timedelta(days=1), now - datetime.timedelta(minutes=5), "mock-issuer.test"
    )
    cert_path, key_path = directory / "issuer.crt", directory / "issuer.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_path), str(key_path)


@pytest.fixture
def https_issuer(issuer_data, start_issuer, tls_files):
    cert_path, key_path = tls_files
    issuer = start_issuer(issuer_data, "--tls-cert", cert_path, "--tls-key", key_path)
    assert issuer.scheme == "https"
    return issuer


def issuer_requests(data_dir):
    """The request lines of ``mock_issuer list``: what the issuer saw and decided."""
    result = mock_issuer(data_dir, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("requests:", 1)[1].splitlines()
    return [line.strip() for line in lines if line.strip()]


def issued_certificates(data_dir):
    result = mock_issuer(data_dir, "list")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("requests:", 1)[0].split("certificates:", 1)[1].splitlines()
    return [line.strip() for line in lines if line.strip()]


def assert_nothing_installed(box):
    assert [box.file(path) for path in BOX_FILES] == [None] * len(BOX_FILES)
    assert box.conf("odoo-subject.conf") is None
    assert "service nginx restart" not in box.commands("sudo")


def assert_installed(box, issuer_data, message):
    """The stock box installed the issuer's certificate for nginx and reports it valid."""
    chain = box.file(BOX_CERT)
    blocks = pem_blocks(chain)
    assert len(blocks) == 2, "nginx's ssl_certificate must hold the leaf then the intermediate"
    leaf = x509.load_pem_x509_certificate(blocks[0].encode())
    intermediate = x509.load_pem_x509_certificate(blocks[1].encode())
    issuing = x509.load_pem_x509_certificate((issuer_data / "ca" / "issuing.crt").read_bytes())
    assert intermediate == issuing
    assert leaf.issuer == issuing.subject

    subject_cn = keys.common_name(leaf)
    assert subject_cn.startswith("*.") and subject_cn.endswith(".iot.example.com")
    assert box.conf("odoo-subject.conf") == subject_cn

    key_pem = box.file(BOX_KEY)
    private_key = keys.load_private_key_pem(key_pem)
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    assert private_key.public_key().public_bytes(*spki) == leaf.public_key().public_bytes(*spki)
    # The copies that survive the box's read-only root (/root_bypass_ramdisks) are the same files.
    assert box.file("/root_bypass_ramdisks" + BOX_CERT) == chain
    assert box.file("/root_bypass_ramdisks" + BOX_KEY) == key_pem

    # The stock message: the subject CN and notAfter less the 10 days of margin.
    refresh_at = keys.not_valid_after(leaf).replace(tzinfo=None) - datetime.timedelta(days=10)
    assert message == f"Your certificate {subject_cn} is valid until {refresh_at}"

    sudo = box.commands("sudo")
    assert sudo.count("service nginx restart") == 1
    # nginx restarts after the files are written and the root is read-only again.
    last_read_only = max(i for i, line in enumerate(sudo) if line == "mount -o remount,ro /")
    assert sudo.index("service nginx restart") > last_read_only
    assert any(f"{leaf.serial_number:x} valid" in line for line in issued_certificates(issuer_data))


# === SCENARIOS ===


def test_stock_box_installs_certificate_of_eligible_database(stock_box, issuer_data, https_issuer):
    register(issuer_data, UUID, CODE)

    report = stock_box.run(https_issuer.port, pair(), ("get_certificate_status",), ("get_certificate_status",))

    pairing, first, second = report["results"]
    assert pairing is None
    assert first[0] is True, first
    assert_installed(stock_box, issuer_data, first[1])
    assert report["pauses"] == [3]  # the stock box waits before restarting nginx
    # The next check reads the installed certificate back: valid, no new request.
    assert second == first
    assert len(issued_certificates(issuer_data)) == 1
    assert "is-active --quiet hostapd" in stock_box.commands("systemctl")
    assert [line.split()[3] for line in issuer_requests(issuer_data)] == ["issued"]


REFUSALS = {
    "no IoT box line": ({"line": False}, UUID, CODE, codes.NO_IOT_BOX_LINE),
    "staging database": ({"database_type": "staging"}, UUID, CODE, codes.NOT_PRODUCTION),
    "closed subscription": ({"state": "closed"}, UUID, CODE, codes.SUBSCRIPTION_NOT_IN_PROGRESS),
    "wrong enterprise code": ({}, UUID, WRONG_CODE, codes.UNKNOWN_CREDENTIALS),
    "unknown database": ({}, "00000000-0000-4000-8000-000000000000", CODE, codes.UNKNOWN_CREDENTIALS),
}


@pytest.mark.parametrize("case", REFUSALS, ids=list(REFUSALS))
def test_stock_box_reads_refusal_as_no_result(stock_box, issuer_data, https_issuer, case):
    """Every refusal is an HTTP 200 with a falsy ``result``: the stock box reports it, no crash."""
    registration, db_uuid, code, decision = REFUSALS[case]
    register(issuer_data, UUID, CODE, **registration)

    report = stock_box.run(https_issuer.port, pair(db_uuid, code), ("load_certificate",), ("get_certificate_status",))

    assert report["results"][1:] == [
        codes.LOAD_REQUEST_NO_RESULT,
        [False, codes.LOAD_REQUEST_NO_RESULT],
    ], stock_box.last_stderr
    assert_nothing_installed(stock_box)
    decisions = [line.split()[3] for line in issuer_requests(issuer_data)]
    assert decisions == [decision, decision]
    assert issued_certificates(issuer_data) == []


@pytest.mark.parametrize("db_uuid, code", [(None, None), (UUID, None), (None, CODE), (UUID, "")])
def test_stock_box_without_credentials_asks_nothing(stock_box, issuer_data, https_issuer, db_uuid, code):
    register(issuer_data, UUID, CODE)

    report = stock_box.run(https_issuer.port, pair(db_uuid, code), ("load_certificate",), ("get_certificate_status",))

    assert report["results"][1:] == [codes.LOAD_NO_CREDENTIAL, [False, codes.LOAD_NO_CREDENTIAL]]
    assert report["lookups"] == []  # no request made
    assert issuer_requests(issuer_data) == []
    assert_nothing_installed(stock_box)


def test_stock_box_reports_unreachable_issuer(stock_box, issuer_data, https_issuer):
    register(issuer_data, UUID, CODE)
    port = https_issuer.port
    https_issuer.stop()

    report = stock_box.run(port, pair(), ("load_certificate",))

    error = report["results"][1]
    assert error.startswith(codes.LOAD_REQUEST_EXCEPTION + "\n\n"), error
    assert "Connection refused" in error
    assert len(report["lookups"]) == 5  # urllib3.Retry(4): the first try and 4 retries
    assert_nothing_installed(stock_box)


def test_stock_box_reports_http_status_of_malformed_request(stock_box, issuer_data, https_issuer):
    """An enterprise code longer than the protocol allows: HTTP 400, shown with its reason."""
    report = stock_box.run(https_issuer.port, pair(UUID, "M" * 300), ("load_certificate",))

    assert report["results"][1] == f"{codes.LOAD_REQUEST_STATUS} 400\n\nBad Request"
    assert [line.split()[3] for line in issuer_requests(issuer_data)] == ["invalid_request"]
    assert_nothing_installed(stock_box)


def test_stock_box_without_server_reports_no_server(stock_box):
    report = stock_box.run(closed_port(), ("check_certificate",), ("get_certificate_status",))

    assert report["results"] == [
        {"status": "ERROR", "error_code": codes.CHECK_NO_SERVER},
        [False, codes.CHECK_NO_SERVER],
    ]
    assert report["lookups"] == []
    assert_nothing_installed(stock_box)


def test_stock_box_gets_certificate_once_iot_box_line_added(stock_box, issuer_data, https_issuer):
    register(issuer_data, UUID, CODE, line=False)

    first = stock_box.run(https_issuer.port, pair(), ("get_certificate_status",))
    assert first["results"][1] == [False, codes.LOAD_REQUEST_NO_RESULT]
    assert_nothing_installed(stock_box)

    register(issuer_data, UUID, CODE, line=True)  # while the issuer keeps running
    assert https_issuer.process.poll() is None
    second = stock_box.run(https_issuer.port, ("get_certificate_status",))

    status = second["results"][0]
    assert status[0] is True, status
    assert_installed(stock_box, issuer_data, status[1])
    decisions = [line.split()[3] for line in issuer_requests(issuer_data)]
    assert decisions == [codes.NO_IOT_BOX_LINE, "issued"]
