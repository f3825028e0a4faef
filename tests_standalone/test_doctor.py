"""``python -m box_client --state-dir DIR doctor``: the real box client process against the real
mock issuer, a DNS server and a TLS server run here on 127.0.0.1, reproducing each case of the
troubleshooting section of the documentation page "HTTPS certificate (IoT)".

Every doctor run prints one line per check, in a fixed order:
``PASS|FAIL|WARN|SKIP <check>: <what was found> — <what to do>``; exit 0 only when all pass.
The box's address is 127.0.0.1 in every test, so nothing leaves the loopback interface.
"""

import datetime
import http.server
import json
import re
import socket
import threading
import time
from pathlib import Path

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import requests
from conftest import (
    INELIGIBLE,
    box,
    expected_subject,
    issuer_list,
    mock_issuer,
    register,
    register_ineligible,
    wrong_credentials,
)
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from box_client import doctor as doctor_module
from iot_pki import codes, keys, profile
from testkit.tls import closed_port, self_signed

CHECKS = ["server", "credentials", "issuer-reachable", "issuer-answer", "certificate", "dns", "tls"]
UUID = "4b0f2c1e-7d3a-4e5f-9a8b-1c2d3e4f5a6b"
CODE = "M2411DOCTOR"
IP = "127.0.0.1"
CERT_FILE = "nginx-cert.crt"
KEY_FILE = "nginx-cert.key"
LINE = re.compile(r"(PASS|FAIL|WARN|SKIP) ([a-z-]+): (.+)")


# === HELPERS ===


def run_doctor(state_dir, *args):
    """Run the doctor; :return: {check: (status, text)} after checking the output's shape and exit code."""
    result = box(state_dir, "doctor", *args)
    assert "Traceback" not in result.stdout + result.stderr, result.stdout + result.stderr
    assert result.stderr == "", result.stderr
    matches = [LINE.fullmatch(line) for line in result.stdout.splitlines()]
    assert all(matches), result.stdout
    assert [m.group(2) for m in matches] == CHECKS, result.stdout
    report = {m.group(2): (m.group(1), m.group(3)) for m in matches}
    all_pass = all(status == "PASS" for status, _text in report.values())
    assert result.returncode == (0 if all_pass else 1), result.stdout
    return report


def statuses(report):
    return [status for status, _text in report.values()]


def found_and_todo(report, check):
    """(what was found, what to do) of one check's line."""
    found, _dash, todo = report[check][1].partition(" — ")
    return found, todo


def configure(state_dir, *args):
    result = box(state_dir, "configure", *args)
    assert result.returncode == 0, result.stdout + result.stderr


def pair(state_dir, issuer_url, db_uuid=UUID, code=CODE):
    configure(state_dir, "--server", issuer_url, "--db-uuid", db_uuid, "--enterprise-code", code, "--ip", IP)


def snapshot(state_dir):
    """Every file of the box's folder with its content, mode and modification time."""
    return {
        path: (path.read_bytes(), path.stat().st_mode, path.stat().st_mtime_ns)
        for path in sorted(Path(state_dir).rglob("*"))
        if path.is_file()
    }


def root(common_name, days=2, not_before=None, dns_name=None):
    """A self-signed CA certificate valid for ``days`` from now, and its key."""
    not_after = keys.utcnow() + datetime.timedelta(days=days)
    return self_signed(common_name, not_after, not_before, dns_name=dns_name, ca=True)


def write_pem(path, certificate, key=None):
    Path(path).write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    if key is not None:
        Path(str(path) + ".key").write_text(keys.private_key_pem(key))
    return path


class DnsServer:
    """A UDP DNS responder on 127.0.0.1 written with dnspython's message API: A records from
    ``records`` (name -> address), an empty answer for other types of those names, NXDOMAIN
    for every other name. Bounded: it stops after 60 s or 500 queries, or at ``stop()``."""

    def __init__(self):
        self.records = {}
        self.queries = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline and len(self.queries) < 500:
            try:
                data, peer = self.sock.recvfrom(4096)
                query = dns.message.from_wire(data)
            except (TimeoutError, dns.exception.DNSException):
                continue
            question = query.question[0]
            name = question.name.to_text(omit_final_dot=True).lower()
            self.queries.append((name, dns.rdatatype.to_text(question.rdtype)))
            response = dns.message.make_response(query)
            if name not in self.records:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.A:
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", self.records[name]))
            self.sock.sendto(response.to_wire(), peer)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def dns_server():
    server = DnsServer()
    yield server
    server.stop()


@pytest.fixture
def certified_box(tmp_path, issuer_data, issuer):
    """A box paired with the running issuer at 127.0.0.1 that got its certificate with ``check``;
    :return: (state dir, its HTTPS name)."""
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    result = box(state_dir, "check")
    assert result.returncode == 0 and result.stdout.startswith("OK "), result.stdout
    return state_dir, profile.box_hostname(IP, expected_subject(issuer_data, UUID))


# === SERVER, CREDENTIALS ===


def test_nothing_configured_is_no_server(tmp_path):
    state_dir = tmp_path / "box"
    report = run_doctor(state_dir)
    assert statuses(report) == ["FAIL", "FAIL", "SKIP", "SKIP", "FAIL", "SKIP", "SKIP"], report
    entry = codes.BOX_ERRORS[codes.CHECK_NO_SERVER]
    found, todo = found_and_todo(report, "server")
    assert found.startswith(f"{codes.CHECK_NO_SERVER}: ") and entry.meaning in found, found
    assert todo.startswith(entry.fix) and "configure --pairing 'URL|TOKEN|UUID|CODE'" in todo, todo
    assert report["issuer-reachable"][1] == "no issuer: the box has no server (see server)"
    assert report["certificate"][1].startswith(f"no certificate at {state_dir / CERT_FILE} — fix the failures above")
    assert report["dns"][1].startswith("the box has no HTTPS name yet")
    assert not state_dir.exists(), "the doctor created the box's folder"


def test_unreadable_configuration_skips_what_needs_it(tmp_path):
    state_dir = tmp_path / "box"
    state_dir.mkdir()
    (state_dir / "box.json").write_text("{truncated")
    report = run_doctor(state_dir)
    assert statuses(report) == ["FAIL", "SKIP", "SKIP", "SKIP", "FAIL", "SKIP", "SKIP"], report
    assert report["server"][1].startswith(f"{codes.CHECK_NO_SERVER}: {state_dir / 'box.json'} is unreadable: ")
    for check in ("credentials", "issuer-reachable", "dns"):
        assert report[check][1] == "the box's configuration is unreadable (see server)", report[check]


def test_missing_credentials_ask_nothing(tmp_path, issuer_data, issuer):
    state_dir = tmp_path / "box"
    configure(state_dir, "--server", issuer.url, "--db-uuid", UUID, "--ip", IP)
    report = run_doctor(state_dir)
    assert statuses(report) == ["PASS", "FAIL", "SKIP", "SKIP", "FAIL", "SKIP", "SKIP"], report
    assert report["server"][1] == f"connected to {issuer.url}"
    entry = codes.BOX_ERRORS[codes.LOAD_NO_CREDENTIAL]
    found, todo = found_and_todo(report, "credentials")
    assert found == f"{codes.LOAD_NO_CREDENTIAL}: no enterprise code on the box. {entry.meaning}", found
    assert todo.startswith(entry.fix), todo
    assert report["issuer-reachable"][1] == "a box asks the issuer only with both credentials (see credentials)"
    assert issuer_list(issuer_data) == ([], []), "the doctor asked the issuer without credentials"


# === ISSUER: REACHABLE, HTTP STATUS ===


def test_issuer_unreachable_gives_the_documented_causes(tmp_path):
    state_dir = tmp_path / "box"
    url = f"http://127.0.0.1:{closed_port()}"
    pair(state_dir, url)
    report = run_doctor(state_dir)
    assert statuses(report)[:4] == ["PASS", "PASS", "FAIL", "SKIP"], report
    entry = codes.BOX_ERRORS[codes.LOAD_REQUEST_EXCEPTION]
    found, todo = found_and_todo(report, "issuer-reachable")
    assert found.startswith(
        f"{codes.LOAD_REQUEST_EXCEPTION}: POST {url}{profile.X509_PATH}: [Errno 111] Connection refused"
    )
    # The documented causes: no network access, a firewall, a VPN or a proxy.
    assert found.endswith(entry.meaning) and all(cause in found for cause in ("no network", "firewall", "VPN", "proxy"))
    assert todo == entry.fix
    assert report["issuer-answer"][1] == "the issuer was not asked (see issuer-reachable)"


def test_wrong_issuer_path_is_status_404(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    configure(state_dir, "--issuer", issuer.url + "/wrong-prefix")
    report = run_doctor(state_dir)
    assert statuses(report)[:4] == ["PASS", "PASS", "PASS", "FAIL"], report
    assert re.fullmatch(
        rf"POST {issuer.url}/wrong-prefix{profile.X509_PATH} answered HTTP 404 in \d+\.\d\d s",
        report["issuer-reachable"][1],
    )
    found, todo = found_and_todo(report, "issuer-answer")
    assert found == (
        f"{codes.LOAD_REQUEST_STATUS} 404: Not Found: nothing at /wrong-prefix{profile.X509_PATH}; "
        "the issuer URL is wrong"
    ), found
    assert "configure --issuer URL" in todo, todo


def test_too_many_failed_attempts_is_status_429_with_retry_after(tmp_path, start_issuer):
    data_dir = tmp_path / "strict-issuer"
    init = mock_issuer(data_dir, "init", "--zone", "iot.example.com", "--public-url", "http://pki.example.com",
                       "--client-rate-limit", "1/600")  # fmt: skip
    assert init.returncode == 0, init.stderr
    issuer = start_issuer(data_dir)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url, code="M2411GUESS")
    first = run_doctor(state_dir)
    assert first["issuer-answer"][1].startswith(f"{codes.LOAD_REQUEST_NO_RESULT}: refused (no reason given)")
    found, todo = found_and_todo(run_doctor(state_dir), "issuer-answer")
    retry = re.fullmatch(
        rf"{codes.LOAD_REQUEST_STATUS} 429: Too Many Requests: too many failed attempts, retry after (\d+) s", found
    )
    assert retry and 500 < int(retry.group(1)) <= 600, found
    assert todo.startswith(f"wait {retry.group(1)} s, then run doctor again"), todo


def test_issuer_down_is_status_5xx(tmp_path):
    class Down(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Down)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        state_dir = tmp_path / "box"
        pair(state_dir, f"http://127.0.0.1:{server.server_port}")
        report = run_doctor(state_dir)
    finally:
        server.shutdown()
        server.server_close()
    found, todo = found_and_todo(report, "issuer-answer")
    assert found == f"{codes.LOAD_REQUEST_STATUS} 503: Service Unavailable; the issuer is down or failing", found
    assert "down for maintenance" in todo and "quoting the status 503" in todo, todo


def test_https_issuer_not_trusted_says_how_to_trust_it(tmp_path, issuer_data, start_issuer):
    certificate, key = root("mock issuer", dns_name="localhost")
    cert_path = write_pem(tmp_path / "issuer-tls.pem", certificate, key)
    issuer = start_issuer(issuer_data, "--tls-cert", str(cert_path), "--tls-key", str(cert_path) + ".key")
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    found, todo = found_and_todo(run_doctor(state_dir), "issuer-reachable")
    assert found.startswith(
        f"{codes.LOAD_REQUEST_EXCEPTION}: POST {issuer.url}{profile.X509_PATH}: "
        "CERTIFICATE_VERIFY_FAILED] certificate verify failed: "
    ), found
    assert todo.startswith(
        "the issuer's TLS certificate is not trusted: give its CA with "
        f"`python -m box_client --state-dir {state_dir} configure --ca-bundle FILE`."
    ), todo
    assert issuer_list(issuer_data) == ([], [])


# === ISSUER: THE ANSWER ===


REFUSED = {name: INELIGIBLE[name] for name in ("no-iot-box-line", "paused", "staging")}


def test_each_refusal_shows_its_reason_and_fix(tmp_path, issuer_data, issuer):
    for name, db_uuid, code, reason in register_ineligible(issuer_data, REFUSED, UUID, CODE):
        state_dir = tmp_path / name
        pair(state_dir, issuer.url, db_uuid, code)
        before = snapshot(state_dir)
        report = run_doctor(state_dir)
        assert statuses(report) == ["PASS", "PASS", "PASS", "FAIL", "FAIL", "SKIP", "SKIP"], (name, report)
        entry = codes.REFUSALS[reason]
        assert report["issuer-answer"][1] == (
            f"{codes.LOAD_REQUEST_NO_RESULT}: refused: {reason}: {entry.meaning} — {entry.fix}"
        ), name
        assert snapshot(state_dir) == before, f"{name}: the doctor changed the box's folder"
    _certificates, requests_seen = issuer_list(issuer_data)
    assert [row[3] for row in requests_seen] == [case[3] for case in REFUSED.values()], requests_seen


@pytest.fixture
def issuer_ignoring_csrs(issuer):
    """An issuer that answers every request as a stock box's (the CSR dropped on the way to the
    mock issuer): the certificate comes with a key the issuer made."""

    class DropsTheCsr(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            body["params"].pop("csr_pem", None)
            answer = requests.post(issuer.url + self.path, json=body, timeout=30)
            self.send_response(answer.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer.content)))
            self.end_headers()
            self.wfile.write(answer.content)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), DropsTheCsr)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_issuer_ignoring_the_csr_passes_a_legacy_box_and_fails_a_csr_box(tmp_path, issuer_data, issuer_ignoring_csrs):
    register(issuer_data, UUID, CODE)
    legacy, csr = tmp_path / "legacy", tmp_path / "csr"
    pair(legacy, issuer_ignoring_csrs)
    pair(csr, issuer_ignoring_csrs)
    configure(csr, "--csr")

    status, found = run_doctor(legacy)["issuer-answer"][:2]
    assert status == "PASS", found
    assert found.endswith("(the issuer ignored the CSR and made the key; it was thrown away; nothing installed)"), found

    status, found = run_doctor(csr)["issuer-answer"][:2]
    assert status == "FAIL"
    assert found.startswith(f"{codes.LOAD_REQUEST_NO_RESULT}: the certificate does not match the key. "), found
    # What the box itself shows, asking the same issuer.
    checked = box(csr, "check")
    assert checked.returncode == 1
    assert checked.stdout.splitlines()[:2] == [codes.LOAD_REQUEST_NO_RESULT, "the certificate does not match the key"]
    assert not (csr / CERT_FILE).exists() and not (legacy / CERT_FILE).exists()


def test_unknown_credentials_get_the_generic_meaning(tmp_path, issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    entry = codes.BOX_ERRORS[codes.LOAD_REQUEST_NO_RESULT]
    lines = []
    for name, db_uuid, code in wrong_credentials(UUID, CODE):
        state_dir = tmp_path / name
        pair(state_dir, issuer.url, db_uuid, code)
        report = run_doctor(state_dir)
        assert report["issuer-answer"] == (
            "FAIL",
            f"{codes.LOAD_REQUEST_NO_RESULT}: refused (no reason given). {entry.meaning} — {entry.fix}",
        ), name
        assert not any(reason in report["issuer-answer"][1] for reason in codes.REFUSALS), name
        lines.append(report["issuer-answer"])
    assert lines[0] == lines[1], "an unknown UUID and a wrong code must look the same"


def test_eligible_without_certificate_says_run_check_and_installs_nothing(tmp_path, issuer_data, issuer, dns_server):
    register(issuer_data, UUID, CODE)
    state_dir = tmp_path / "box"
    pair(state_dir, issuer.url)
    subject = expected_subject(issuer_data, UUID)
    name = profile.box_hostname(IP, subject)
    dns_server.records[name] = IP
    before = snapshot(state_dir)
    report = run_doctor(state_dir, "--dns", dns_server.address)
    assert statuses(report) == ["PASS", "PASS", "PASS", "PASS", "FAIL", "PASS", "SKIP"], report
    assert report["issuer-answer"][1] == (
        f"eligible: the issuer issued a certificate for {subject} (CSR mode with a throwaway key; nothing installed)"
    )
    assert report["certificate"][1] == (
        f"no certificate at {state_dir / CERT_FILE} — run `python -m box_client --state-dir {state_dir} check`: "
        "it gets the certificate and installs it"
    )
    # The name is known from the issuer's answer: DNS can be checked before the certificate is installed.
    assert report["dns"][1] == f"{name} resolves to {IP}, the box's address (DNS server {dns_server.address})"
    assert report["tls"][1] == "no certificate installed on the box (see certificate)"
    assert snapshot(state_dir) == before, "the doctor changed the box's folder"
    certificates, _requests = issuer_list(issuer_data)
    assert [(row[2], row[3]) for row in certificates] == [("csr", subject)], "the doctor must ask in CSR mode"


# === CERTIFICATE ===


def test_certificate_states(tmp_path, issuer_data, issuer, dns_server):
    register(issuer_data, UUID, CODE)
    subject = expected_subject(issuer_data, UUID)
    now = keys.utcnow()
    cases = {
        # case: (certificate CN, days left, not before; status, start of the line)
        "temporary": ("OdooTempIoTBoxCertificate", 365, None, "FAIL", "{cert} is the temporary self-signed"),
        "expired": (subject, -1, now - datetime.timedelta(days=90), "FAIL", f"{subject} expired on "),
        "clock-behind": (subject, 90, now + datetime.timedelta(days=1), "FAIL", f"{subject} is valid only from "),
        "5-days-left": (subject, 5, None, "WARN", f"{subject} valid from "),
        "other-database": ("*.otherlabel.iot.example.com", 60, None, "WARN", "*.otherlabel.iot.example.com valid"),
    }
    lines = {}
    for name, (common_name, days, not_before, status, start) in cases.items():
        state_dir = tmp_path / name
        pair(state_dir, issuer.url)
        certificate, key = root(common_name, days, not_before)
        write_pem(state_dir / CERT_FILE, certificate)
        (state_dir / KEY_FILE).write_text(keys.private_key_pem(key))
        report = run_doctor(state_dir, "--dns", dns_server.address, "--port", closed_port())
        assert report["certificate"][0] == status, (name, report["certificate"])
        assert report["certificate"][1].startswith(start.format(cert=state_dir / CERT_FILE)), (name, report)
        lines[name] = report["certificate"][1]
    assert lines["temporary"].endswith(f"— run `python -m box_client --state-dir {tmp_path / 'temporary'} check`: "
                                       "it gets the certificate and installs it")  # fmt: skip
    assert "renewal due since" in lines["5-days-left"], lines
    assert "the issuer now gives this database " + subject in lines["other-database"], lines
    assert "the box's clock is behind — set the box's clock (NTP)" in lines["clock-behind"], lines

    # Unreadable: the documented ERR_IOT_HTTPS_CHECK_CERT_READ_EXCEPTION, with its fix.
    state_dir = tmp_path / "unreadable"
    pair(state_dir, issuer.url)
    (state_dir / CERT_FILE).write_text("this is not a certificate\n")
    entry = codes.BOX_ERRORS[codes.CHECK_CERT_READ_EXCEPTION]
    found, todo = found_and_todo(run_doctor(state_dir, "--dns", dns_server.address), "certificate")
    assert found.startswith(f"{codes.CHECK_CERT_READ_EXCEPTION}: {state_dir / CERT_FILE}: ValueError") and (
        found.endswith(entry.meaning)
    ), found
    assert todo == entry.fix

    # A valid certificate with a key that is not its own: nginx could not serve it.
    state_dir = tmp_path / "wrong-key"
    pair(state_dir, issuer.url)
    certificate, _key = root(subject, 60)
    write_pem(state_dir / CERT_FILE, certificate)
    (state_dir / KEY_FILE).write_text(keys.private_key_pem(keys.generate_key("p256")))
    found, todo = found_and_todo(
        run_doctor(state_dir, "--dns", dns_server.address, "--port", closed_port()), "certificate"
    )
    assert found == f"{subject} is valid but the key {state_dir / KEY_FILE} does not match it", found
    assert todo.startswith(f"delete {state_dir / CERT_FILE}, then run"), todo


# === DNS: THE BOX'S HTTPS NAME ===


def test_dns_resolves_to_the_box(certified_box, dns_server):
    state_dir, name = certified_box
    dns_server.records[name] = IP
    report = run_doctor(state_dir, "--dns", dns_server.address, "--port", closed_port())
    assert statuses(report) == ["PASS", "PASS", "PASS", "PASS", "PASS", "PASS", "FAIL"], report
    assert report["dns"][1] == f"{name} resolves to {IP}, the box's address (DNS server {dns_server.address})"
    assert (name, "A") in dns_server.queries


def test_dns_nxdomain_is_the_documented_router_case(certified_box, dns_server):
    # A router with DNS rebinding protection answers NXDOMAIN for a public name with a private address.
    state_dir, name = certified_box
    report = run_doctor(state_dir, "--dns", dns_server.address, "--port", closed_port())
    assert report["dns"][0] == "FAIL", report
    found, todo = found_and_todo(report, "dns")
    assert found.startswith(f"{name} does not resolve (NXDOMAIN from DNS server {dns_server.address}): "), found
    assert "blocks public names that resolve to private addresses" in found, found
    assert "DNS_PROBE_FINISHED_NXDOMAIN" in found, found
    assert todo.startswith("if the router allows manual DNS, set it to Google DNS (8.8.8.8 and 8.8.4.4); if not, "), (
        todo
    )
    assert "on each device that uses the box" in todo, todo
    assert (name, "A") in dns_server.queries


def test_dns_resolving_elsewhere(certified_box, dns_server):
    state_dir, name = certified_box
    dns_server.records[name] = "127.0.0.2"
    found, todo = found_and_todo(run_doctor(state_dir, "--dns", dns_server.address, "--port", closed_port()), "dns")
    assert found == (
        f"{name} resolves to 127.0.0.2 (DNS server {dns_server.address}), not to the box's address {IP}: "
        "the name points elsewhere (a local DNS record or a DNS override on the router?)"
    ), found
    assert todo.startswith(f"remove the override so that the name resolves to {IP}"), todo


# === TLS: A BROWSER'S HANDSHAKE WITH THE BOX ===


def test_everything_passes_with_the_issuer_root(certified_box, dns_server, tls_servers, issuer):
    state_dir, name = certified_box
    dns_server.records[name] = IP
    nginx = tls_servers(state_dir / CERT_FILE, state_dir / KEY_FILE)
    before = snapshot(state_dir)
    leaf = x509.load_pem_x509_certificate((state_dir / CERT_FILE).read_bytes())
    not_before, not_after = fmt(keys.not_valid_before(leaf)), fmt(keys.not_valid_after(leaf))
    validity = f"{keys.common_name(leaf)} valid from {not_before} until {not_after}"

    # Default trust: the system store plus the root the issuer serves.
    report = run_doctor(state_dir, "--dns", dns_server.address, "--port", nginx.port)
    assert statuses(report) == ["PASS"] * 7, report
    assert re.fullmatch(
        rf"https://{re.escape(name)}:{nginx.port} verified \(TLSv1\.[23], trusting the system trust store and the "
        rf"issuer's root from {re.escape(issuer.url + profile.ROOT_PATH)}\): {re.escape(validity)}",
        report["tls"][1],
    ), report["tls"]

    # --ca-file: only that root.
    root_path = tmp_root(state_dir.parent, issuer)
    report = run_doctor(state_dir, "--dns", dns_server.address, "--port", nginx.port, "--ca-file", root_path)
    assert statuses(report) == ["PASS"] * 7, report
    assert f"trusting {root_path})" in report["tls"][1], report["tls"]
    assert nginx.handshakes == 2
    assert snapshot(state_dir) == before, "the doctor changed the box's folder"


def test_tls_fails_with_another_root_a_wrong_name_or_no_server(certified_box, dns_server, tls_servers, tmp_path):
    state_dir, name = certified_box
    dns_server.records[name] = IP
    nginx = tls_servers(state_dir / CERT_FILE, state_dir / KEY_FILE)
    other_root = write_pem(tmp_path / "other-root.pem", root("another root")[0])
    found, todo = found_and_todo(
        run_doctor(state_dir, "--dns", dns_server.address, "--port", nginx.port, "--ca-file", other_root), "tls"
    )
    assert found.startswith(f"the certificate served on {IP}:{nginx.port} for {name} does not verify: "), found
    assert "unable to get local issuer certificate" in found and f"(trusting {other_root})" in found, found
    assert todo.startswith("nginx must serve the whole chain"), todo

    # nginx serving a certificate for another name (trusted, so only the name is wrong).
    wrong, wrong_key = root("wrong.example.com", dns_name="wrong.example.com")
    wrong_path = write_pem(tmp_path / "wrong.pem", wrong, wrong_key)
    wrong_nginx = tls_servers(wrong_path, str(wrong_path) + ".key")
    found, todo = found_and_todo(
        run_doctor(state_dir, "--dns", dns_server.address, "--port", wrong_nginx.port, "--ca-file", wrong_path), "tls"
    )
    assert found.startswith(
        f"the certificate served on {IP}:{wrong_nginx.port} is not for {name} (Hostname mismatch"
    ), found
    assert todo.startswith("nginx must serve"), todo

    port = closed_port()
    found, todo = found_and_todo(run_doctor(state_dir, "--dns", dns_server.address, "--port", port), "tls")
    assert found == f"connection to {IP}:{port} refused: nothing serves HTTPS there", found
    assert todo.endswith("or give the right port with --port"), todo


def tmp_root(folder, issuer):
    """The issuer's root, as served at /odoo-enterprise/iot/ca.pem, in a file."""
    response = requests.get(issuer.url + profile.ROOT_PATH, timeout=30)
    assert response.status_code == 200, response.text
    path = Path(folder) / "issuer-root.pem"
    path.write_bytes(response.content)
    return path


def fmt(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# === UNITS ===


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("8.8.8.8", ("8.8.8.8", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        (" 1.1.1.1 ", ("1.1.1.1", 53)),
    ],
)
def test_dns_server_option(value, expected):
    assert doctor_module.parse_dns_server(value) == expected


@pytest.mark.parametrize("value", ["dns.google", "8.8.8.8:0", "8.8.8.8:70000", "[::1", "8.8.8.8:x", ""])
def test_bad_dns_server_option_is_a_usage_error(tmp_path, value):
    with pytest.raises(ValueError):
        doctor_module.parse_dns_server(value)
    result = box(tmp_path / "box", "doctor", "--dns", value)
    assert result.returncode == 2 and result.stderr.startswith("usage: python -m box_client"), result.stderr
    assert "Traceback" not in result.stderr


def test_system_resolver_outcomes(monkeypatch):
    def failing(errno):
        def getaddrinfo(*_args, **_kwargs):
            raise socket.gaierror(errno, "failed")

        return getaddrinfo

    monkeypatch.setattr(socket, "getaddrinfo", failing(socket.EAI_NONAME))
    assert doctor_module.resolve("10-0-0-5.label.iot.example.com") == ("nxdomain", None)
    monkeypatch.setattr(socket, "getaddrinfo", failing(socket.EAI_AGAIN))
    assert doctor_module.resolve("10-0-0-5.label.iot.example.com") == ("error", "failed")
    monkeypatch.setattr(
        socket, "getaddrinfo", lambda *_a, **_k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 0))]
    )
    assert doctor_module.resolve("10-0-0-5.label.iot.example.com") == ("addresses", ["10.0.0.5"])


def test_result_line_is_one_printable_line():
    result = doctor_module.Result("FAIL", "issuer-answer", "refused:\n\x1b[31mred\x1b[0m  text", "do\tthis")
    assert result.line == "FAIL issuer-answer: refused: [31mred [0m text — do this"
    assert doctor_module.Result("PASS", "server", "connected").line == "PASS server: connected"
