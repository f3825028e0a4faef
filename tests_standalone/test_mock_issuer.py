"""The mock issuer as a user runs it: `python -m mock_issuer --data DIR init|register|serve|revoke|list`."""

import hashlib
import json
import signal
import socket
import sqlite3
import threading

import pytest
import requests
from conftest import PUBLIC_URL, first_pem, mock_issuer, register
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iot_pki import keys, profile

UUID = "5f1c2b9a-2222-4c3d-8e9f-abcdefabcdef"
CODE = "M24CODE"


def tree_digest(folder):
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != ".lock"
    }


def certificate_rows(data_dir):
    with sqlite3.connect(data_dir / "issuer.sqlite3") as connection:
        return connection.execute("SELECT serial, state FROM certificates").fetchall()


def request_rows(data_dir):
    with sqlite3.connect(data_dir / "issuer.sqlite3") as connection:
        return connection.execute("SELECT decision, db_uuid FROM requests ORDER BY id").fetchall()


# === INIT ===


def test_init_creates_ca_and_settings_then_changes_nothing(issuer_data):
    assert (issuer_data / "ca" / "root.crt").exists()
    settings = json.loads((issuer_data / "settings.json").read_text())
    assert settings == {
        "zone": "iot.example.com",
        "public_url": PUBLIC_URL,
        "validity_days": 90,
        "legacy_key_type": "rsa2048",
        "uuid_rate_limit": "10/60",
        "client_rate_limit": "30/10",
    }
    before = tree_digest(issuer_data)
    again = mock_issuer(issuer_data, "init", "--zone", "other.example.net", "--public-url", "http://x.example.net")
    assert again.returncode == 0
    assert "unchanged" in again.stdout and "ignored" in again.stdout
    assert tree_digest(issuer_data) == before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["init", "--zone", "nodot", "--public-url", PUBLIC_URL], "invalid zone"),
        (["init", "--zone", "iot.example.com", "--public-url", "ftp://x"], "invalid public URL"),
        (["init", "--zone", "iot.example.com", "--public-url", PUBLIC_URL, "--validity-days", "365"], "validity"),
        (["init", "--zone", "iot.example.com", "--public-url", PUBLIC_URL, "--validity-days", "x"], "invalid int"),
        (["init"], "required"),
        (["serve"], "not initialized"),
        (["register", "--db-uuid", "u", "--enterprise-code", "c", "--database-type", "prod",
          "--subscription-state", "in_progress", "--iot-box-line"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
    ],
)  # fmt: skip
def test_bad_commands_get_a_clear_message_and_write_nothing(tmp_path, args, message):
    data_dir = tmp_path / "data"
    result = mock_issuer(data_dir, *args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert not data_dir.exists() or not any(data_dir.iterdir())


def test_register_needs_one_of_the_line_flags(issuer_data):
    result = mock_issuer(issuer_data, "register", "--db-uuid", UUID, "--enterprise-code", CODE,
                         "--database-type", "production", "--subscription-state", "in_progress")  # fmt: skip
    assert result.returncode == 2 and "--iot-box-line" in result.stderr


def test_passphrase_from_environment_encrypts_ca_keys(tmp_path, start_issuer):
    data_dir = tmp_path / "secret"
    env = {"IOT_HTTPS_CA_PASSPHRASE": "s3cret passphrase"}
    assert (
        mock_issuer(data_dir, "init", "--zone", "iot.example.com", "--public-url", PUBLIC_URL, env=env).returncode == 0
    )
    assert b"ENCRYPTED" in (data_dir / "ca" / "issuing.key").read_bytes()
    without = mock_issuer(data_dir, "serve", "--port", "0", env={"IOT_HTTPS_CA_PASSPHRASE": ""})
    assert without.returncode == 2 and "passphrase is required" in without.stderr
    wrong = mock_issuer(data_dir, "serve", "--port", "0", env={"IOT_HTTPS_CA_PASSPHRASE": "nope"})
    assert wrong.returncode == 2 and "wrong passphrase" in wrong.stderr
    register(data_dir, UUID, CODE)
    issuer = start_issuer(data_dir, env=env)
    assert issuer.request_certificate(UUID, CODE).json()["result"]["subject_cn"]


# === SERVE ===


def test_register_is_seen_by_the_next_request_without_restart(issuer_data, issuer):
    refused = issuer.request_certificate(UUID, CODE).json()
    assert refused == {"jsonrpc": "2.0", "id": None, "result": False}
    register(issuer_data, UUID, CODE, line=False)
    refused = issuer.request_certificate(UUID, CODE).json()
    assert refused["result"] is False and refused["refusal"]["code"] == "no_iot_box_line"
    register(issuer_data, UUID, CODE, line=True)
    issued = issuer.request_certificate(UUID, CODE).json()
    assert issued["result"]["subject_cn"].endswith(".iot.example.com")
    assert [decision for decision, _db in request_rows(issuer_data)] == [
        "unknown_credentials",
        "no_iot_box_line",
        "issued",
    ]


def test_one_log_line_per_request_with_its_decision(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    issuer.request_certificate(UUID, CODE)
    issuer.request_certificate(UUID, "wrong")
    issuer.post(b"not json")
    log = issuer.log()
    assert log.count("decision=issued") == 1
    assert log.count("decision=unknown_credentials") == 1
    assert log.count("decision=invalid_request") == 1
    assert "PRIVATE KEY" not in log


def test_ca_downloads_at_the_urls_embedded_in_certificates(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    result = issuer.request_certificate(UUID, CODE).json()["result"]
    leaf = x509.load_pem_x509_certificate(first_pem(result["x509_pem"]).encode())
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    crl_dp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    issuing_path = aia[0].access_location.value.removeprefix(PUBLIC_URL)
    crl_path = crl_dp[0].full_name[0].value.removeprefix(PUBLIC_URL)

    root = requests.get(issuer.url + "/odoo-enterprise/iot/ca.pem", timeout=10)
    assert root.status_code == 200
    root_cert = x509.load_pem_x509_certificate(root.content)
    assert root_cert.subject == root_cert.issuer
    assert root.content.decode() not in result["x509_pem"]

    issuing = requests.get(issuer.url + issuing_path, timeout=10)
    assert issuing.status_code == 200 and issuing.headers["Content-Type"] == "application/pkix-cert"
    issuing_cert = x509.load_der_x509_certificate(issuing.content)
    assert issuing_cert.subject == leaf.issuer

    crl = requests.get(issuer.url + crl_path, timeout=10)
    assert crl.status_code == 200 and crl.headers["Content-Type"] == "application/pkix-crl"
    assert x509.load_der_x509_crl(crl.content).is_signature_valid(issuing_cert.public_key())


def test_revoked_certificate_is_in_the_next_crl(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    result = issuer.request_certificate(UUID, CODE).json()["result"]
    serial = x509.load_pem_x509_certificate(first_pem(result["x509_pem"]).encode()).serial_number
    crl_url = issuer.url + profile.CRL_PATH
    assert (
        x509.load_der_x509_crl(requests.get(crl_url, timeout=10).content).get_revoked_certificate_by_serial_number(
            serial
        )
        is None
    )
    revoked = mock_issuer(issuer_data, "revoke", "--serial", f"{serial:x}")
    assert revoked.returncode == 0, revoked.stderr
    crl = x509.load_der_x509_crl(requests.get(crl_url, timeout=10).content)
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None
    again = mock_issuer(issuer_data, "revoke", "--serial", f"{serial:x}")
    assert again.returncode == 1 and "no valid certificate" in again.stderr
    listing = mock_issuer(issuer_data, "list")
    assert f"{serial:x} revoked" in listing.stdout


def test_concurrent_requests_all_answered_with_unique_serials(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    csr = keys.make_csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.PEM).decode()
    results = []

    def ask():
        results.append(issuer.request_certificate(UUID, CODE, csr_pem=csr))

    threads = [threading.Thread(target=ask) for _ in range(30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(results) == 30 and all(r.status_code == 200 and r.json()["result"] for r in results)
    serials = {x509.load_pem_x509_certificate(r.json()["result"]["x509_pem"].encode()).serial_number for r in results}
    assert len(serials) == 30
    assert sorted(state for _serial, state in certificate_rows(issuer_data)) == ["valid"] * 30


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/odoo-enterprise/iot/x509", b"x" * (64 * 1024 + 1), 413),
        ("POST", "/odoo-enterprise/iot/x509", b"{not json", 400),
        ("POST", "/odoo-enterprise/iot/x509", b'{"params": {"db_uuid": 1}}', 400),
        ("POST", "/elsewhere", b"{}", 404),
        ("GET", "/odoo-enterprise/iot/x509", None, 404),
        ("GET", "/", None, 404),
        ("PUT", "/odoo-enterprise/iot/x509", b"{}", 405),
        ("DELETE", "/odoo-enterprise/iot/ca.pem", None, 405),
    ],
)
def test_bad_requests_get_a_clear_4xx_and_nothing_is_written(issuer_data, issuer, method, path, body, status):
    response = requests.request(method, issuer.url + path, data=body, timeout=10)
    assert response.status_code == status
    payload = response.json()
    assert payload["error"]["message"]
    assert "Traceback" not in response.text
    assert certificate_rows(issuer_data) == []


def test_oversized_body_refused_before_it_is_read(issuer):
    with socket.create_connection(("127.0.0.1", issuer.port), timeout=10) as connection:
        connection.sendall(
            b"POST /odoo-enterprise/iot/x509 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000000\r\n\r\n"
        )
        status_line = connection.makefile("rb").readline()
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_stop_on_signal(issuer, sig):
    assert requests.get(issuer.url + profile.ROOT_PATH, timeout=10).status_code == 200
    assert issuer.stop(sig) == 0
    assert "stopped" in issuer.log()
    assert "Traceback" not in issuer.log()


def test_closing_the_subscription_revokes_valid_certificates(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    result = issuer.request_certificate(UUID, CODE).json()["result"]
    serial = x509.load_pem_x509_certificate(first_pem(result["x509_pem"]).encode()).serial_number
    paused = register(issuer_data, UUID, CODE, state="paused")
    assert "revoked" not in paused.stdout
    closed = register(issuer_data, UUID, CODE, state="closed")
    assert "revoked 1 certificate" in closed.stdout
    crl = x509.load_der_x509_crl(requests.get(issuer.url + profile.CRL_PATH, timeout=10).content)
    assert crl.get_revoked_certificate_by_serial_number(serial) is not None


def test_several_workers_serve_one_port_and_stop_together(issuer_data, start_issuer):
    register(issuer_data, UUID, CODE)
    issuer = start_issuer(issuer_data, "--workers", "2")
    results = []

    def ask():
        results.append(issuer.request_certificate(UUID, CODE).status_code)

    threads = [threading.Thread(target=ask) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert results == [200] * 10
    assert len({serial for serial, _state in certificate_rows(issuer_data)}) == 10
    assert issuer.stop() == 0
    assert issuer.log().count("stopped") == 1
