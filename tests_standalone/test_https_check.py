"""iot_pki.https_check: each outcome against a real TLS server on 127.0.0.1.

The server is Python's ssl serving a chain and key, as nginx does on a box; the certificates
come from iot_pki's own CertificateAuthority and profile (or are self-signed where a box would
serve something else). DNS answers come from a fake resolver passed as ``resolve``: the only
traffic is on the loopback interface.
"""

import dataclasses
import datetime
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest
from conftest import PUBLIC_URL, PUBLIC_ZONE, ROOT
from cryptography import x509

from iot_pki import https_check, keys, profile
from iot_pki.ca import CertificateAuthority, new_serial
from testkit.tls import closed_port, self_signed, write_chain

UUID = "5d6e7f80-1a2b-4c3d-8e9f-0a1b2c3d4e5f"
IP = "127.0.0.1"


# === FIXTURES ===


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def root_file(ca, tmp_path_factory):
    path = tmp_path_factory.mktemp("trust") / "root.pem"
    path.write_text(ca.root_pem)
    return str(path)


def issue(ca, days=90, shift=None):
    """A leaf of the profile for UUID, with its key and the chain nginx serves (leaf, issuing CA).

    :param shift: move the validity by this timedelta (signed without the lint: past or future)
    :return: (chain PEM, key, subject)
    """
    settings = profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL, validity_days=days)
    key = keys.generate_key("p256")
    template = profile.make_template(settings, ca, UUID, key.public_key(), new_serial())
    if shift is None:
        assert profile.lint_template(template, ca) == []
    else:
        template = dataclasses.replace(
            template, not_before=template.not_before + shift, not_after=template.not_after + shift
        )
    leaf = profile.sign_template(template, ca)
    return keys.certificate_pem(leaf) + ca.issuing_pem, key, template.subject_cn


def temporary_like(common_name):
    """What a stock box serves before its first certificate: a self-signed certificate (PEM), and its key."""
    certificate, key = self_signed(common_name, keys.utcnow() + datetime.timedelta(days=365))
    return keys.certificate_pem(certificate), key


@pytest.fixture
def serve(tmp_path, tls_servers):
    def start(chain_pem, key):
        folder = tempfile.mkdtemp(dir=tmp_path)
        return tls_servers(*write_chain(folder, chain_pem, keys.private_key_pem(key)))

    return start


def resolver(answers):
    """A ``getaddrinfo`` answering ``answers[host]``: an address, a list of them, or a gaierror errno."""
    asked = []

    def getaddrinfo(host, port, family=0, type=0, *_args):  # noqa: A002 - getaddrinfo's own names
        asked.append((host, family))
        answer = answers.get(host, socket.EAI_NONAME)
        if isinstance(answer, int):
            raise socket.gaierror(answer, f"fake resolver: error {answer}")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port or 0)) for address in answer]

    getaddrinfo.asked = asked
    return getaddrinfo


def check(*args, **kwargs):
    result = https_check.check_https(*args, **kwargs)
    assert result.message and (result.ok or result.fix), result
    assert_storable(result)
    return result


def placeholders(template):
    return set(re.findall(r"%\((\w+)\)s", template))


def assert_storable(result):
    """The addon stores the keys and the parameters (JSON) and renders the texts itself: the
    parameters are exactly what the two texts use, plain values that survive JSON."""
    used = placeholders(https_check.MESSAGES[result.message_key])
    used |= placeholders(https_check.FIXES[result.fix_key]) if result.fix_key else set()
    assert set(result.params) == used, result
    assert json.loads(json.dumps(result.params)) == result.params
    assert all(isinstance(value, (str, int, float)) for value in result.params.values()), result.params


def no_connection(address, *_args, **_kwargs):
    pytest.fail(f"{address} was contacted")


def host_of(subject, ip=IP):
    return profile.box_hostname(ip, subject)


# === FRAMEWORK-FREE ===


def test_texts_are_templates_a_translator_can_keep():
    """Named ``%(name)s`` placeholders only: a translation may reorder them, and nothing else in
    a text is read as a format directive."""
    for template in (*https_check.MESSAGES.values(), *https_check.FIXES.values(), *https_check.PHRASES):
        rest = re.sub(r"%\(\w+\)s", "", template)
        assert "%" not in rest and "{" not in rest, template
        assert https_check.render(template, dict.fromkeys(placeholders(template), "X")).count("%(") == 0


def test_core_check_imports_no_odoo():
    code = "import sys, iot_pki.https_check; assert 'odoo' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.stdout.strip() == "ok", result.stderr


# === VERIFIED ===


def test_ok_reads_the_served_validity(ca, root_file, serve):
    chain, key, subject = issue(ca)
    server = serve(chain, key)
    host = host_of(subject)
    fake = resolver({host: [IP]})
    result = check(host, server.port, cafile=root_file, resolve=fake)
    assert result.ok and result.code == "ok" and result.severity == "ok", result
    leaf = x509.load_pem_x509_certificate(chain.encode())
    assert (result.subject, result.not_before, result.not_after) == (
        subject,
        keys.not_valid_before(leaf),
        keys.not_valid_after(leaf),
    )
    assert result.address == IP and result.host == host and result.port == server.port
    assert result.tls_version in ("TLSv1.2", "TLSv1.3")
    assert x509.load_der_x509_certificate(result.served_der) == leaf
    assert result.message == (
        f"https://{host}:{server.port} verified ({result.tls_version}): {subject} valid from "
        f"{https_check.fmt(result.not_before)} until {https_check.fmt(result.not_after)}"
    )
    assert result.fix == ""
    assert fake.asked == [(host, socket.AF_INET)]
    assert server.wait_for_handshakes(1)


def test_address_given_skips_dns(ca, root_file, serve):
    chain, key, subject = issue(ca)
    server = serve(chain, key)
    fake = resolver({})
    result = check(host_of(subject, "10.0.0.5"), server.port, address=IP, cafile=root_file, resolve=fake)
    assert result.ok, result
    assert fake.asked == [], "with an address, the name is verified but not resolved"


def test_trust_rule_cafile_alone_or_system_store_plus_cadata(ca, root_file, serve, tmp_path):
    chain, key, subject = issue(ca)
    server = serve(chain, key)
    host = host_of(subject)
    fake = resolver({host: [IP]})
    # The system store alone does not know our root ...
    assert check(host, server.port, resolve=fake).code == https_check.VERIFY_FAILED
    # ... with our root added to it, it verifies.
    assert check(host, server.port, cadata=ca.root_pem, resolve=fake).ok
    # A CA file is the only trust: our root is not in another one, even with cadata.
    other = tmp_path / "other-root.pem"
    other.write_text(temporary_like("another root")[0])
    result = check(host, server.port, cafile=str(other), cadata=ca.root_pem, resolve=fake)
    assert result.code == https_check.VERIFY_FAILED, result


def test_expiring_soon_is_a_warning(ca, root_file, serve):
    chain, key, subject = issue(ca, days=5)
    server = serve(chain, key)
    host = host_of(subject)
    result = check(host, server.port, cafile=root_file, resolve=resolver({host: [IP]}))
    assert result.code == https_check.EXPIRING_SOON and not result.ok and result.severity == "warning", result
    assert result.message.startswith(f"https://{host}:{server.port} works, but {subject} expires on ")
    assert "(4 days left)" in result.message, result.message
    assert "restart it" in result.fix, result.fix


def test_expired(ca, root_file, serve):
    chain, key, subject = issue(ca, days=30, shift=-datetime.timedelta(days=40))
    server = serve(chain, key)
    host = host_of(subject)
    result = check(host, server.port, cafile=root_file, resolve=resolver({host: [IP]}))
    assert result.code == https_check.EXPIRED and result.severity == "error", result
    assert result.message == (
        f"the certificate served on {IP}:{server.port} expired on {https_check.fmt(result.not_after)}"
    )
    assert result.subject == subject and result.not_after < keys.utcnow()
    assert "renews its certificate" in result.fix


def test_not_yet_valid(ca, root_file, serve):
    chain, key, subject = issue(ca, days=30, shift=datetime.timedelta(days=2))
    server = serve(chain, key)
    host = host_of(subject)
    result = check(host, server.port, cafile=root_file, resolve=resolver({host: [IP]}))
    assert result.code == https_check.NOT_YET_VALID, result
    assert "is not valid yet (valid from " in result.message and "clock" in result.fix


def test_temporary_certificate(ca, root_file, serve):
    chain, key = temporary_like(https_check.TEMPORARY_CN)
    server = serve(chain, key)
    _chain, _key, subject = issue(ca)
    host = host_of(subject)
    result = check(host, server.port, cafile=root_file, resolve=resolver({host: [IP]}))
    assert result.code == https_check.TEMPORARY_CERTIFICATE and not result.ok, result
    assert result.message == (
        f"{IP}:{server.port} serves the temporary self-signed certificate OdooTempIoTBoxCertificate: "
        "the box has no certificate from the issuer yet"
    )
    assert result.subject == https_check.TEMPORARY_CN
    assert "eligible" in result.fix and "restart the box" in result.fix


def test_a_trusted_temporary_certificate_is_still_temporary():
    now = keys.utcnow()
    result = https_check.validity_outcome(
        https_check.TEMPORARY_CN, now, now + datetime.timedelta(days=365), host="h.example.com", port=443
    )
    assert result.code == https_check.TEMPORARY_CERTIFICATE


# === VERIFICATION FAILURES ===


def test_name_mismatch_says_which_name_is_served(ca, root_file, serve):
    chain, key, subject = issue(ca)
    server = serve(chain, key)
    host = f"127-0-0-1.otherlabel.{PUBLIC_ZONE}"
    result = check(host, server.port, cafile=root_file, resolve=resolver({host: [IP]}))
    assert result.code == https_check.NAME_MISMATCH, result
    assert result.message.startswith(f"the certificate served on {IP}:{server.port} is not for {host} (Hostname")
    assert result.message.endswith(f": it is for {subject}")
    assert result.fix.startswith(f"the box must serve the certificate of its own name {host}")


def test_untrusted_root_or_missing_chain(ca, root_file, serve, tmp_path):
    chain, key, subject = issue(ca)
    host = host_of(subject)
    fake = resolver({host: [IP]})
    other = tmp_path / "other-root.pem"
    other.write_text(temporary_like("another root")[0])
    server = serve(chain, key)
    result = check(host, server.port, cafile=str(other), resolve=fake)
    assert result.code == https_check.VERIFY_FAILED, result
    assert result.message == (
        f"the certificate served on {IP}:{server.port} for {host} does not verify: "
        "unable to get local issuer certificate"
    )
    assert result.fix.startswith("the box must serve the whole chain") and "issuer's root" in result.fix
    assert result.subject == subject, "what was served is named, though not trusted"

    # nginx serving the leaf without the issuing CA: the chain cannot be built to our root.
    leaf_only = serve(chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n", key)
    result = check(host, leaf_only.port, cafile=root_file, resolve=fake)
    assert result.code == https_check.VERIFY_FAILED and "does not verify" in result.message, result


def test_ca_file_unreadable(tmp_path):
    result = check("127-0-0-1.label.iot.example.com", 443, cafile=str(tmp_path / "missing.pem"), resolve=resolver({}))
    assert result.code == https_check.CA_UNREADABLE, result
    assert result.detail.startswith("FileNotFoundError") and result.fix == "give a PEM file of CA certificates"


# === CONNECTION ===


def test_connection_refused(root_file):
    port = closed_port()
    host = "127-0-0-1.label.iot.example.com"
    result = check(host, port, cafile=root_file, resolve=resolver({host: [IP]}))
    assert result.code == https_check.CONNECTION_REFUSED, result
    assert result.message == f"connection to {IP}:{port} refused: nothing serves HTTPS there"
    assert result.fix == f"start the box (its nginx serves HTTPS on port {port}), or check the port"


def test_timeout_when_nothing_answers_the_handshake(root_file):
    with socket.create_server((IP, 0)) as silent:  # the kernel accepts; nobody speaks TLS
        port = silent.getsockname()[1]
        started = time.monotonic()
        result = check("127-0-0-1.label.iot.example.com", port, address=IP, cafile=root_file, timeout=0.5)
        elapsed = time.monotonic() - started
    assert result.code == https_check.TIMEOUT, result
    assert result.message == f"no answer from {IP}:{port} within 0.5 s" and elapsed < 5
    assert "firewall" in result.fix


def test_tls_error_when_the_port_speaks_plain_http(root_file):
    with socket.create_server((IP, 0)) as plain:
        port = plain.getsockname()[1]

        def answer():
            conn, _peer = plain.accept()
            with conn:
                conn.settimeout(5)
                conn.recv(4096)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        result = check("127-0-0-1.label.iot.example.com", port, address=IP, cafile=root_file)
        thread.join(5)
    assert result.code == https_check.TLS_ERROR, result
    assert result.message.startswith(f"TLS handshake with {IP}:{port} failed: ")
    assert f"port {port}" in result.fix


def test_unreachable_network(root_file, monkeypatch):
    def unreachable(*_args, **_kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr(socket, "create_connection", unreachable)  # the edge: no packet leaves
    result = check("10-0-0-5.label.iot.example.com", 443, address="10.0.0.5", cafile=root_file)
    assert result.code == https_check.UNREACHABLE, result
    assert result.message == "cannot connect to 10.0.0.5:443: Network is unreachable"


# === DNS ===


def test_nxdomain_is_the_documented_router_case(root_file, monkeypatch):
    monkeypatch.setattr(socket, "create_connection", no_connection)  # nothing is contacted
    host = "192-168-1-20.label.iot.example.com"
    for errno, answer in ((socket.EAI_NONAME, "NXDOMAIN"), (socket.EAI_NODATA, "no address")):
        result = check(host, 443, cafile=root_file, resolve=resolver({host: errno}))
        assert result.code == https_check.DNS_NXDOMAIN and result.severity == "error", result
        assert result.message == (
            f"{host} does not resolve ({answer} from the system resolver): the router or DNS server blocks public "
            "names that resolve to private addresses such as 192.168.1.20 (DNS rebinding protection); browsers "
            "show DNS_PROBE_FINISHED_NXDOMAIN and the homepage opens by IP address but not by name"
        )
        assert result.fix == (
            "if the router allows manual DNS, set it to Google DNS (8.8.8.8 and 8.8.4.4); if not, set Google DNS "
            "(8.8.8.8 and 8.8.4.4) on each device that uses the box (payment terminals usually need no change)"
        )


def test_nxdomain_of_a_public_address_is_the_zone(root_file):
    host = "8-8-4-4.label.iot.example.com"  # never contacted: the name does not resolve
    result = check(host, 443, cafile=root_file, resolve=resolver({}), resolver_name="the Odoo server's resolver")
    assert result.code == https_check.DNS_NXDOMAIN, result
    assert result.message == f"{host} does not resolve (NXDOMAIN from the Odoo server's resolver)"
    assert result.fix.startswith(f"the issuer's DNS zone must answer {host} with 8.8.4.4")


def test_dns_elsewhere_connects_nowhere(root_file, monkeypatch):
    monkeypatch.setattr(socket, "create_connection", no_connection)
    host = "127-0-0-1.label.iot.example.com"
    result = check(host, 443, cafile=root_file, resolve=resolver({host: ["127.0.0.2", "127.0.0.3"]}))
    assert result.code == https_check.DNS_ELSEWHERE, result
    assert result.message == (
        f"{host} resolves to 127.0.0.2, 127.0.0.3 (the system resolver), not to the box's address 127.0.0.1: "
        "the name points elsewhere (a local DNS record or a DNS override on the router?)"
    )
    assert result.fix.startswith("remove the override so that the name resolves to 127.0.0.1")


def test_dns_error(root_file):
    host = "127-0-0-1.label.iot.example.com"
    result = check(host, 443, cafile=root_file, resolve=resolver({host: socket.EAI_AGAIN}))
    assert result.code == https_check.DNS_ERROR, result
    assert result.message == f"the system resolver gave no answer for {host}: fake resolver: error {socket.EAI_AGAIN}"


def test_default_resolver_is_looked_up_at_each_call(monkeypatch):
    monkeypatch.setattr(socket, "getaddrinfo", resolver({"10-0-0-5.label.iot.example.com": ["10.0.0.5"]}))
    assert https_check.resolve_ipv4("10-0-0-5.label.iot.example.com") == ("addresses", ["10.0.0.5"])
    assert https_check.resolve_ipv4("other.example.com") == ("nxdomain", None)


# === WITHOUT A CONNECTION ===


def test_no_https_name():
    for address in ("10.0.0.5", None):
        result = https_check.no_https_name(address)
        assert result.code == https_check.NO_HTTPS_NAME and result.severity == "error" and result.fix
        assert_storable(result)
    assert (
        "registered with its IP address 10.0.0.5: it has no HTTPS name yet"
        in https_check.no_https_name("10.0.0.5").message
    )
    assert https_check.box_address("10-0-0-5.label.iot.example.com") == "10.0.0.5"
    assert https_check.box_address("10.0.0.5") is None


def test_validity_judged_by_date_alone():
    not_before = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
    not_after = not_before + datetime.timedelta(days=90)
    facts = {"host": "10-0-0-5.label.iot.example.com", "port": 443}
    at = {
        not_before + datetime.timedelta(days=1): https_check.OK,
        not_after - datetime.timedelta(days=9, hours=23): https_check.EXPIRING_SOON,
        not_after + datetime.timedelta(seconds=1): https_check.EXPIRED,
        not_before - datetime.timedelta(seconds=1): https_check.NOT_YET_VALID,
    }
    for now, code in at.items():
        result = https_check.validity_outcome("*.label.iot.example.com", not_before, not_after, now=now, **facts)
        assert result.code == code, (now, result)
        assert result.not_after == not_after
        assert_storable(result)


def test_days_left_in_words():
    not_after = datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.timezone.utc)
    not_before = not_after - datetime.timedelta(days=90)
    left = {
        datetime.timedelta(days=4, hours=1): "(4 days left)",
        datetime.timedelta(days=1, hours=1): "(1 day left)",
        datetime.timedelta(hours=3): "(less than a day left)",
    }
    for remaining, words in left.items():
        result = https_check.validity_outcome("*.l.example.com", not_before, not_after, now=not_after - remaining)
        assert result.code == https_check.EXPIRING_SOON and result.message.endswith(words), result.message
