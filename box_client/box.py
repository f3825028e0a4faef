"""What a stock Odoo 17 IoT box does about its certificate, step for step
(``hw_drivers/tools/helpers.py``: check_certificate, load_certificate,
get_certificate_status), with the same error codes, plus what a box should
do and the stock one does not: verify the issuer's TLS, never crash on a bad
file or answer, and optionally keep its key (CSR mode).
"""

import json
import os
import socket
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from iot_pki import codes, https_check, keys, profile
from iot_pki.https_check import describe_exception, fmt

CONFIG_FILE = "box.json"
CERT_FILE = "nginx-cert.crt"
KEY_FILE = "nginx-cert.key"
# The stock box's rules, kept in the core: the temporary certificate's CN, the renewal margin.
TEMPORARY_CN = https_check.TEMPORARY_CN
RENEW_BEFORE = https_check.EXPIRY_WARNING
CONNECT_TIMEOUT = 10
READ_TIMEOUT = 30
REQUEST_RETRIES = 4  # as the stock box (urllib3.Retry(4))


@dataclass
class BoxConfig:
    """What a box knows: its database (server), the issuer, its credentials, its address."""

    server: str = ""
    issuer: str = ""
    db_uuid: str = ""
    enterprise_code: str = ""
    token: str = ""
    ip: str = ""
    csr: bool = False
    ca_bundle: str = ""

    @property
    def issuer_url(self):
        """The issuer's base URL: the configured one, else the connected database (self-hosted)."""
        return (self.issuer or self.server).rstrip("/")


class BoxError(Exception):
    """A box error: ``code`` as a stock box shows it, then detail lines."""

    def __init__(self, code, *details, refusal=None):
        super().__init__(code)
        self.code = code
        # "" stays: the stock box shows a blank line between the code and the reason.
        self.details = [d for d in details if d is not None]
        # The issuer's refusal reason (codes.REFUSALS key), when it gave one.
        self.refusal = refusal


@dataclass
class CheckResult:
    ok: bool
    line: str
    details: list
    refreshed: bool = False


class Box:
    def __init__(self, state_dir):
        self.state_dir = Path(state_dir)
        self.cert_path = self.state_dir / CERT_FILE
        self.key_path = self.state_dir / KEY_FILE

    # === CONFIGURATION ===

    def load_config(self):
        path = self.state_dir / CONFIG_FILE
        if not path.exists():
            return BoxConfig()
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            # A box whose server configuration cannot be read has no server.
            raise BoxError(codes.CHECK_NO_SERVER, f"{path} is unreadable: {describe_exception(exc)}") from None
        values = {}
        for field in fields(BoxConfig):
            if field.name not in raw:
                continue
            value = raw[field.name]
            if not isinstance(value, type(field.default)):
                raise BoxError(
                    codes.CHECK_NO_SERVER,
                    f"{path} is unreadable: {field.name} must be a {type(field.default).__name__}",
                )
            values[field.name] = value
        return BoxConfig(**values)

    def save_config(self, config):
        self.state_dir.mkdir(parents=True, exist_ok=True)
        # The file holds the enterprise code: private to the box's user.
        _write_atomic(self.state_dir / CONFIG_FILE, json.dumps(asdict(config), indent=2).encode(), 0o600)

    # === CHECK (stock: get_certificate_status) ===

    def check(self, now=None):
        """Check the certificate, refreshing it once if needed, as a box does on start and homepage."""
        refreshed = False
        try:
            config = self.load_config()
            if self._needs_refresh(config, now):
                self.load_certificate(config)
                refreshed = True
                if self._needs_refresh(config, now):
                    raise BoxError(codes.LOAD_REQUEST_NO_RESULT, "the new certificate still needs a refresh")
        except BoxError as exc:
            return CheckResult(False, exc.code, exc.details + _explain(exc), refreshed)
        certificate = self.read_certificate()
        subject = keys.common_name(certificate)
        ip = config.ip or local_ip()
        line = (
            f"OK {subject} valid from {fmt(keys.not_valid_before(certificate))} "
            f"until {fmt(keys.not_valid_after(certificate))} https://{profile.box_hostname(ip, subject)}"
        )
        details = [f"renewal due after {fmt(keys.not_valid_after(certificate) - RENEW_BEFORE)}"]
        return CheckResult(True, line, details, refreshed)

    def _needs_refresh(self, config, now=None):
        """Stock check_certificate: True when a new certificate must be requested."""
        if not config.server:
            raise BoxError(codes.CHECK_NO_SERVER)
        certificate = self.read_certificate()
        if certificate is None:
            return True
        subject = keys.common_name(certificate)
        now = now or keys.utcnow()
        # No CN: not a certificate a box can serve (the stock box would crash); get a real one.
        return not subject or subject == TEMPORARY_CN or now > keys.not_valid_after(certificate) - RENEW_BEFORE

    def read_certificate(self):
        """The installed certificate (the leaf, first in the chain file).

        :return: the certificate, or None when there is no file
        :raise BoxError: CHECK_CERT_READ_EXCEPTION when the file cannot be read or parsed
        """
        if not self.cert_path.exists():
            return None
        try:
            certificate = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
            # Read now what callers read, so that a malformed subject or date is a read error here.
            keys.common_name(certificate)
            keys.not_valid_after(certificate)
        except (OSError, ValueError) as exc:
            raise BoxError(codes.CHECK_CERT_READ_EXCEPTION, f"{self.cert_path}: {describe_exception(exc)}") from None
        return certificate

    # === LOAD (stock: load_certificate) ===

    def load_certificate(self, config):
        """Ask the issuer for a certificate and install it. Raises BoxError as the stock box reports."""
        require_credentials(config)
        new_key = keys.generate_key("p256") if config.csr else None
        url, response = post_certificate_request(config, new_key)
        self._install(read_answer(response, url), new_key, url)

    def _install(self, result, new_key, url):
        chain_pem, key_pem, _certificate = parse_answer(result, new_key, url)
        # Key first (0600), then the certificate: nginx never sees a certificate without its key.
        _write_atomic(self.key_path, key_pem.encode("ascii"), 0o600)
        _write_atomic(self.cert_path, chain_pem.encode("ascii"), 0o644)


def parse_answer(result, new_key, url):
    """What a box accepts of an issuer's certificate: a chain whose leaf matches the key it will
    serve (``new_key``, the one it made in CSR mode, else the issuer's ``private_key_pem``) and
    the announced subject.

    :return: (chain PEM, key PEM, leaf certificate)
    :raise BoxError: LOAD_REQUEST_NO_RESULT saying what is wrong
    """
    try:
        chain_pem = result["x509_pem"]
        key_pem = keys.private_key_pem(new_key) if new_key is not None else result["private_key_pem"]
        certificate = x509.load_pem_x509_certificate(chain_pem.encode("ascii"))
        private_key = keys.load_private_key_pem(key_pem)
        subject_cn = result["subject_cn"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BoxError(
            codes.LOAD_REQUEST_NO_RESULT, f"the answer of {url} is not usable: {describe_exception(exc)}"
        ) from None
    if _spki(certificate.public_key()) != _spki(private_key.public_key()):
        raise BoxError(codes.LOAD_REQUEST_NO_RESULT, "the certificate does not match the key")
    if subject_cn != keys.common_name(certificate):
        raise BoxError(codes.LOAD_REQUEST_NO_RESULT, "subject_cn does not match the certificate")
    return chain_pem, key_pem, certificate


def require_credentials(config):
    """:raise BoxError: LOAD_NO_CREDENTIAL when the UUID or the enterprise code is missing (no request is made)."""
    if not (config.db_uuid and config.enterprise_code):
        raise BoxError(codes.LOAD_NO_CREDENTIAL)


def post_certificate_request(config, csr_key=None):
    """The one call a box makes to the issuer: ``POST <issuer>/odoo-enterprise/iot/x509``.

    :param csr_key: a private key to send a CSR for (CSR mode), or None (legacy mode)
    :return: (url, response), whatever the HTTP status
    :raise BoxError: LOAD_REQUEST_EXCEPTION when the issuer cannot be reached
    """
    params = {"db_uuid": config.db_uuid, "enterprise_code": config.enterprise_code}
    if csr_key is not None:
        params["csr_pem"] = keys.make_csr(csr_key).public_bytes(serialization.Encoding.PEM).decode("ascii")
    url = config.issuer_url + profile.X509_PATH
    try:
        with _session() as session:
            response = session.post(
                url, json={"params": params}, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=_trust(config)
            )
    except (requests.RequestException, ValueError, OSError) as exc:
        raise BoxError(codes.LOAD_REQUEST_EXCEPTION, "", f"POST {url}: {exc}") from None
    return url, response


def read_answer(response, url):
    """Read the issuer's answer as a stock box does.

    :return: the truthy ``result``
    :raise BoxError: LOAD_REQUEST_STATUS <status> for a status other than 200,
        LOAD_REQUEST_NO_RESULT for a refusal (``refusal`` set when the issuer gave a reason) or no result
    """
    if response.status_code != 200:
        raise BoxError(
            f"{codes.LOAD_REQUEST_STATUS} {response.status_code}",
            "",
            response.reason or None,
            _error_message(response) or None,
            f"retry after {response.headers['Retry-After']} s" if "Retry-After" in response.headers else None,
        )
    try:
        answer = response.json()
        result = answer["result"]
    except (ValueError, KeyError, TypeError):
        raise BoxError(codes.LOAD_REQUEST_NO_RESULT, f"the answer of {url} has no result") from None
    if not result:
        refusal = answer.get("refusal") if isinstance(answer.get("refusal"), dict) else {}
        reason = refusal.get("code")
        detail = f"refused: {reason}: {refusal.get('message')}" if reason else "refused (no reason given)"
        raise BoxError(codes.LOAD_REQUEST_NO_RESULT, detail, refusal=reason if isinstance(reason, str) else None)
    return result


def _session():
    session = requests.Session()
    # Retries on connection failures, like the stock box's urllib3.Retry(4); never on answers.
    retry = Retry(total=REQUEST_RETRIES, connect=REQUEST_RETRIES, read=0, status=0, backoff_factor=0.2)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    session.mount("https://", HTTPAdapter(max_retries=retry))
    return session


def _trust(config):
    """The CA file an https issuer is verified with (unlike the stock box, always verified).

    The box's own --ca-bundle first, then REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE, then
    requests' bundle. Always a path: an empty variable must never turn verification off,
    as it does in requests 2.25 when verify is left to the environment.
    """
    for candidate in (config.ca_bundle, os.environ.get("REQUESTS_CA_BUNDLE"), os.environ.get("CURL_CA_BUNDLE")):
        if candidate:
            return candidate
    return requests.certs.where()


def _error_message(response):
    try:
        error = response.json().get("error") or {}
        return error.get("message", "")
    except (ValueError, AttributeError):
        return ""


def _explain(exc):
    """The error code's meaning, and its fix: the refusal's own when the issuer gave its reason."""
    entry = codes.BOX_ERRORS.get(exc.code.split(" ", 1)[0])
    if entry is None:
        return []
    refusal = codes.REFUSALS.get(exc.refusal)
    return [f"meaning: {entry.meaning}", f"fix: {refusal.fix if refusal else entry.fix}"]


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _write_atomic(path, data, mode):
    """Write through a temporary file and rename: a crash never leaves half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def local_ip():
    """The box's LAN address, as the stock box's get_ip(): the first non-loopback IPv4."""
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)
    except OSError:
        infos = []
    for *_rest, sockaddr in infos:
        if not sockaddr[0].startswith("127."):
            return sockaddr[0]
    return "127.0.0.1"
