"""The real box client (``python -m box_client``) against the real mock issuer process.

Every outcome a box shows on its homepage, as the documentation page "HTTPS
certificate (IoT)" lists them: the first output line is the code (or ``OK``),
then detail lines, then ``meaning:`` and ``fix:``; exit code 0 for OK, 1 for an
error, 2 for a usage error.
"""

import datetime
import json
import os
import re
from pathlib import Path

import pytest
import requests
from conftest import (
    INELIGIBLE,
    box,
    expected_subject,
    first_pem,
    issuer_list,
    pem_blocks,
    pkilint_findings,
    register,
    register_ineligible,
    wrong_credentials,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from iot_pki import codes, keys, profile
from testkit.tls import closed_port, self_signed

UUID = "0d5c7a52-9b1e-4f7e-a0f4-3c1d2e3f4a5b"
CODE = "M2411BOXCLIENT"
IP = "10.0.0.5"
TEMPORARY_CN = "OdooTempIoTBoxCertificate"
CERT_FILE = "nginx-cert.crt"
KEY_FILE = "nginx-cert.key"
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


# === HELPERS ===


def output_lines(result):
    """stdout as lines, after checking that nothing crashed."""
    assert "Traceback" not in result.stdout + result.stderr, (
        f"the box client crashed instead of showing an error code:\n{result.stdout}{result.stderr}"
    )
    return result.stdout.splitlines()


def configure(state_dir, *args):
    result = box(state_dir, "configure", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def pair(state_dir, issuer_url, db_uuid=UUID, code=CODE, *extra):
    """Configure a box as paired with ``issuer_url``, at address 10.0.0.5."""
    return configure(
        state_dir, "--server", issuer_url, "--db-uuid", db_uuid, "--enterprise-code", code, "--ip", IP, *extra
    )


def check(state_dir, env=None):
    return box(state_dir, "check", env=env)


def error_details(result, code, refusal=None):
    """Assert a box error (exit 1, ``code`` first, meaning and fix last: the fix of the issuer's
    ``refusal`` reason when it gave one); :return: the detail lines between."""
    lines = output_lines(result)
    assert result.returncode == 1, result.stdout + result.stderr
    assert lines, result.stderr
    assert lines[0] == code, result.stdout
    entry = codes.BOX_ERRORS[code.split(" ", 1)[0]]
    fix = codes.REFUSALS[refusal].fix if refusal else entry.fix
    assert lines[-2:] == [f"meaning: {entry.meaning}", f"fix: {fix}"], result.stdout
    return lines[1:-2]


def fmt(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def installed(state_dir):
    """(leaf certificate, chain PEM, key PEM) installed in the box's folder."""
    chain_pem = (Path(state_dir) / CERT_FILE).read_text()
    key_pem = (Path(state_dir) / KEY_FILE).read_text()
    return x509.load_pem_x509_certificate(first_pem(chain_pem).encode()), chain_pem, key_pem


def assert_ok(result, leaf, ip=IP):
    """The OK output of a check for the certificate ``leaf``."""
    lines = output_lines(result)
    assert result.returncode == 0, result.stdout + result.stderr
    subject = keys.common_name(leaf)
    assert lines == [
        f"OK {subject} valid from {fmt(keys.not_valid_before(leaf))} until {fmt(keys.not_valid_after(leaf))} "
        f"https://{ip.replace('.', '-')}{subject.lstrip('*')}",
        f"renewal due after {fmt(keys.not_valid_after(leaf) - datetime.timedelta(days=10))}",
    ], result.stdout


def spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def write_certificate(path, certificate):
    Path(path).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def get(issuer, path):
    response = requests.get(issuer.url + path, timeout=30)
    assert response.status_code == 200, response.text
    return response


# === ERR_IOT_HTTPS_CHECK_NO_SERVER ===


def test_nothing_configured_is_no_server(tmp_path):
    result = check(tmp_path / "box")
    assert error_details(result, codes.CHECK_NO_SERVER) == []


def test_credentials_without_server_is_no_server(tmp_path):
    configure(tmp_path / "box", "--db-uuid", UUID, "--enterprise-code", CODE)
    assert error_details(check(tmp_path / "box"), codes.CHECK_NO_SERVER) == []


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("{this is not json", "JSONDecodeError"),
        ('["http://127.0.0.1:8069"]', "ValueError: not a JSON object"),
        ("", "JSONDecodeError"),
        (None, "IsADirectoryError"),
    ],
    ids=["garbage", "not-an-object", "empty", "directory"],
)
def test_unreadable_config_is_no_server(tmp_path, content, reason):
    state_dir = tmp_path / "box"
    state_dir.mkdir()
    config = state_dir / "box.json"
    if content is None:
        config.mkdir()
    else:
        config.write_text(content)
    details = error_details(check(state_dir), codes.CHECK_NO_SERVER)
    assert len(details) == 1, details
    assert details[0].startswith(f"{config} is unreadable: {reason}"), details


def test_config_with_wrongly_typed_values_is_no_server(tmp_path):
    # A box.json that parses but whose values are not strings is as corrupt as garbage text.
    state_dir = tmp_path / "box"
    state_dir.mkdir()
    (state_dir / "box.json").write_text(json.dumps({"server": 8069, "db_uuid": UUID, "enterprise_code": CODE}))
    result = check(state_dir)
    assert "Traceback" not in result.stdout + result.stderr, (
        "BUG box_client/box.py Box.load_config: values of box.json are not type-checked, so "
        '{"server": 8069, ...} crashes in BoxConfig.issuer_url (int has no rstrip) with a traceback '
        f"instead of ERR_IOT_HTTPS_CHECK_NO_SERVER:\n{result.stderr}"
    )
    assert error_details(result, codes.CHECK_NO_SERVER)


def test_pairing_again_repairs_an_unreadable_config(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    state_dir.mkdir()
    (state_dir / "box.json").write_text("{truncated")
    error_details(check(state_dir), codes.CHECK_NO_SERVER)
    # The fix the box shows for this code: paste the pairing string.
    result = box(state_dir, "configure", "--pairing", f"{issuer.url}|token|{UUID}|{CODE}", "--ip", IP)
    assert result.returncode == 0, (
        "BUG box_client/__main__.py cmd_configure: configure starts with box.load_config(), which raises "
        "ERR_IOT_HTTPS_CHECK_NO_SERVER on an unreadable box.json, so pasting the pairing string (the fix "
        "this code's message gives) cannot repair the box; only deleting box.json by hand does. "
        f"Output:\n{result.stdout}{result.stderr}"
    )
    assert_ok(check(state_dir), installed(state_dir)[0])


# === ERR_IOT_HTTPS_LOAD_NO_CREDENTIAL ===


def test_missing_credential_makes_no_request(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    cases = {
        "none": (),
        "no-code": ("--db-uuid", UUID),
        "no-uuid": ("--enterprise-code", CODE),
        "blank-uuid": ("--db-uuid", "  ", "--enterprise-code", CODE),
    }
    for name, credentials in cases.items():
        state_dir = tmp_path / name
        configure(state_dir, "--server", issuer.url, "--ip", IP, *credentials)
        assert error_details(check(state_dir), codes.LOAD_NO_CREDENTIAL) == [], name
        assert not (state_dir / CERT_FILE).exists(), name
    assert issuer_list(issuer_data) == ([], []), "a box asked the issuer without credentials"
    assert " x509 " not in issuer.log()


# === ERR_IOT_HTTPS_LOAD_REQUEST_EXCEPTION / _STATUS ===


def test_issuer_unreachable_is_request_exception(tmp_path):
    state_dir = tmp_path / "box"
    url = f"http://127.0.0.1:{closed_port()}"
    pair(state_dir, url)
    details = error_details(check(state_dir), codes.LOAD_REQUEST_EXCEPTION)
    exceptions = [line for line in details if line]
    assert len(exceptions) == 1, details
    assert exceptions[0].startswith(f"POST {url}{profile.X509_PATH}: "), exceptions
    assert "Connection refused" in exceptions[0], exceptions
    assert not (state_dir / CERT_FILE).exists()


def test_wrong_issuer_path_is_request_status_404(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    configure(state_dir, "--issuer", issuer.url + "/wrong-prefix")
    details = error_details(check(state_dir), "ERR_IOT_HTTPS_LOAD_REQUEST_STATUS 404")
    assert [line for line in details if line] == [
        "Not Found",
        f"nothing at /wrong-prefix{profile.X509_PATH}",
    ], details
    assert issuer_list(issuer_data) == ([], []), "a 404 must not reach the certificate service"


def test_request_errors_show_a_blank_line_before_the_reason_as_stock(tmp_path, issuer):
    # Stock helpers.py: "ERR_IOT_HTTPS_LOAD_REQUEST_STATUS %s\n\n%s" % (status, reason), and the same
    # "\n\n" after ERR_IOT_HTTPS_LOAD_REQUEST_EXCEPTION. box.py passes "" for that blank line.
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url + "/wrong-prefix")
    lines = output_lines(check(state_dir))
    assert lines[:3] == ["ERR_IOT_HTTPS_LOAD_REQUEST_STATUS 404", "", "Not Found"], (
        "BUG box_client/box.py BoxError.__init__: `self.details = [d for d in details if d]` drops the "
        '"" that load_certificate passes after LOAD_REQUEST_STATUS and LOAD_REQUEST_EXCEPTION, so the '
        "blank line a stock box shows between the code and the reason/exception is missing. "
        f"Output:\n{lines}"
    )


# === ERR_IOT_HTTPS_LOAD_REQUEST_NO_RESULT ===


def test_wrong_credentials_are_refused_without_a_reason(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    outputs = []
    for name, db_uuid, code in wrong_credentials(UUID, CODE):
        state_dir = tmp_path / name
        pair(state_dir, issuer.url, db_uuid, code)
        result = check(state_dir)
        assert error_details(result, codes.LOAD_REQUEST_NO_RESULT) == ["refused (no reason given)"], name
        for reason in codes.REFUSALS:
            assert reason not in result.stdout, f"{name}: the answer reveals {reason}"
        outputs.append(result.stdout)
        assert not (state_dir / CERT_FILE).exists()
    # An unknown UUID and a wrong code look the same: the issuer tells nothing about the database.
    assert outputs[0] == outputs[1]
    certificates, requests_seen = issuer_list(issuer_data)
    assert certificates == []
    assert [row[3] for row in requests_seen] == [codes.UNKNOWN_CREDENTIALS] * 2, requests_seen


def test_ineligible_databases_are_refused_with_their_reason(tmp_path, issuer_data, issuer):
    for name, db_uuid, code, reason in register_ineligible(issuer_data, INELIGIBLE, UUID, CODE):
        state_dir = tmp_path / name
        pair(state_dir, issuer.url, db_uuid, code)
        details = error_details(check(state_dir), codes.LOAD_REQUEST_NO_RESULT, reason)
        assert details == [f"refused: {reason}: {codes.REFUSALS[reason].meaning}"], name
        assert not (state_dir / CERT_FILE).exists() and not (state_dir / KEY_FILE).exists(), name
    certificates, requests_seen = issuer_list(issuer_data)
    assert certificates == []
    assert [row[3] for row in requests_seen] == [case[3] for case in INELIGIBLE.values()], requests_seen


# === ERR_IOT_HTTPS_CHECK_CERT_READ_EXCEPTION ===


UNREADABLE_CERTIFICATES = {
    # case: (file content, or None for a directory; exception named in the detail line)
    "garbage": ("this is not a certificate\n", "ValueError"),
    "empty": ("", "ValueError"),
    "bad-pem-body": (
        "-----BEGIN CERTIFICATE-----\nTm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        "ValueError",
    ),
    # Run as root, chmod 000 would not stop reads: a directory in the certificate's place does.
    "directory": (None, "IsADirectoryError"),
}


def test_unreadable_certificate_is_cert_read_exception(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    for name, (content, reason) in UNREADABLE_CERTIFICATES.items():
        state_dir = tmp_path / name
        pair(state_dir, issuer.url)
        cert_path = state_dir / CERT_FILE
        if content is None:
            cert_path.mkdir()
        else:
            cert_path.write_text(content)
        details = error_details(check(state_dir), codes.CHECK_CERT_READ_EXCEPTION)
        assert len(details) == 1, (name, details)
        assert details[0].startswith(f"{cert_path}: {reason}"), (name, details)
        if content is not None:
            assert cert_path.read_text() == content, f"{name}: the unreadable file is left for the user to look at"
    assert issuer_list(issuer_data) == ([], []), "a box that cannot read its certificate asks for no new one"


def test_certificate_without_common_name_does_not_crash(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    certificate, _key = self_signed(None, keys.utcnow() + datetime.timedelta(days=30))
    write_certificate(state_dir / CERT_FILE, certificate)
    result = check(state_dir)
    assert "Traceback" not in result.stdout + result.stderr, (
        "BUG box_client/box.py Box.check: a certificate without a subject CN (keys.common_name() -> None) "
        "is neither refreshed nor reported: _needs_refresh lets it through, then "
        "profile.box_hostname(ip, None) raises AttributeError ('NoneType' object has no attribute "
        f"'lstrip') and the box shows a traceback:\n{result.stderr}"
    )
    first = output_lines(result)[0]
    assert first == codes.CHECK_CERT_READ_EXCEPTION or first.startswith("OK *."), result.stdout


# === OK ===


def test_ok_installs_leaf_and_intermediate_with_a_private_key(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    result = check(state_dir)
    leaf, chain_pem, key_pem = installed(state_dir)
    subject = expected_subject(issuer_data, UUID)
    assert keys.common_name(leaf) == subject
    assert_ok(result, leaf)
    assert re.fullmatch(rf"OK \S+ valid from {TIME} until {TIME} https://10-0-0-5\.[a-z2-7]{{16}}\.iot\.example\.com",
                        output_lines(result)[0])  # fmt: skip

    # Files: the key private to the box's user, the chain readable by nginx.
    assert (state_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert (state_dir / CERT_FILE).stat().st_mode & 0o777 == 0o644
    assert spki(keys.load_private_key_pem(key_pem).public_key()) == spki(leaf.public_key())

    # The chain: leaf, then the issuing CA, never the root.
    blocks = pem_blocks(chain_pem)
    assert len(blocks) == 2, chain_pem
    intermediate = x509.load_pem_x509_certificate(blocks[1].encode())
    issuing_der = get(issuer, profile.ISSUING_PATH).content
    assert intermediate.public_bytes(serialization.Encoding.DER) == issuing_der
    assert leaf.issuer == intermediate.subject
    intermediate.public_key().verify(
        leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm)
    )
    root = x509.load_pem_x509_certificate(get(issuer, profile.ROOT_PATH).content)
    assert all(x509.load_pem_x509_certificate(block.encode()) != root for block in blocks)
    assert intermediate.issuer == root.subject

    findings, returncode = pkilint_findings(chain_pem, tmp_path)
    assert findings == [] and returncode == 0, findings

    certificates, _requests = issuer_list(issuer_data)
    assert [(row[1], row[2], row[3], row[-1]) for row in certificates] == [("valid", "legacy", subject, f"db={UUID}")]


def test_second_check_keeps_the_certificate_and_asks_nothing(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    first = check(state_dir)
    leaf, chain_pem, key_pem = installed(state_dir)
    assert_ok(first, leaf)
    certificates, requests_seen = issuer_list(issuer_data)
    assert len(certificates) == 1 and len(requests_seen) == 1
    second = check(state_dir)
    assert_ok(second, leaf)
    assert second.stdout == first.stdout
    assert installed(state_dir) == (leaf, chain_pem, key_pem)
    assert issuer_list(issuer_data) == (certificates, requests_seen), "the second check asked the issuer again"


# === REFRESH ===


EXISTING_CERTIFICATES = {
    # case: (subject CN, days of validity left, replaced by the check)
    "temporary": (TEMPORARY_CN, 365, True),
    "5-days-left": ("*.expiring.iot.example.com", 5, True),
    "9-days-left": ("*.expiring.iot.example.com", 9, True),
    "expired": ("*.expired.iot.example.com", -1, True),
    "11-days-left": ("*.kept.iot.example.com", 11, False),
    "30-days-left": ("*.kept.iot.example.com", 30, False),
}


def test_refresh_of_an_existing_certificate(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    issued = 0
    for name, (common_name, days_left, refreshed) in EXISTING_CERTIFICATES.items():
        state_dir = tmp_path / name
        pair(state_dir, issuer.url)
        old, old_key = self_signed(
            common_name,
            keys.utcnow() + datetime.timedelta(days=days_left),
            not_before=keys.utcnow() - datetime.timedelta(days=60),
        )
        write_certificate(state_dir / CERT_FILE, old)
        (state_dir / KEY_FILE).write_text(keys.private_key_pem(old_key))
        old_files = installed(state_dir)
        result = check(state_dir)
        leaf, chain_pem, key_pem = installed(state_dir)
        assert_ok(result, leaf)
        if refreshed:
            issued += 1
            assert keys.common_name(leaf) == expected_subject(issuer_data, UUID), name
            assert len(pem_blocks(chain_pem)) == 2 and key_pem != old_files[2], name
        else:
            assert (leaf, chain_pem, key_pem) == old_files, f"{name}: more than 10 days left, the certificate is kept"
            assert output_lines(result)[0].endswith(f" https://10-0-0-5.{common_name[2:]}"), name
        certificates, requests_seen = issuer_list(issuer_data)
        assert len(certificates) == len(requests_seen) == issued, f"{name}: {requests_seen}"


def test_subscription_line_added_after_connecting_the_box(tmp_path, issuer_data, issuer):
    # Documentation: "The IoT box subscription was added after connecting the IoT system to the
    # database. In this case, refresh the IoT system's homepage" - no issuer restart needed.
    register(issuer_data, UUID, CODE, line=False)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    details = error_details(check(state_dir), codes.LOAD_REQUEST_NO_RESULT, codes.NO_IOT_BOX_LINE)
    assert details == [f"refused: {codes.NO_IOT_BOX_LINE}: {codes.REFUSALS[codes.NO_IOT_BOX_LINE].meaning}"]

    register(issuer_data, UUID, CODE, line=True)
    result = check(state_dir)
    leaf = installed(state_dir)[0]
    assert_ok(result, leaf)
    assert keys.common_name(leaf) == expected_subject(issuer_data, UUID)
    assert issuer.process.poll() is None, "the issuer was not restarted"
    assert len(re.findall(r"serving https?://", issuer.log())) == 1
    _certificates, requests_seen = issuer_list(issuer_data)
    assert [row[3] for row in requests_seen] == [codes.NO_IOT_BOX_LINE, "issued"]


# === CSR MODE ===


def _pem_body(pem):
    return "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))


def test_csr_mode_keeps_the_key_on_the_box(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    result = pair(state_dir, issuer.url, UUID, CODE, "--csr")
    assert "mode: csr (key made on the box)" in result.stdout.splitlines()
    check_result = check(state_dir)
    leaf, chain_pem, key_pem = installed(state_dir)
    assert_ok(check_result, leaf)
    assert keys.common_name(leaf) == expected_subject(issuer_data, UUID)
    assert len(pem_blocks(chain_pem)) == 2
    private_key = keys.load_private_key_pem(key_pem)
    assert spki(private_key.public_key()) == spki(leaf.public_key())
    assert keys.describe_key(leaf.public_key()) == "P-256"
    assert (state_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600
    certificates, _requests = issuer_list(issuer_data)
    assert [row[2] for row in certificates] == ["csr"]

    # The issuer never saw the key: not in its log, its registry (with its WAL) or anywhere in its folder.
    body = _pem_body(key_pem)
    der = private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    secret = private_key.private_numbers().private_value.to_bytes(32, "big")
    assert list(issuer_data.glob("issuer.sqlite3*")), "no registry file to look into"
    for path in [issuer.log_path, *(p for p in issuer_data.rglob("*") if p.is_file())]:
        data = path.read_bytes()
        for needle in (body.encode(), body[:64].encode(), der, secret):
            assert needle not in data, f"the box's private key is in {path}"


def test_csr_answer_carries_no_private_key(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    private_key = keys.generate_key("p256")
    csr_pem = keys.make_csr(private_key).public_bytes(serialization.Encoding.PEM).decode()
    response = issuer.request_certificate(UUID, CODE, csr_pem=csr_pem)
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert set(result) == {"x509_pem", "subject_cn"}, result
    assert "PRIVATE KEY" not in response.text
    leaf = x509.load_pem_x509_certificate(first_pem(result["x509_pem"]).encode())
    assert spki(leaf.public_key()) == spki(private_key.public_key())
    assert result["subject_cn"] == keys.common_name(leaf) == expected_subject(issuer_data, UUID)
    # Legacy mode, for contrast: the stock box needs the key in the answer.
    legacy = issuer.request_certificate(UUID, CODE).json()["result"]
    assert set(legacy) == {"x509_pem", "subject_cn", "private_key_pem"}


# === PAIRING AND USAGE ERRORS ===


def test_pairing_string_sets_everything(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    result = configure(state_dir, "--pairing", f" {issuer.url}/ | pairing-token | {UUID} | {CODE} ", "--ip", IP)
    assert output_lines(result) == [
        f"server: {issuer.url}",
        f"issuer: {issuer.url}",
        f"db_uuid: {UUID}",
        f"enterprise_code: {CODE[:4]}...",
        f"ip: {IP}",
        "mode: legacy (key made by the issuer)",
    ]
    assert CODE not in result.stdout, "configure prints the whole enterprise code"
    assert (state_dir / "box.json").stat().st_mode & 0o777 == 0o600
    stored = json.loads((state_dir / "box.json").read_text())
    assert (stored["server"], stored["token"], stored["db_uuid"], stored["enterprise_code"]) == (
        issuer.url, "pairing-token", UUID, CODE,
    )  # fmt: skip
    check_result = check(state_dir)
    assert_ok(check_result, installed(state_dir)[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--pairing", "http://db.example.com|token|uuid"),
            "the pairing string must be URL|TOKEN|DB_UUID|ENTERPRISE_CODE",
        ),
        (("--pairing", "http://db.example.com|token|uuid|code|extra"), "the pairing string must be"),
        (("--pairing", "http://db.example.com|token||code"), "the pairing string must be"),
        (("--pairing", "db.example.com|token|uuid|code"), "'db.example.com' is not an http(s) URL"),
        (("--ip", "999.1.1.1"), "'999.1.1.1' is not an IPv4 address"),
        (("--ip", "10.0.0"), "'10.0.0' is not an IPv4 address"),
        (("--server", "ftp://db.example.com"), "is not an http(s) URL"),
    ],
    ids=["3-parts", "5-parts", "empty-part", "pairing-url", "ip-999", "ip-short", "server-scheme"],
)
def test_bad_configure_arguments_are_usage_errors(tmp_path, args, message):
    state_dir = tmp_path / "box"
    result = box(state_dir, "configure", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.stderr.startswith("usage: python -m box_client"), result.stderr
    assert message in result.stderr, result.stderr
    assert not (state_dir / "box.json").exists(), "a refused configure wrote the configuration"


# === HTTPS ISSUER ===


@pytest.fixture
def https_issuer(tmp_path, issuer_data, start_issuer):
    """The mock issuer serving HTTPS with a self-signed certificate for 127.0.0.1; :return: (issuer, cert path)."""
    certificate, key = self_signed("mock issuer", keys.utcnow() + datetime.timedelta(days=2), ip_san="127.0.0.1")
    cert_path = tmp_path / "issuer-tls.crt"
    key_path = tmp_path / "issuer-tls.key"
    write_certificate(cert_path, certificate)
    key_path.write_text(keys.private_key_pem(key))
    os.chmod(key_path, 0o600)
    register(issuer_data, UUID, CODE)
    process = start_issuer(issuer_data, "--tls-cert", str(cert_path), "--tls-key", str(key_path))
    assert process.url.startswith("https://127.0.0.1:")
    return process, cert_path


def test_https_issuer_not_trusted_is_request_exception(tmp_path, issuer_data, https_issuer):
    issuer, _cert_path = https_issuer
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    details = error_details(check(state_dir), codes.LOAD_REQUEST_EXCEPTION)
    exceptions = [line for line in details if line]
    assert len(exceptions) == 1, details
    assert exceptions[0].startswith(f"POST {issuer.url}{profile.X509_PATH}: "), exceptions
    assert "CERTIFICATE_VERIFY_FAILED" in exceptions[0], exceptions
    assert issuer_list(issuer_data) == ([], []), "the request went through an unverified connection"
    assert not (state_dir / CERT_FILE).exists()


def test_https_issuer_not_trusted_with_empty_ca_bundle_variables(tmp_path, issuer_data, https_issuer):
    # An empty REQUESTS_CA_BUNDLE (a shell's `export REQUESTS_CA_BUNDLE=`) must not turn verification off.
    issuer, _cert_path = https_issuer
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    result = check(state_dir, env={"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": ""})
    assert not result.stdout.startswith("OK "), (
        "BUG box_client/box.py _session/load_certificate: with requests 2.25.1 (Odoo 17's pin), "
        "Session.merge_environment_settings turns an empty $REQUESTS_CA_BUNDLE/$CURL_CA_BUNDLE into "
        'verify="", i.e. CERT_NONE: the box took a certificate from an https issuer it does not trust '
        "(InsecureRequestWarning). Give requests an explicit CA path (the configured bundle, else "
        "requests.utils.DEFAULT_CA_BUNDLE_PATH) as `verify=` on the call. "
        f"Output:\n{result.stdout}{result.stderr}"
    )
    details = error_details(result, codes.LOAD_REQUEST_EXCEPTION)
    assert "CERTIFICATE_VERIFY_FAILED" in " ".join(details), details
    assert issuer_list(issuer_data) == ([], [])


def test_https_issuer_trusted_through_ca_bundle(tmp_path, issuer_data, https_issuer):
    issuer, cert_path = https_issuer
    state_dir = tmp_path / "box"
    result = pair(state_dir, issuer.url, UUID, CODE, "--ca-bundle", str(cert_path))
    assert f"issuer: {issuer.url}" in result.stdout.splitlines()
    # Machines often set REQUESTS_CA_BUNDLE to the system store (this one does, so will CI's):
    # the bundle configured on the box must still be the one used for the issuer.
    unrelated, _key = self_signed("unrelated CA", keys.utcnow() + datetime.timedelta(days=2))
    system_like_bundle = tmp_path / "system-bundle.pem"
    write_certificate(system_like_bundle, unrelated)
    env = {"REQUESTS_CA_BUNDLE": str(system_like_bundle), "CURL_CA_BUNDLE": str(system_like_bundle)}
    check_result = check(state_dir, env=env)
    assert check_result.stdout.startswith("OK "), (
        "BUG box_client/box.py _session: the configured CA bundle is set as `session.verify`, which "
        "requests (2.25.1 and current) overrides with $REQUESTS_CA_BUNDLE / $CURL_CA_BUNDLE in "
        "Session.merge_environment_settings, so `configure --ca-bundle` is ignored on any machine that sets "
        "them (Debian/Ubuntu images, this one, CI). Pass verify=config.ca_bundle to session.post() instead. "
        f"Output:\n{check_result.stdout}{check_result.stderr}"
    )
    leaf = installed(state_dir)[0]
    assert_ok(check_result, leaf)
    assert keys.common_name(leaf) == expected_subject(issuer_data, UUID)
