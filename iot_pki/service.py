"""The issuing service: one implementation of a certificate request, from the
raw body to the answer. The mock issuer and the Odoo controller adapt it to
their HTTP servers and give it a store (SQLite or the ORM).

Flow: parse -> look up -> check credentials -> decide -> reserve serial
(recorded) -> lint -> sign -> record -> answer. Any failure after the
reservation discards it, and no certificate leaves unrecorded.
"""

import logging
import os
import queue
import threading
import time
from dataclasses import dataclass

from . import codes, keys, protocol, ratelimit
from .ca import new_serial
from .eligibility import credentials_match, evaluate
from .profile import lint_template, make_template, sign_template

_logger = logging.getLogger(__name__)

ISSUED = "issued"
INVALID_REQUEST = "invalid_request"
INTERNAL_ERROR = "internal_error"
RATE_LIMITED = "rate_limited"
SERIAL_ATTEMPTS = 3


class IssuanceError(Exception):
    """The issuer cannot sign (a lint finding or no free serial): a bug or a configuration error."""


@dataclass
class Outcome:
    """What happened to one request: logged and recorded by the adapters.

    ``db_uuid`` is set only when the credentials matched a known database.
    Never holds a private key.
    """

    decision: str
    mode: str = ""
    db_uuid: str = ""
    serial: int = None
    subject_cn: str = ""
    detail: str = ""

    @property
    def issued(self):
        return self.decision == ISSUED

    def log_line(self, client=""):
        parts = [f"decision={self.decision}", f"mode={self.mode or '-'}", f"client={client or '-'}"]
        if self.db_uuid:
            parts.append(f"db={self.db_uuid}")
        if self.serial is not None:
            parts.append(f"serial={self.serial:x}")
        if self.detail:
            parts.append(f"detail={self.detail!r}")
        return " ".join(parts)


class IssuerStore:
    """What the service needs from storage. Adapters implement every method."""

    def find_database(self, db_uuid):
        """:return: the ``DatabaseFacts`` of ``db_uuid``, or None"""
        raise NotImplementedError

    def reserve_certificate(self, facts, template, mode):
        """Record a certificate about to be signed.

        :return: False when the serial is already taken (the service draws another)
        """
        raise NotImplementedError

    def complete_certificate(self, template, certificate):
        """Mark the reserved certificate as issued (and record what it keeps of it: fingerprint, PEM)."""
        raise NotImplementedError

    def discard_certificate(self, template):
        """Forget a reservation that was not signed."""
        raise NotImplementedError

    def rate_limit_wait(self, limits, now):
        """Seconds to wait before the next attempt, 0 when allowed.

        :param limits: (key, ``ratelimit.Limit``) pairs; use ``ratelimit.retry_after``
        """
        raise NotImplementedError

    def record_failure(self, limits, now):
        """Take one token from each bucket (``ratelimit.take``), atomically across processes."""
        raise NotImplementedError


class KeyGenerator:
    """Keys for legacy mode (stock boxes), made on demand."""

    def take(self, key_type):
        return keys.generate_key(key_type)


class KeyPool:
    """Keys for legacy mode made ahead of time: memory only, bounded, refilled in the background.

    An RSA-2048 key takes about 75 ms to make: a burst of boxes served from the
    pool waits for none. When the pool is empty a key is made on demand. The
    keys are never written anywhere. Safe across fork (Odoo's prefork workers):
    a process that did not start the refill thread starts its own.
    """

    # Seconds without a take before refilling: a burst keeps every core for itself.
    QUIET = 0.2

    def __init__(self, key_type, size=32):
        self.key_type = key_type
        self.size = size
        self._pid = None
        self._lock = threading.Lock()
        self._last_take = 0.0

    def _start(self):
        with self._lock:
            if self._pid == os.getpid():
                return
            self._queue = queue.Queue(maxsize=self.size)
            self._stop = threading.Event()
            self._thread = threading.Thread(
                target=self._refill, args=(self._queue, self._stop), name="key-pool", daemon=True
            )
            self._thread.start()
            self._pid = os.getpid()

    def _refill(self, pool, stop):
        key = None
        while not stop.is_set():
            quiet_for = time.monotonic() - self._last_take
            if quiet_for < self.QUIET:
                stop.wait(self.QUIET - quiet_for)
                continue
            key = key or keys.generate_key(self.key_type)
            try:
                pool.put(key, timeout=0.5)  # waits while the pool is full, watching for close()
                key = None
            except queue.Full:
                pass

    def close(self):
        """Stop the refill thread (a thread inside OpenSSL at interpreter exit can crash it)."""
        if self._pid == os.getpid():
            self._stop.set()
            self._thread.join(10)

    def ready(self):
        """How many keys are waiting."""
        self._start()
        return self._queue.qsize()

    def take(self, key_type):
        if key_type != self.key_type:
            return keys.generate_key(key_type)
        self._start()
        self._last_take = time.monotonic()
        try:
            return self._queue.get_nowait()
        except queue.Empty:
            return keys.generate_key(key_type)


class IssuanceService:
    def __init__(
        self,
        ca,
        settings,
        key_source=None,
        enabled=True,
        uuid_limit=ratelimit.DEFAULT_UUID_LIMIT,
        client_limit=ratelimit.DEFAULT_CLIENT_LIMIT,
    ):
        """
        :param ca: a loaded ``CertificateAuthority``
        :param settings: the ``ProfileSettings``
        :param key_source: gives legacy-mode keys (``take(key_type)``)
        :param enabled: False on a neutralized copy: every request is refused
        :param uuid_limit: failed attempts allowed per database UUID (``ratelimit.Limit``)
        :param client_limit: failed attempts allowed per client address
        """
        self.ca = ca
        self.settings = settings
        self.key_source = key_source or KeyGenerator()
        self.enabled = enabled
        self.uuid_limit = uuid_limit
        self.client_limit = client_limit

    # === CERTIFICATE REQUESTS ===

    def handle(self, body, store, client=""):
        """Answer one ``POST /odoo-enterprise/iot/x509`` body.

        :param body: the raw request body (bytes)
        :param store: an ``IssuerStore``
        :param client: the client's address (rate limits)
        :return: (``protocol.Answer``, ``Outcome``)
        """
        now = time.time()
        client_limits = [("client:" + client, self.client_limit)]
        limited = self._rate_limited(store, client_limits, now)
        if limited:
            return limited
        try:
            request = protocol.parse_request(body)
        except protocol.ProtocolError as exc:
            store.record_failure(client_limits, now)
            return protocol.error(400, INVALID_REQUEST, str(exc)), Outcome(INVALID_REQUEST, detail=str(exc))

        limits = [("uuid:" + request.db_uuid, self.uuid_limit), *client_limits]
        limited = self._rate_limited(store, limits[:1], now, request.mode)
        if limited:
            return limited
        facts = store.find_database(request.db_uuid)
        if not credentials_match(facts, request.enterprise_code):
            store.record_failure(limits, now)
            # The same answer for an unknown UUID and a wrong code: nothing revealed.
            return protocol.refused(request), Outcome(codes.UNKNOWN_CREDENTIALS, request.mode)

        if not self.enabled:
            return self._refuse(request, facts, codes.ISSUANCE_DISABLED)
        decision = evaluate(facts)
        if not decision.eligible:
            return self._refuse(request, facts, decision.reason)

        private_key = None
        if request.csr_pem is not None:
            try:
                public_key = keys.load_csr(request.csr_pem)
            except keys.KeyPolicyError as exc:
                return self._refuse(request, facts, codes.CSR_REJECTED, str(exc))
        else:
            private_key = self.key_source.take(self.settings.legacy_key_type)
            public_key = private_key.public_key()

        try:
            template, certificate = self.issue(facts, public_key, request.mode, store)
        except IssuanceError as exc:
            _logger.error("certificate not issued: %s", exc)
            answer = protocol.error(500, INTERNAL_ERROR, "the issuer could not sign; see its log")
            return answer, Outcome(INTERNAL_ERROR, request.mode, facts.uuid, detail=str(exc))

        answer = protocol.issued(
            request,
            keys.certificate_pem(certificate) + self.ca.issuing_pem,
            template.subject_cn,
            keys.private_key_pem(private_key) if private_key is not None else None,
        )
        return answer, Outcome(ISSUED, request.mode, facts.uuid, template.serial, template.subject_cn)

    def _rate_limited(self, store, limits, now, mode=""):
        """A 429 answer when a bucket is empty, else None."""
        wait = store.rate_limit_wait(limits, now)
        if not wait:
            return None
        answer = protocol.error(
            429,
            RATE_LIMITED,
            f"too many failed attempts: retry in {wait} seconds",
            {"Retry-After": str(wait)},
        )
        return answer, Outcome(RATE_LIMITED, mode, detail=f"retry after {wait} s ({limits[0][0].split(':')[0]})")

    def _refuse(self, request, facts, reason, detail=""):
        message = codes.REFUSALS[reason].meaning + (f" {detail}" if detail else "")
        outcome = Outcome(reason, request.mode, facts.uuid, detail=detail)
        return protocol.refused(request, reason, message), outcome

    def issue(self, facts, public_key, mode, store):
        """Reserve a serial (recorded), lint, sign, record: the Boulder order.

        :return: (template, certificate)
        :raise IssuanceError: on a lint finding or when no serial could be reserved
        """
        for _attempt in range(SERIAL_ATTEMPTS):
            template = make_template(self.settings, self.ca, facts.uuid, public_key, new_serial())
            if store.reserve_certificate(facts, template, mode):
                break
        else:
            raise IssuanceError(f"no free serial after {SERIAL_ATTEMPTS} draws")
        findings = lint_template(template, self.ca)
        if findings:
            store.discard_certificate(template)
            raise IssuanceError("lint: " + "; ".join(findings))
        certificate = sign_template(template, self.ca)
        store.complete_certificate(template, certificate)
        return template, certificate

    # === CA DOWNLOADS ===

    def root_answer(self):
        return protocol.Answer(200, self.ca.root_pem.encode("ascii"), "application/x-pem-file")

    def issuing_answer(self):
        return protocol.Answer(200, self.ca.issuing_der, "application/pkix-cert")

    def crl_answer(self, revoked):
        """:param revoked: (serial, revocation datetime) pairs of the revoked certificates"""
        return protocol.Answer(200, self.ca.build_crl(revoked), "application/pkix-crl")


# HTTP status of the answers that are not HTTP 200 (refusals and issuance are 200).
DECISION_STATUS = {INVALID_REQUEST: 400, RATE_LIMITED: 429, INTERNAL_ERROR: 500}


def box_error_code(decision):
    """What a stock box shows after an answer with this decision ("" when it got its certificate)."""
    if decision == ISSUED:
        return ""
    if decision in DECISION_STATUS:
        return f"{codes.LOAD_REQUEST_STATUS} {DECISION_STATUS[decision]}"
    return codes.LOAD_REQUEST_NO_RESULT
