"""A box's HTTPS side for tests: a loopback TLS server, self-signed certificates, a closed port."""

import datetime
import ipaddress
import socket
import ssl
import threading
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def closed_port(host="127.0.0.1"):
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def write_chain(folder, chain_pem, key_pem):
    """Write what a box's nginx serves into ``folder`` (created); :return: (chain file, key file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    chain_file, key_file = folder / "chain.pem", folder / "key.pem"
    chain_file.write_text(chain_pem)
    key_file.write_text(key_pem)
    return chain_file, key_file


class TlsServer:
    """What nginx does on a box: Python's ssl serving a chain and its key on 127.0.0.1:<free port>.
    Bounded: it stops after 60 s, or at ``stop()``."""

    def __init__(self, chain_path, key_path):
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(chain_path), str(key_path))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.handshakes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                conn, _peer = self.sock.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True):
                    self.handshakes += 1
            except OSError:  # the client refused the certificate: the test says why
                conn.close()

    def wait_for_handshakes(self, count):
        """:return: whether ``count`` handshakes completed on the server's side (it ends them after the client)."""
        deadline = time.monotonic() + 5
        while self.handshakes < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.handshakes == count

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


def self_signed(common_name, not_after=None, not_before=None, dns_name=None, ip_san=None, ca=False):
    """A self-signed P-256 certificate and its key: a temporary box certificate, a test root or
    a test server's certificate. No CN when ``common_name`` is None; valid from a day ago for
    two days unless told; ``ca`` marks it a CA (basicConstraints)."""
    key = ec.generate_private_key(ec.SECP256R1())
    if common_name is None:
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "no common name")])
    else:
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now - datetime.timedelta(days=1))
        .not_valid_after(not_after or now + datetime.timedelta(days=2))
    )
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    names = [x509.DNSName(dns_name)] if dns_name else []
    names += [x509.IPAddress(ipaddress.ip_address(ip_san))] if ip_san else []
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(key, hashes.SHA256()), key
