"""A real TLS handshake with a certificate from the running mock issuer.

The chain and key the issuer returns (legacy mode: key made by the issuer;
CSR mode: key made here) are served with Python's ssl module on 127.0.0.1, as
nginx serves them on a box. A client that trusts only the issuer's root
(``GET /odoo-enterprise/iot/ca.pem``) and checks host names connects to the
box's host name: ``10-0-0-5`` + the subject without ``*``.
"""

import socket
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from conftest import PUBLIC_URL, PUBLIC_ZONE, first_pem, mock_issuer, pem_blocks, register
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iot_pki import keys, profile

UUID = "a3c4e5f6-7b8c-4d9e-8f01-23456789abcd"
CODE = "M2411TLS"
GREETING = b"hello from the box\n"
NAME_MISMATCH = (62, 64)  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


@dataclass
class Issued:
    mode: str
    chain_pem: str
    key_pem: str
    subject_cn: str
    label: str
    root_path: Path

    def box_hostname(self, ip="10.0.0.5"):
        return profile.box_hostname(ip, self.subject_cn)


class TLSServer:
    """Serves ``chain_pem`` + ``key_pem`` on 127.0.0.1: each connection gets a handshake and a greeting."""

    def __init__(self, folder, chain_pem, key_pem):
        folder.mkdir(parents=True, exist_ok=True)
        cert_file, key_file = folder / "server.crt", folder / "server.key"
        cert_file.write_text(chain_pem)
        key_file.write_text(key_pem)
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert_file), str(key_file))
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="tls-server", daemon=True)

    def _serve(self):
        while not self._stop.is_set():
            try:
                connection, _address = self.listener.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(10)
                try:
                    with self.context.wrap_socket(connection, server_side=True) as tls:
                        self.handshakes += 1
                        tls.sendall(GREETING)
                except (ssl.SSLError, OSError):
                    pass  # the client refused the certificate: its side of the test says why

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)
        self.listener.close()


def connect(port, cafile, server_hostname):
    """Handshake as a browser would, trusting only ``cafile``; :return: (peer certificate dict, data read)."""
    context = ssl.create_default_context(cafile=str(cafile))
    assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=server_hostname) as tls:
            data = b""
            while not data.endswith(b"\n"):
                chunk = tls.recv(64)
                if not chunk:
                    break
                data += chunk
            return tls.getpeercert(), data


def database_label(data_dir, db_uuid):
    label_key = bytes.fromhex((Path(data_dir) / "ca" / "label.key").read_text().strip())
    return profile.database_label(label_key, db_uuid)


@pytest.fixture(params=["legacy", "csr"])
def issued(request, tmp_path, issuer_data, issuer):
    """A certificate from the running mock issuer, in legacy or CSR mode, with the issuer's root saved to a file."""
    register(issuer_data, UUID, CODE)
    root = requests.get(issuer.url + profile.ROOT_PATH, timeout=30)
    assert root.status_code == 200, root.text
    root_path = tmp_path / "root.pem"
    root_path.write_bytes(root.content)
    if request.param == "csr":
        private_key = keys.generate_key("p256")
        csr_pem = keys.make_csr(private_key).public_bytes(serialization.Encoding.PEM).decode("ascii")
        response = issuer.request_certificate(UUID, CODE, csr_pem=csr_pem)
        key_pem = keys.private_key_pem(private_key)
    else:
        response = issuer.request_certificate(UUID, CODE)
        key_pem = None
    assert response.status_code == 200, response.text
    result = response.json()["result"]
    assert result, response.text
    if request.param == "csr":
        assert "private_key_pem" not in result
    else:
        key_pem = result["private_key_pem"]
    label = database_label(issuer_data, UUID)
    assert result["subject_cn"] == f"*.{label}.{PUBLIC_ZONE}"
    assert len(pem_blocks(result["x509_pem"])) == 2
    return Issued(request.param, result["x509_pem"], key_pem, result["subject_cn"], label, root_path)


def test_handshake_with_the_issued_certificate(tmp_path, issued):
    with TLSServer(tmp_path / "box", issued.chain_pem, issued.key_pem) as server:
        for ip in ("10.0.0.5", "192.168.1.20"):
            hostname = issued.box_hostname(ip)
            assert hostname == f"{ip.replace('.', '-')}.{issued.label}.{PUBLIC_ZONE}"
            peer, data = connect(server.port, issued.root_path, hostname)
            assert data == GREETING, hostname
            assert peer["subject"] == ((("commonName", issued.subject_cn),),), peer
            assert peer["subjectAltName"] == (("DNS", issued.subject_cn),), peer
        assert server.handshakes == 2


def test_handshake_refused_outside_the_wildcard_or_with_another_root(tmp_path, issued):
    other_label = "a" * profile.LABEL_LENGTH
    assert other_label != issued.label
    outside = [
        f"a.b.{issued.label}.{PUBLIC_ZONE}",  # a wildcard covers one label only
        f"{issued.label}.{PUBLIC_ZONE}",  # nor the name it stands below
        f"10-0-0-5.{other_label}.{PUBLIC_ZONE}",  # another database's names
        f"10-0-0-5.{issued.label}.iot.example.org",
        "127.0.0.1",
    ]
    # A root of another issuer, with the very same name: only its key differs.
    other_data = tmp_path / "other-issuer"
    result = mock_issuer(other_data, "init", "--zone", PUBLIC_ZONE, "--public-url", PUBLIC_URL)
    assert result.returncode == 0, result.stderr
    other_root = other_data / "ca" / "root.crt"
    mine = x509.load_pem_x509_certificate(issued.root_path.read_bytes())
    theirs = x509.load_pem_x509_certificate(other_root.read_bytes())
    assert mine.subject == theirs.subject and mine != theirs

    with TLSServer(tmp_path / "box", issued.chain_pem, issued.key_pem) as server:
        for hostname in outside:
            with pytest.raises(ssl.SSLCertVerificationError) as refused:
                connect(server.port, issued.root_path, hostname)
            assert refused.value.verify_code in NAME_MISMATCH, (hostname, refused.value)
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            connect(server.port, other_root, issued.box_hostname())
        assert refused.value.verify_code not in NAME_MISMATCH, refused.value
        # The same client and name work with the issuer's root: the refusals above are about the names and root.
        assert connect(server.port, issued.root_path, issued.box_hostname())[1] == GREETING
        assert server.handshakes == 1

    # Without the intermediate (the root alone is trusted), the chain does not build: x509_pem must carry it.
    with TLSServer(tmp_path / "leaf-only", first_pem(issued.chain_pem), issued.key_pem) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            connect(server.port, issued.root_path, issued.box_hostname())
        assert refused.value.verify_code not in NAME_MISMATCH, refused.value
