"""Does a box's HTTPS work, seen from a client: resolve its name, connect, verify the chain and
the name, read the served certificate's validity. One decision, and one wording of each
outcome, for the Odoo addon's Check HTTPS button and the box client's ``doctor``.

Trust: ``cafile`` given, its roots are the only ones trusted (the addon passes its own root for
names in its zone: a box must verify against the root its devices trust, and a public CA that
happened to certify the name would hide a misconfiguration). Without ``cafile``, the system
trust store, as a browser, plus the PEM roots of ``cadata`` when given (the doctor adds the
issuer's root).

When verification fails, a second handshake that verifies nothing reads what the box serves,
only to say what it is (the temporary self-signed certificate, the name it is for, its dates):
nothing is sent over it and its outcome is never OK.

Standard library and ``cryptography`` only; no Odoo.
"""

import datetime
import ipaddress
import socket
import ssl
from dataclasses import dataclass, replace

from cryptography import x509

from . import keys, profile

DEFAULT_PORT = 443
DEFAULT_TIMEOUT = 5  # seconds, for the connection and the handshake each
TEMPORARY_CN = "OdooTempIoTBoxCertificate"  # what a stock box serves before it has a certificate
EXPIRY_WARNING = datetime.timedelta(days=10)  # a stock box renews within 10 days of expiry
GOOGLE_DNS = "Google DNS (8.8.8.8 and 8.8.4.4)"
SYSTEM_RESOLVER = "the system resolver"

# OpenSSL verification errors (X509_V_ERR_*) worth their own outcome.
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_NAME_MISMATCH = (62, 64)  # HOSTNAME_MISMATCH, IP_ADDRESS_MISMATCH

# === OUTCOME CODES (stable keys: stored by the addon, mapped by the doctor) ===

OK = "ok"
EXPIRING_SOON = "expiring_soon"  # works, but renew now
NO_HTTPS_NAME = "no_https_name"  # the box registered with its IP address: no certificate yet
CA_UNREADABLE = "ca_unreadable"
DNS_NXDOMAIN = "dns_nxdomain"  # NXDOMAIN or no address: the documented router case
DNS_ELSEWHERE = "dns_elsewhere"
DNS_ERROR = "dns_error"
CONNECTION_REFUSED = "connection_refused"
TIMEOUT = "timeout"
UNREACHABLE = "unreachable"
TLS_ERROR = "tls_error"
VERIFY_FAILED = "verify_failed"
NAME_MISMATCH = "name_mismatch"
EXPIRED = "expired"
NOT_YET_VALID = "not_yet_valid"
TEMPORARY_CERTIFICATE = "temporary_certificate"

CODES = (
    OK,
    EXPIRING_SOON,
    NO_HTTPS_NAME,
    CA_UNREADABLE,
    DNS_NXDOMAIN,
    DNS_ELSEWHERE,
    DNS_ERROR,
    CONNECTION_REFUSED,
    TIMEOUT,
    UNREACHABLE,
    TLS_ERROR,
    VERIFY_FAILED,
    NAME_MISMATCH,
    EXPIRED,
    NOT_YET_VALID,
    TEMPORARY_CERTIFICATE,
)


@dataclass(frozen=True)
class HttpsCheck:
    """The outcome of a check: a stable ``code``, what was found and what to do.

    ``address`` is the address connected to (or that the name resolved to); ``subject``,
    ``not_before``, ``not_after`` (aware UTC) and ``served_der`` describe the certificate the box
    served, when one was read; ``detail`` is the low-level reason (OpenSSL, resolver, errno).
    """

    code: str
    message: str
    fix: str = ""
    host: str = ""
    port: int = DEFAULT_PORT
    address: str | None = None
    subject: str | None = None
    not_before: datetime.datetime | None = None
    not_after: datetime.datetime | None = None
    tls_version: str | None = None
    served_der: bytes | None = None
    detail: str = ""

    @property
    def ok(self):
        return self.code == OK

    @property
    def severity(self):
        """``ok``, ``warning`` (works, renew it) or ``error`` (does not work)."""
        return {OK: "ok", EXPIRING_SOON: "warning"}.get(self.code, "error")


# === THE CHECK ===


def check_https(
    host,
    port=DEFAULT_PORT,
    address=None,
    cafile=None,
    cadata=None,
    timeout=DEFAULT_TIMEOUT,
    resolve=None,
    resolver_name=SYSTEM_RESOLVER,
    now=None,
):
    """Check ``https://host:port`` as a browser would; never raises for what it finds.

    :param host: the HTTPS name (a box's ``<ip-with-dashes>.<label>.<zone>``)
    :param address: connect here instead of resolving ``host`` (the name is still verified)
    :param cafile: PEM file of the only roots trusted; None for the system store (+ ``cadata``)
    :param cadata: PEM text of roots trusted besides the system store (ignored with ``cafile``)
    :param timeout: seconds, for the connection and for the handshake
    :param resolve: a ``socket.getaddrinfo``-like function; None for ``socket.getaddrinfo``
    :param resolver_name: the resolver, in words, for the messages
    :param now: aware UTC datetime the validity is judged at (default: now)
    :return: an ``HttpsCheck``
    """
    host = (host or "").strip().lower().rstrip(".")
    try:
        context = trust_context(cafile, cadata)
    except (OSError, ValueError) as exc:
        return HttpsCheck(
            CA_UNREADABLE,
            f"cannot read the CA file {cafile}: {_reason(exc)}" if cafile else f"cannot read the roots: {_reason(exc)}",
            "give a PEM file of CA certificates",
            host=host,
            port=port,
            detail=_reason(exc),
        )
    if address is None:
        outcome, detail = resolve_ipv4(host, resolve)
        problem = dns_outcome(host, outcome, detail, where=resolver_name)
        if problem is not None:
            return replace(problem, port=port)
        expected = box_address(host)
        address = expected if expected in detail else detail[0]

    where = f"{address}:{port}"
    facts = {"host": host, "port": port, "address": address}
    try:
        served_der, version = _handshake(address, port, host, context, timeout)
    except ssl.SSLCertVerificationError as exc:
        return _verification_failed(exc, facts, timeout, now)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        return HttpsCheck(
            TLS_ERROR,
            f"TLS handshake with {where} failed: {reason}",
            f"the box must serve HTTPS on port {port} with its certificate and key (nginx on a box); restart the box",
            detail=reason,
            **facts,
        )
    except ConnectionRefusedError:
        return HttpsCheck(
            CONNECTION_REFUSED,
            f"connection to {where} refused: nothing serves HTTPS there",
            f"start the box (its nginx serves HTTPS on port {port}), or check the port",
            **facts,
        )
    except TimeoutError:
        return HttpsCheck(
            TIMEOUT,
            f"no answer from {where} within {timeout} s",
            f"check that the box is on and reachable from here, and that no firewall drops port {port}",
            **facts,
        )
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return HttpsCheck(
            UNREACHABLE,
            f"cannot connect to {where}: {reason}",
            "check the box's address and that this machine can reach the box's network",
            detail=reason,
            **facts,
        )
    served = x509.load_der_x509_certificate(served_der)
    return validity_outcome(
        keys.common_name(served),
        keys.not_valid_before(served),
        keys.not_valid_after(served),
        now=now,
        tls_version=version,
        served_der=served_der,
        **facts,
    )


def trust_context(cafile=None, cadata=None):
    """The client context: host names checked, the roots of the module's trust rule.

    :raise OSError, ValueError: the roots cannot be read
    """
    if cafile:
        return ssl.create_default_context(cafile=cafile)
    context = ssl.create_default_context()
    if cadata:
        context.load_verify_locations(cadata=cadata)
    return context


def _handshake(address, port, host, context, timeout):
    """:return: (DER of the served leaf, TLS version); nothing is sent after the handshake."""
    with socket.create_connection((address, port), timeout=timeout) as sock:
        with context.wrap_socket(sock, server_hostname=host) as tls:
            return tls.getpeercert(binary_form=True), tls.version()


def _served_certificate(address, port, host, timeout):
    """What the box serves, read without verifying it (to name it, never to trust it); or None."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # diagnostic read only: the outcome is already a failure
    try:
        der, _version = _handshake(address, port, host, context, timeout)
        return x509.load_der_x509_certificate(der), der
    except (OSError, ValueError):
        return None, None


def _verification_failed(exc, facts, timeout, now):
    detail = exc.verify_message or exc.reason or str(exc)
    host, port, address = facts["host"], facts["port"], facts["address"]
    where = f"{address}:{port}"
    served, served_der = _served_certificate(address, port, host, timeout)
    subject, read = None, {}
    if served is not None:
        subject = keys.common_name(served)
        read = {
            "subject": subject,
            "not_before": keys.not_valid_before(served),
            "not_after": keys.not_valid_after(served),
            "served_der": served_der,
        }
    facts = {**facts, **read, "detail": detail}
    if subject == TEMPORARY_CN:
        return _temporary(where, facts)
    if exc.verify_code in _NAME_MISMATCH:
        found = f"the certificate served on {where} is not for {host} ({detail})"
        return HttpsCheck(
            NAME_MISMATCH,
            f"{found}: it is for {subject}" if subject else found,
            f"the box must serve the certificate of its own name {host} (its nginx certificate): restart the box; "
            "if its address changed, it registers again with its new name",
            **facts,
        )
    if exc.verify_code == _CERT_HAS_EXPIRED:
        since = f" on {fmt(read['not_after'])}" if read else ""
        return HttpsCheck(EXPIRED, f"the certificate served on {where} expired{since}", _RENEW_FIX, **facts)
    if exc.verify_code == _CERT_NOT_YET_VALID:
        since = f" (valid from {fmt(read['not_before'])})" if read else ""
        return HttpsCheck(
            NOT_YET_VALID,
            f"the certificate served on {where} is not valid yet{since}",
            "set the clock (NTP) of the machine checking, or of the issuer if it is the one behind",
            **facts,
        )
    return HttpsCheck(
        VERIFY_FAILED,
        f"the certificate served on {where} for {host} does not verify: {detail}",
        "the box must serve the whole chain (its certificate, then the issuing CA), and the devices that use it "
        "must trust the issuer's root (IoT > Certificates: the root is at /odoo-enterprise/iot/ca.pem)",
        **facts,
    )


_RENEW_FIX = (
    "the box renews its certificate when it restarts or its homepage opens: restart it; if it keeps this "
    "certificate, the error code on its homepage says why the issuer refuses"
)


def _temporary(where, facts):
    return HttpsCheck(
        TEMPORARY_CERTIFICATE,
        f"{where} serves the temporary self-signed certificate {TEMPORARY_CN}: the box has no certificate "
        "from the issuer yet",
        "the box's homepage shows why (error code); the database must be eligible (production, subscription "
        "In Progress with an IoT box line); then restart the box or refresh its homepage",
        **facts,
    )


def validity_outcome(subject, not_before, not_after, now=None, **facts):
    """The outcome of a verified certificate: OK, or what about its subject or dates is wrong.

    Also re-judges a stored outcome by date alone (no connection), e.g. daily.
    :param facts: ``host``, ``port``, ``address``, ``tls_version``, ``served_der`` for the result
    :return: an ``HttpsCheck``
    """
    now = now or keys.utcnow()
    host, port = facts.get("host", ""), facts.get("port", DEFAULT_PORT)
    where = f"{facts.get('address') or host}:{port}"
    facts = {**facts, "subject": subject, "not_before": not_before, "not_after": not_after}
    validity = f"{subject} valid from {fmt(not_before)} until {fmt(not_after)}"
    if subject == TEMPORARY_CN:
        return _temporary(where, facts)
    if now > not_after:
        found = f"the certificate served on {where} expired on {fmt(not_after)}"
        return HttpsCheck(EXPIRED, found, _RENEW_FIX, **facts)
    if now < not_before:
        return HttpsCheck(
            NOT_YET_VALID,
            f"the certificate served on {where} is not valid yet (valid from {fmt(not_before)})",
            "set the clock (NTP) of the machine checking, or of the issuer if it is the one behind",
            **facts,
        )
    if not_after - now < EXPIRY_WARNING:
        days = (not_after - now).days
        return HttpsCheck(
            EXPIRING_SOON,
            f"https://{host}:{port} works, but {subject} expires on {fmt(not_after)} "
            f"({days} day{'s' if days != 1 else ''} left)",
            _RENEW_FIX,
            **facts,
        )
    version = f" ({facts['tls_version']})" if facts.get("tls_version") else ""
    return HttpsCheck(OK, f"https://{host}:{port} verified{version}: {validity}", **facts)


def no_https_name(address):
    """The outcome for a box known only by its IPv4 address (or by nothing): no HTTPS name to check."""
    if not address:
        return HttpsCheck(
            NO_HTTPS_NAME,
            "the box has not registered an address yet",
            "start the box and connect it to the database (IoT > Connect a box)",
        )
    return HttpsCheck(
        NO_HTTPS_NAME,
        f"the box registered with its IP address {address}: it has no HTTPS name yet (it registers with "
        "its HTTPS name once it has a certificate)",
        "the box's homepage shows why it has no certificate (error code); the database must be eligible "
        "(production, subscription In Progress with an IoT box line); then restart the box or refresh its homepage",
        address=address,
    )


# === DNS ===


def box_address(host):
    """The IPv4 address written in a box host name (``10-0-0-5.<label>.<zone>`` -> ``10.0.0.5``), or None."""
    if not profile.subject_of_box_host(host):
        return None
    return host.strip().lower().split(".", 1)[0].replace("-", ".")


def resolve_ipv4(host, resolve=None):
    """Resolve ``host`` to IPv4 addresses.

    :param resolve: a ``socket.getaddrinfo``-like function; None for ``socket.getaddrinfo`` (looked
        up at each call, so patching ``socket.getaddrinfo`` works)
    :return: ("addresses", [ip, ...]) | ("nxdomain", None) | ("no-answer", None) | ("error", text)
    """
    resolve = resolve or socket.getaddrinfo
    try:
        infos = resolve(host, None, socket.AF_INET, socket.SOCK_STREAM)
    except socket.gaierror as exc:
        if exc.errno == socket.EAI_NONAME:
            return "nxdomain", None
        if exc.errno == getattr(socket, "EAI_NODATA", None):
            return "no-answer", None
        return "error", exc.strerror or str(exc)
    except (UnicodeError, ValueError) as exc:
        return "error", _reason(exc)
    addresses = sorted({sockaddr[0] for *_rest, sockaddr in infos})
    return ("addresses", addresses) if addresses else ("no-answer", None)


def dns_outcome(host, outcome, detail, expected=None, where=SYSTEM_RESOLVER):
    """What a resolution of a box's HTTPS name means.

    :param outcome, detail: as ``resolve_ipv4`` returns them
    :param expected: the box's address (default: the one written in ``host``)
    :param where: who answered, in words
    :return: None when the name resolves to ``expected`` (to anything, without one), else an ``HttpsCheck``
    """
    expected = expected or box_address(host)
    facts = {"host": host, "detail": str(detail or "")}
    if outcome == "addresses":
        if expected is None or expected in detail:
            return None
        return HttpsCheck(
            DNS_ELSEWHERE,
            f"{host} resolves to {', '.join(detail)} ({where}), not to the box's address {expected}: "
            "the name points elsewhere (a local DNS record or a DNS override on the router?)",
            f"remove the override so that the name resolves to {expected}, or use {GOOGLE_DNS} on the router "
            "or on each device",
            address=detail[0],
            **facts,
        )
    if outcome in ("nxdomain", "no-answer"):
        answer = "NXDOMAIN" if outcome == "nxdomain" else "no address"
        if expected is None or ipaddress.IPv4Address(expected).is_private:
            such_as = f" such as {expected}" if expected else ""
            return HttpsCheck(
                DNS_NXDOMAIN,
                f"{host} does not resolve ({answer} from {where}): the router or DNS server blocks public "
                f"names that resolve to private addresses{such_as} (DNS rebinding protection); browsers "
                "show DNS_PROBE_FINISHED_NXDOMAIN and the homepage opens by IP address but not by name",
                f"if the router allows manual DNS, set it to {GOOGLE_DNS}; if not, set {GOOGLE_DNS} on each "
                "device that uses the box (payment terminals usually need no change)",
                **facts,
            )
        return HttpsCheck(
            DNS_NXDOMAIN,
            f"{host} does not resolve ({answer} from {where})",
            f"the issuer's DNS zone must answer {host} with {expected}; ask its operator, or use {GOOGLE_DNS}",
            **facts,
        )
    return HttpsCheck(
        DNS_ERROR,
        f"{where} gave no answer for {host}: {detail}",
        "check the DNS server and the network of the machine checking, then check again",
        **facts,
    )


# === FORMATTING ===


def fmt(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _reason(exc):
    return f"{type(exc).__name__}: {exc}"
