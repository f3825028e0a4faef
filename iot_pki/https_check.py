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

Texts: each outcome names a message and a fix (``MESSAGES``/``FIXES``: English templates with
``%(name)s`` placeholders) and carries the parameters; ``message`` and ``fix`` render them in
English. The addon stores the keys and parameters and renders them in the reader's language
(the templates are registered for translation in ``models/core_i18n.py``).

Standard library and ``cryptography`` only; no Odoo.
"""

import datetime
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass, field, replace

from cryptography import x509

from . import keys, profile

DEFAULT_PORT = 443
DEFAULT_TIMEOUT = 5  # seconds, for the connection and the handshake each
TEMPORARY_CN = "OdooTempIoTBoxCertificate"  # what a stock box serves before it has a certificate
EXPIRY_WARNING = datetime.timedelta(days=10)  # a stock box renews within 10 days of expiry
SYSTEM_RESOLVER = "the system resolver"
NO_ADDRESS = "no address"  # a DNS answer without an A record
# Parameter values that are words, not facts: the addon translates them too.
PHRASES = (SYSTEM_RESOLVER, NO_ADDRESS)

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


# === TEXTS (English templates; the addon translates them) ===

_GOOGLE_DNS = "Google DNS (8.8.8.8 and 8.8.4.4)"
_ELIGIBILITY = (
    "the database must be eligible (production, subscription In Progress with an IoT box line); then restart "
    "the box or refresh its homepage"
)

MESSAGES = {
    "ca_file_unreadable": "cannot read the CA file %(cafile)s: %(reason)s",
    "roots_unreadable": "cannot read the roots: %(reason)s",
    "tls_error": "TLS handshake with %(where)s failed: %(reason)s",
    "connection_refused": "connection to %(where)s refused: nothing serves HTTPS there",
    "timeout": "no answer from %(where)s within %(timeout)s s",
    "unreachable": "cannot connect to %(where)s: %(reason)s",
    "name_mismatch": "the certificate served on %(where)s is not for %(host)s (%(detail)s)",
    "name_mismatch_subject": "the certificate served on %(where)s is not for %(host)s (%(detail)s): it is for "
    "%(subject)s",
    "expired": "the certificate served on %(where)s expired",
    "expired_on": "the certificate served on %(where)s expired on %(not_after)s",
    "not_yet_valid": "the certificate served on %(where)s is not valid yet",
    "not_yet_valid_from": "the certificate served on %(where)s is not valid yet (valid from %(not_before)s)",
    "verify_failed": "the certificate served on %(where)s for %(host)s does not verify: %(detail)s",
    "temporary_certificate": "%(where)s serves the temporary self-signed certificate %(subject)s: the box has no "
    "certificate from the issuer yet",
    "expiring_soon": "https://%(host)s:%(port)s works, but %(subject)s expires on %(not_after)s (%(days)s days left)",
    "expiring_soon_one_day": "https://%(host)s:%(port)s works, but %(subject)s expires on %(not_after)s (1 day left)",
    "expiring_soon_today": "https://%(host)s:%(port)s works, but %(subject)s expires on %(not_after)s (less than "
    "a day left)",
    "ok": "https://%(host)s:%(port)s verified: %(subject)s valid from %(not_before)s until %(not_after)s",
    "ok_tls": "https://%(host)s:%(port)s verified (%(tls_version)s): %(subject)s valid from %(not_before)s until "
    "%(not_after)s",
    "no_address": "the box has not registered an address yet",
    "ip_address_only": "the box registered with its IP address %(address)s: it has no HTTPS name yet (it registers "
    "with its HTTPS name once it has a certificate)",
    "dns_elsewhere": "%(host)s resolves to %(addresses)s (%(resolver)s), not to the box's address %(expected)s: "
    "the name points elsewhere (a local DNS record or a DNS override on the router?)",
    "dns_rebinding": "%(host)s does not resolve (%(answer)s from %(resolver)s): the router or DNS server blocks "
    "public names that resolve to private addresses such as %(expected)s (DNS rebinding protection); browsers "
    "show DNS_PROBE_FINISHED_NXDOMAIN and the homepage opens by IP address but not by name",
    "dns_rebinding_any": "%(host)s does not resolve (%(answer)s from %(resolver)s): the router or DNS server blocks "
    "public names that resolve to private addresses (DNS rebinding protection); browsers show "
    "DNS_PROBE_FINISHED_NXDOMAIN and the homepage opens by IP address but not by name",
    "dns_unresolved": "%(host)s does not resolve (%(answer)s from %(resolver)s)",
    "dns_error": "%(resolver)s gave no answer for %(host)s: %(detail)s",
}

FIXES = {
    "give_ca_file": "give a PEM file of CA certificates",
    "serve_https": "the box must serve HTTPS on port %(port)s with its certificate and key (nginx on a box); restart "
    "the box",
    "start_box": "start the box (its nginx serves HTTPS on port %(port)s), or check the port",
    "reach_box": "check that the box is on and reachable from here, and that no firewall drops port %(port)s",
    "check_box_network": "check the box's address and that this machine can reach the box's network",
    "serve_own_name": "the box must serve the certificate of its own name %(host)s (its nginx certificate): restart "
    "the box; if its address changed, it registers again with its new name",
    "renew": "the box renews its certificate when it restarts or its homepage opens: restart it; if it keeps this "
    "certificate, the error code on its homepage says why the issuer refuses",
    "set_clock": "set the clock (NTP) of the machine checking, or of the issuer if it is the one behind",
    "serve_chain": "the box must serve the whole chain (its certificate, then the issuing CA), and the devices that "
    "use it must trust the issuer's root (IoT > Certificates: the root is at /odoo-enterprise/iot/ca.pem)",
    "get_certificate": "the box's homepage shows why it has no certificate (error code); " + _ELIGIBILITY,
    "connect_box": "start the box and connect it to the database (IoT > Connect a box)",
    "remove_dns_override": "remove the override so that the name resolves to %(expected)s, or use "
    + _GOOGLE_DNS
    + " on the router or on each device",
    "use_public_dns": "if the router allows manual DNS, set it to "
    + _GOOGLE_DNS
    + "; if not, set "
    + _GOOGLE_DNS
    + " on each device that uses the box (payment terminals usually need no change)",
    "fix_zone": "the issuer's DNS zone must answer %(host)s with %(expected)s; ask its operator, or use " + _GOOGLE_DNS,
    "check_dns": "check the DNS server and the network of the machine checking, then check again",
}


def render(template, params):
    """A template of ``MESSAGES``/``FIXES`` with its parameters, in English."""
    return template % params if params else template


# === THE OUTCOME ===


@dataclass(frozen=True)
class HttpsCheck:
    """The outcome of a check: a stable ``code``, what was found and what to do.

    ``message_key`` and ``fix_key`` name the texts (``MESSAGES``, ``FIXES``; no fix when OK) and
    ``params`` fills them (str and numbers only: the addon stores it as JSON).
    ``address`` is the address connected to (or that the name resolved to); ``subject``,
    ``not_before``, ``not_after`` (aware UTC) and ``served_der`` describe the certificate the box
    served, when one was read; ``detail`` is the low-level reason (OpenSSL, resolver, errno).
    """

    code: str
    message_key: str
    fix_key: str = ""
    params: dict = field(default_factory=dict)
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
    def message(self):
        """What was found, in English."""
        return render(MESSAGES[self.message_key], self.params)

    @property
    def fix(self):
        """What to do, in English ("" when there is nothing to do)."""
        return render(FIXES[self.fix_key], self.params) if self.fix_key else ""

    @property
    def ok(self):
        return self.code == OK

    @property
    def severity(self):
        """``ok``, ``warning`` (works, renew it) or ``error`` (does not work)."""
        return {OK: "ok", EXPIRING_SOON: "warning"}.get(self.code, "error")


def _outcome(code, message_key, fix_key="", params=None, **facts):
    """An ``HttpsCheck`` whose texts are filled from its facts (host, port, address, subject,
    dates, detail) and from ``params``."""
    where = facts.get("address") or facts.get("host", "")
    port = facts.get("port", DEFAULT_PORT)
    known = {
        "host": facts.get("host", ""),
        "port": port,
        "where": f"{where}:{port}",
        "address": facts.get("address") or "",
        "subject": facts.get("subject") or "",
        "detail": facts.get("detail", ""),
        "not_before": fmt(facts["not_before"]) if facts.get("not_before") else "",
        "not_after": fmt(facts["not_after"]) if facts.get("not_after") else "",
        **(params or {}),
    }
    # Keep only what the two texts use: the stored parameters stay small and meaningful.
    used = set(re.findall(r"%\((\w+)\)s", MESSAGES[message_key] + (FIXES[fix_key] if fix_key else "")))
    return HttpsCheck(code, message_key, fix_key, {k: v for k, v in known.items() if k in used}, **facts)


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
    host = profile.normalize_host(host)
    try:
        context = trust_context(cafile, cadata)
    except (OSError, ValueError) as exc:
        return _outcome(
            CA_UNREADABLE,
            "ca_file_unreadable" if cafile else "roots_unreadable",
            "give_ca_file",
            {"cafile": cafile or "", "reason": describe_exception(exc)},
            host=host,
            port=port,
            detail=describe_exception(exc),
        )
    if address is None:
        outcome, detail = resolve_ipv4(host, resolve)
        problem = dns_outcome(host, outcome, detail, where=resolver_name)
        if problem is not None:
            return replace(problem, port=port)
        # dns_outcome passed it: the name resolves to the address written in it, or carries none.
        address = box_address(host) or detail[0]

    facts = {"host": host, "port": port, "address": address}
    try:
        served_der, version = _handshake(address, port, host, context, timeout)
    except ssl.SSLCertVerificationError as exc:
        return _verification_failed(exc, facts, timeout, now)
    except ssl.SSLError as exc:
        reason = exc.reason or str(exc)
        return _outcome(TLS_ERROR, "tls_error", "serve_https", {"reason": reason}, detail=reason, **facts)
    except ConnectionRefusedError:
        return _outcome(CONNECTION_REFUSED, "connection_refused", "start_box", **facts)
    except TimeoutError:
        return _outcome(TIMEOUT, "timeout", "reach_box", {"timeout": timeout}, **facts)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return _outcome(UNREACHABLE, "unreachable", "check_box_network", {"reason": reason}, detail=reason, **facts)
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
    served, served_der = _served_certificate(facts["address"], facts["port"], facts["host"], timeout)
    subject = None
    if served is not None:
        subject = keys.common_name(served)
        facts = {
            **facts,
            "subject": subject,
            "not_before": keys.not_valid_before(served),
            "not_after": keys.not_valid_after(served),
            "served_der": served_der,
        }
    facts = {**facts, "detail": detail}
    if subject == TEMPORARY_CN:
        return _outcome(TEMPORARY_CERTIFICATE, "temporary_certificate", "get_certificate", **facts)
    if exc.verify_code in _NAME_MISMATCH:
        message = "name_mismatch_subject" if subject else "name_mismatch"
        return _outcome(NAME_MISMATCH, message, "serve_own_name", **facts)
    if exc.verify_code == _CERT_HAS_EXPIRED:
        return _outcome(EXPIRED, "expired_on" if served else "expired", "renew", **facts)
    if exc.verify_code == _CERT_NOT_YET_VALID:
        return _outcome(NOT_YET_VALID, "not_yet_valid_from" if served else "not_yet_valid", "set_clock", **facts)
    return _outcome(VERIFY_FAILED, "verify_failed", "serve_chain", **facts)


def validity_outcome(subject, not_before, not_after, now=None, **facts):
    """The outcome of a verified certificate: OK, or what about its subject or dates is wrong.

    Also re-judges a stored outcome by date alone (no connection), e.g. daily.
    :param facts: ``host``, ``port``, ``address``, ``tls_version``, ``served_der`` for the result
    :return: an ``HttpsCheck``
    """
    now = now or keys.utcnow()
    facts = {**facts, "subject": subject, "not_before": not_before, "not_after": not_after}
    if subject == TEMPORARY_CN:
        return _outcome(TEMPORARY_CERTIFICATE, "temporary_certificate", "get_certificate", **facts)
    if now > not_after:
        return _outcome(EXPIRED, "expired_on", "renew", **facts)
    if now < not_before:
        return _outcome(NOT_YET_VALID, "not_yet_valid_from", "set_clock", **facts)
    if not_after - now < EXPIRY_WARNING:
        days = (not_after - now).days
        message = {0: "expiring_soon_today", 1: "expiring_soon_one_day"}.get(days, "expiring_soon")
        return _outcome(EXPIRING_SOON, message, "renew", {"days": days}, **facts)
    version = facts.get("tls_version")
    return _outcome(OK, "ok_tls" if version else "ok", params={"tls_version": version or ""}, **facts)


def no_https_name(address):
    """The outcome for a box known only by its IPv4 address (or by nothing): no HTTPS name to check."""
    if not address:
        return _outcome(NO_HTTPS_NAME, "no_address", "connect_box")
    return _outcome(NO_HTTPS_NAME, "ip_address_only", "get_certificate", address=address)


# === DNS ===


def box_address(host):
    """The IPv4 address written in a box host name (``10-0-0-5.<label>.<zone>`` -> ``10.0.0.5``), or None."""
    if not profile.subject_of_box_host(host):
        return None
    return profile.normalize_host(host).split(".", 1)[0].replace("-", ".")


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
        return "error", describe_exception(exc)
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
    params = {"resolver": where, "expected": expected or ""}
    if outcome == "addresses":
        if expected is None or expected in detail:
            return None
        params["addresses"] = ", ".join(detail)
        return _outcome(DNS_ELSEWHERE, "dns_elsewhere", "remove_dns_override", params, address=detail[0], **facts)
    if outcome in ("nxdomain", "no-answer"):
        params["answer"] = "NXDOMAIN" if outcome == "nxdomain" else NO_ADDRESS
        if expected is None:
            return _outcome(DNS_NXDOMAIN, "dns_rebinding_any", "use_public_dns", params, **facts)
        if ipaddress.IPv4Address(expected).is_private:
            return _outcome(DNS_NXDOMAIN, "dns_rebinding", "use_public_dns", params, **facts)
        return _outcome(DNS_NXDOMAIN, "dns_unresolved", "fix_zone", params, **facts)
    return _outcome(DNS_ERROR, "dns_error", "check_dns", params, **facts)


# === FORMATTING ===


def fmt(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def describe_exception(exc):
    """An exception in one line: its type and message."""
    return f"{type(exc).__name__}: {exc}"
