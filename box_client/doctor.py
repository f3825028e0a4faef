"""``python -m box_client --state-dir DIR doctor``: what stands between a box and a working HTTPS
name, check by check, in the order of the documentation page "HTTPS certificate (IoT)", each
with what to do.

One line per check: ``PASS|FAIL|WARN|SKIP <check>: <what was found> — <what to do>`` (a PASS
has nothing to do). A check that cannot run because of an earlier one says SKIP and why.
The doctor changes nothing in the box's folder: it asks the issuer in CSR mode with a
throwaway key (no private key travels, nothing is installed), reads the certificate, asks
DNS and opens a TLS connection.
"""

import ipaddress
import re
import time
from dataclasses import dataclass

import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from iot_pki import codes, https_check, keys, profile
from iot_pki.https_check import describe_exception, fmt

from .box import (
    CONNECT_TIMEOUT,
    READ_TIMEOUT,
    RENEW_BEFORE,
    TEMPORARY_CN,
    BoxError,
    _spki,
    _trust,
    local_ip,
    parse_answer,
    post_certificate_request,
    read_answer,
    require_credentials,
)

PASS, FAIL, WARN, SKIP = "PASS", "FAIL", "WARN", "SKIP"
CHECKS = ("server", "credentials", "issuer-reachable", "issuer-answer", "certificate", "dns", "tls")
DNS_TIMEOUT = 5
TLS_TIMEOUT = 10


@dataclass(frozen=True)
class Result:
    status: str
    check: str
    found: str
    todo: str = ""

    @property
    def line(self):
        text = f"{self.status} {self.check}: {_one_line(self.found)}"
        return f"{text} — {_one_line(self.todo)}" if self.todo else text


class Doctor:
    """Runs the checks of ``CHECKS`` in order; each ``check_<name>`` returns a ``Result``."""

    def __init__(self, box, dns_server=None, port=https_check.DEFAULT_PORT, ca_file=None):
        """
        :param box: the ``Box`` to examine (nothing in its folder is written)
        :param dns_server: (address, port) of the DNS server to ask, or None for the system resolver
        :param port: the box's HTTPS port
        :param ca_file: PEM file of the roots the box's HTTPS is verified with, or None for the
            system trust store plus the issuer's root
        """
        self.box = box
        self.dns_server = dns_server
        self.port = port
        self.ca_file = ca_file
        self.config = None
        self.results = {}
        self.url = self.response = None
        self.throwaway_key = None
        self.issued_subject = None  # the subject the issuer gives this database now
        self.installed = None  # the installed certificate, when it has a real subject
        self.name = None  # the box's HTTPS name

    def run(self):
        """:return: the ``Result`` of every check, in order; never raises."""
        for name in CHECKS:
            try:
                result = getattr(self, "check_" + name.replace("-", "_"))()
            except Exception as exc:  # a doctor reports; it never shows a traceback
                result = Result(
                    FAIL, name, f"unexpected error: {describe_exception(exc)}", "report it with this output"
                )
            self.results[name] = result
        return list(self.results.values())

    # === HELPERS ===

    def _passed(self, name):
        result = self.results.get(name)
        return result is not None and result.status in (PASS, WARN)

    def _run_check_hint(self):
        command = f"python -m box_client --state-dir {self.box.state_dir} check"
        if any(r.status == FAIL for r in self.results.values()):
            return f"fix the failures above, then run `{command}`"
        return f"run `{command}`: it gets the certificate and installs it"

    def _box_ip(self):
        ip = self.config.ip or local_ip()
        try:
            return str(ipaddress.IPv4Address(ip))
        except ValueError:
            return None

    # === SERVER, CREDENTIALS (stock: check_certificate, load_certificate) ===

    def check_server(self):
        try:
            self.config = self.box.load_config()
        except BoxError as exc:
            return _coded(FAIL, "server", exc.code, "; ".join(exc.details), pairing_dir=self.box.state_dir)
        if not self.config.server:
            return _coded(
                FAIL,
                "server",
                codes.CHECK_NO_SERVER,
                "no server in the box's configuration",
                pairing_dir=self.box.state_dir,
            )
        issuer = f", issuer {self.config.issuer_url}" if self.config.issuer else ""
        return Result(PASS, "server", f"connected to {self.config.server}{issuer}")

    def check_credentials(self):
        if self.config is None:
            return Result(SKIP, "credentials", "the box's configuration is unreadable (see server)")
        try:
            require_credentials(self.config)
        except BoxError as exc:
            missing = [
                what
                for what, value in (
                    ("database UUID", self.config.db_uuid),
                    ("enterprise code", self.config.enterprise_code),
                )
                if not value
            ]
            return _coded(
                FAIL,
                "credentials",
                exc.code,
                f"no {' and no '.join(missing)} on the box",
                pairing_dir=self.box.state_dir,
            )
        code = self.config.enterprise_code
        return Result(PASS, "credentials", f"database UUID {self.config.db_uuid}, enterprise code {code[:4]}...")

    # === ISSUER (stock: load_certificate) ===

    def check_issuer_reachable(self):
        if self.config is None:
            return Result(SKIP, "issuer-reachable", "the box's configuration is unreadable (see server)")
        if not self.config.issuer_url:
            return Result(SKIP, "issuer-reachable", "no issuer: the box has no server (see server)")
        if not self._passed("credentials"):
            return Result(
                SKIP, "issuer-reachable", "a box asks the issuer only with both credentials (see credentials)"
            )
        # CSR mode with a key thrown away afterwards: no private key travels, nothing is installed.
        self.throwaway_key = keys.generate_key("p256")
        started = time.monotonic()
        try:
            self.url, self.response = post_certificate_request(self.config, self.throwaway_key)
        except BoxError as exc:
            exception = next((d for d in exc.details if d), "")
            entry = codes.BOX_ERRORS[codes.LOAD_REQUEST_EXCEPTION]
            todo = entry.fix
            if "CERTIFICATE_VERIFY_FAILED" in exception:
                todo = (
                    "the issuer's TLS certificate is not trusted: give its CA with "
                    f"`python -m box_client --state-dir {self.box.state_dir} configure --ca-bundle FILE`. {todo}"
                )
            return Result(FAIL, "issuer-reachable", f"{exc.code}: {_gist(exception)}. {entry.meaning}", todo)
        elapsed = time.monotonic() - started
        return Result(
            PASS, "issuer-reachable", f"POST {self.url} answered HTTP {self.response.status_code} in {elapsed:.2f} s"
        )

    def check_issuer_answer(self):
        if not self._passed("issuer-reachable"):
            return Result(SKIP, "issuer-answer", "the issuer was not asked (see issuer-reachable)")
        try:
            result = read_answer(self.response, self.url)
        except BoxError as exc:
            return self._refused(exc)
        # Read as the box would, in its mode: a box in CSR mode serves the key it made, so a
        # certificate for a key the issuer made instead is refused.
        issuer_made_the_key = isinstance(result, dict) and bool(result.get("private_key_pem"))
        box_key = None if issuer_made_the_key and not self.config.csr else self.throwaway_key
        try:
            _chain_pem, _key_pem, leaf = parse_answer(result, box_key, self.url)
        except BoxError as exc:
            return _coded(FAIL, "issuer-answer", exc.code, "; ".join(d for d in exc.details if d))
        subject = self.issued_subject = keys.common_name(leaf)
        if box_key is not None:
            mode = "CSR mode with a throwaway key"
        else:
            mode = "the issuer ignored the CSR and made the key; it was thrown away"
        return Result(
            PASS,
            "issuer-answer",
            f"eligible: the issuer issued a certificate for {subject} ({mode}; nothing installed)",
        )

    def _refused(self, exc):
        if exc.code.startswith(codes.LOAD_REQUEST_STATUS):
            return self._status(exc)
        entry = codes.REFUSALS.get(exc.refusal)
        if entry is not None:
            return Result(FAIL, "issuer-answer", f"{exc.code}: refused: {entry.code}: {entry.meaning}", entry.fix)
        return _coded(FAIL, "issuer-answer", exc.code, "; ".join(d for d in exc.details if d))

    def _status(self, exc):
        status = self.response.status_code
        found = ": ".join([exc.code, *(d for d in exc.details if d and not d.startswith("retry after"))])
        if status == 404:
            found += "; the issuer URL is wrong"
            todo = (
                f"set the issuer's base URL: `python -m box_client --state-dir {self.box.state_dir} configure "
                f"--issuer URL` (the box posts to URL{profile.X509_PATH})"
            )
        elif status == 429:
            retry = self.response.headers.get("Retry-After", "a while")
            reason = self.response.reason or "Too Many Requests"
            found = f"{exc.code}: {reason}: too many failed attempts, retry after {retry} s"
            todo = f"wait {retry} s, then run doctor again; fix the credentials first if they are wrong"
        elif 500 <= status < 600:
            found += "; the issuer is down or failing"
            todo = (
                "open the issuer's site to see whether it is down for maintenance and wait for it to resume; "
                f"if it is up, ask for help quoting the status {status}"
            )
        else:
            entry = codes.BOX_ERRORS[codes.LOAD_REQUEST_STATUS]
            found += f". {entry.meaning}"
            todo = entry.fix
        return Result(FAIL, "issuer-answer", found, todo)

    # === CERTIFICATE (stock: check_certificate, get_certificate_status) ===

    def check_certificate(self):
        path, key_path = self.box.cert_path, self.box.key_path
        try:
            certificate = self.box.read_certificate()
        except BoxError as exc:
            return _coded(FAIL, "certificate", exc.code, "; ".join(exc.details))
        if certificate is None:
            return Result(FAIL, "certificate", f"no certificate at {path}", self._run_check_hint())
        subject = keys.common_name(certificate)
        if not subject:
            return Result(FAIL, "certificate", f"{path} has no subject CN: no box can serve it", self._run_check_hint())
        if subject == TEMPORARY_CN:
            return Result(
                FAIL,
                "certificate",
                f"{path} is the temporary self-signed certificate {TEMPORARY_CN}",
                self._run_check_hint(),
            )
        self.installed = certificate
        now = keys.utcnow()
        not_before, not_after = keys.not_valid_before(certificate), keys.not_valid_after(certificate)
        if now < not_before:
            return Result(
                FAIL,
                "certificate",
                f"{subject} is valid only from {fmt(not_before)}: the box's clock is behind",
                "set the box's clock (NTP), then run doctor again",
            )
        if now > not_after:
            return Result(FAIL, "certificate", f"{subject} expired on {fmt(not_after)}", self._run_check_hint())
        problem = _key_problem(certificate, key_path)
        if problem:
            return Result(
                FAIL,
                "certificate",
                f"{subject} is valid but {problem}",
                f"delete {path}, then run `python -m box_client --state-dir {self.box.state_dir} check`: "
                "it writes the certificate and its key together",
            )
        validity = f"{subject} valid from {fmt(not_before)} until {fmt(not_after)}"
        if self.issued_subject and self.issued_subject != subject:
            return Result(
                WARN,
                "certificate",
                f"{validity}, but the issuer now gives this database {self.issued_subject} "
                "(was the box paired with another database?)",
                f"delete {path}, then run `python -m box_client --state-dir {self.box.state_dir} check`",
            )
        if now > not_after - RENEW_BEFORE:
            return Result(
                WARN,
                "certificate",
                f"{validity}: renewal due since {fmt(not_after - RENEW_BEFORE)}",
                self._run_check_hint(),
            )
        return Result(PASS, "certificate", f"{validity} (renewal due after {fmt(not_after - RENEW_BEFORE)})")

    # === DNS: the box's HTTPS name must resolve to the box ===

    def check_dns(self):
        if self.config is None:
            return Result(SKIP, "dns", "the box's configuration is unreadable (see server)")
        subject = keys.common_name(self.installed) if self.installed is not None else self.issued_subject
        if not subject:
            return Result(SKIP, "dns", "the box has no HTTPS name yet: no certificate, and none from the issuer")
        ip = self._box_ip()
        if ip is None:
            return Result(
                FAIL,
                "dns",
                f"the box's address {self.config.ip!r} is not an IPv4 address",
                f"`python -m box_client --state-dir {self.box.state_dir} configure --ip A.B.C.D`",
            )
        self.name = profile.box_hostname(ip, subject)
        where = f"DNS server {_server_text(self.dns_server)}" if self.dns_server else https_check.SYSTEM_RESOLVER
        outcome, detail = resolve(self.name, self.dns_server)
        problem = https_check.dns_outcome(self.name, outcome, detail, expected=ip, where=where)
        if problem is None:
            return Result(PASS, "dns", f"{self.name} resolves to {ip}, the box's address ({where})")
        if problem.code == https_check.DNS_ERROR:
            return Result(
                FAIL,
                "dns",
                problem.message,
                "check the DNS server (--dns SERVER) and the box's network, then run doctor again",
            )
        return Result(FAIL, "dns", problem.message, problem.fix)

    # === TLS: a browser's handshake with the box ===

    def check_tls(self):
        if self.installed is None:
            return Result(SKIP, "tls", "no certificate installed on the box (see certificate)")
        if self.name is None:
            return Result(SKIP, "tls", "the box's HTTPS name is unknown (see dns)")
        cadata, trust = self._roots()
        # The core connects to the box's own address: the dns check judged the name.
        result = https_check.check_https(
            self.name, self.port, address=self._box_ip(), cafile=self.ca_file, cadata=cadata, timeout=TLS_TIMEOUT
        )
        found, todo = result.message, self._tls_fix(result)
        if result.code == https_check.CA_UNREADABLE:
            return Result(FAIL, "tls", f"cannot read --ca-file {self.ca_file}: {result.detail}", result.fix)
        if result.code == https_check.VERIFY_FAILED:
            found += f" (trusting {trust})"
        if result.code not in (https_check.OK, https_check.EXPIRING_SOON):
            return Result(FAIL, "tls", found, todo)
        if result.ok:
            validity = f"{result.subject} valid from {fmt(result.not_before)} until {fmt(result.not_after)}"
            found = f"https://{self.name}:{self.port} verified ({result.tls_version}, trusting {trust}): {validity}"
        if result.served_der != self.installed.public_bytes(serialization.Encoding.DER):
            return Result(
                WARN,
                "tls",
                f"{found}, but it is not the certificate in {self.box.cert_path}",
                "restart nginx so that it serves the installed certificate",
            )
        if not result.ok:
            return Result(WARN, "tls", found, todo)
        return Result(PASS, "tls", found)

    def _roots(self):
        """:return: (PEM roots added to the system store or None, what the handshake trusts, in words)"""
        if self.ca_file:
            return None, self.ca_file
        if not self._passed("issuer-reachable"):
            return None, "the system trust store"
        root_url = self.config.issuer_url + profile.ROOT_PATH
        try:
            response = requests.get(root_url, timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), verify=_trust(self.config))
            response.raise_for_status()
            root = x509.load_pem_x509_certificate(response.content)
        except (requests.RequestException, ValueError) as exc:
            return (
                None,
                f"the system trust store; the issuer's root was not available: {_gist(describe_exception(exc))}",
            )
        cadata = root.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return cadata, f"the system trust store and the issuer's root from {root_url}"

    def _tls_fix(self, result):
        """The core's outcome, fixed on the box: its files, nginx, and the doctor's options."""
        cert_path = self.box.cert_path
        return {
            https_check.CONNECTION_REFUSED: (
                f"start nginx (it must serve {cert_path} on port {self.port}), or give the right port with --port"
            ),
            https_check.TIMEOUT: f"check that the box is up and that no firewall drops port {self.port}",
            https_check.UNREACHABLE: (
                f"check the box's address (`python -m box_client --state-dir {self.box.state_dir} configure --ip`)"
            ),
            https_check.TLS_ERROR: f"nginx must serve HTTPS on port {self.port} with {cert_path} and its key",
            https_check.NAME_MISMATCH: f"nginx must serve {cert_path}: install it in nginx and restart nginx",
            https_check.EXPIRED: f"{self._run_check_hint()}, then restart nginx",
            https_check.EXPIRING_SOON: f"{self._run_check_hint()}, then restart nginx",
            https_check.TEMPORARY_CERTIFICATE: f"{self._run_check_hint()}, then restart nginx",
            https_check.NOT_YET_VALID: "set the clocks (NTP) of this machine and of the issuer, then run doctor again",
            https_check.VERIFY_FAILED: (
                f"nginx must serve the whole chain ({cert_path}: the leaf, then the issuing CA), and devices "
                "must trust the issuer's root; to test with that root, give it with --ca-file"
            ),
        }.get(result.code, result.fix)


# === DNS RESOLUTION ===


def resolve(name, server=None):
    """Resolve ``name`` to IPv4 addresses.

    :param server: (address, port) of a DNS server to ask (dnspython), or None for the system resolver
    :return: ("addresses", [ip, ...]) | ("nxdomain", None) | ("no-answer", None) | ("error", text)
    """
    if server is None:
        return https_check.resolve_ipv4(name)
    try:  # only doctor --dns needs dnspython: check and configure work without it
        import dns.exception
        import dns.resolver
    except ImportError:
        return "error", "dnspython is not installed (pip install 'dnspython>=2.1'); --dns needs it"

    resolver = dns.resolver.Resolver(configure=False)
    # The port first: dnspython >= 2.4 binds it to each nameserver when the list is set.
    resolver.port = server[1]
    resolver.nameservers = [server[0]]
    resolver.timeout = resolver.lifetime = DNS_TIMEOUT
    try:
        answer = resolver.resolve(name.rstrip(".") + ".", "A")
    except dns.resolver.NXDOMAIN:
        return "nxdomain", None
    except dns.resolver.NoAnswer:
        return "no-answer", None
    except dns.exception.Timeout:
        return "error", f"no answer within {DNS_TIMEOUT} s"
    except dns.exception.DNSException as exc:
        return "error", describe_exception(exc)
    return "addresses", sorted({rdata.address for rdata in answer})


def parse_dns_server(value):
    """``SERVER[:PORT]``: an IPv4 or IPv6 address (``[::1]:53`` with a port); :return: (address, port)."""
    value = value.strip()
    host, port = value, "53"
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"{value!r} is not SERVER[:PORT]")
        port = rest[1:] or "53"
    elif value.count(":") == 1:
        host, port = value.split(":")
    try:
        address = str(ipaddress.ip_address(host))
        number = int(port)
    except ValueError:
        raise ValueError(f"{value!r} is not SERVER[:PORT] with SERVER an IP address") from None
    if not 0 < number < 65536:
        raise ValueError(f"{value!r}: the port must be from 1 to 65535")
    return address, number


# === FORMATTING ===


def _server_text(server):
    address, port = server
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _coded(status, check, code, found, pairing_dir=None):
    """A result for a box error code: the code, what was found, the catalogue's meaning, and its fix."""
    entry = codes.BOX_ERRORS[code.split(" ", 1)[0]]
    found = f"{code}: {found}. {entry.meaning}" if found else f"{code}: {entry.meaning}"
    todo = entry.fix
    if pairing_dir is not None:
        todo += (
            f" With the box client: `python -m box_client --state-dir {pairing_dir} configure "
            "--pairing 'URL|TOKEN|UUID|CODE'`."
        )
    return Result(status, check, found, todo)


def _key_problem(certificate, key_path):
    """What is wrong with the key beside the certificate, or None."""
    try:
        key = keys.load_private_key_pem(key_path.read_bytes())
    except FileNotFoundError:
        return f"there is no key at {key_path}"
    except (OSError, ValueError, TypeError) as exc:
        return f"the key {key_path} cannot be read ({type(exc).__name__})"
    if _spki(key.public_key()) != _spki(certificate.public_key()):
        return f"the key {key_path} does not match it"
    return None


_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
_TLS_FAILURE = re.compile(r"CERTIFICATE_VERIFY_FAILED\][^'\"(]*")


def _gist(text, limit=300):
    """The part of an exception text that says what happened (requests nests them deeply)."""
    for pattern in (_TLS_FAILURE, _ERRNO):
        match = pattern.search(text)
        if match:
            prefix = text.split(": ", 1)[0] + ": " if text.startswith("POST ") else ""
            return prefix + match.group(0).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _one_line(text):
    """Whatever an issuer or a file says, shown on one printable line."""
    return " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
