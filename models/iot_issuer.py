"""The Odoo side of the issuer: the CA on disk, settings from system
parameters, and the ORM as the core's store. Every decision is the core's
(``iot_pki.service``); this file only adapts.
"""

import atexit
import datetime
import logging
import secrets
import threading
from pathlib import Path
from urllib.parse import urlsplit

import psycopg2

from odoo import api, fields, models
from odoo.tools import config

from ..iot_pki import ca as ca_module
from ..iot_pki import keys, profile, protocol, ratelimit, service

_logger = logging.getLogger(__name__)

# One loaded CA per database and process: loading decrypts the issuing key.
_CA_CACHE = {}
# Legacy-mode keys made ahead of time, per key type, in each worker's memory only.
_KEY_POOLS = {key_type: service.KeyPool(key_type) for key_type in ("rsa2048", "p256")}


@atexit.register
def _close_key_pools():
    # A refill thread still inside OpenSSL when the worker exits can crash it.
    for pool in _KEY_POOLS.values():
        pool.close()


_CA_LOCK = threading.Lock()
PASSPHRASE_OPTION = "iot_https_ca_passphrase"  # noqa: S105 - the odoo.conf option's name


def _naive_utc(moment):
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None)


class OrmStore(service.IssuerStore):
    """The core's store over the ORM. Rights are elevated only for these lookups and records."""

    def __init__(self, env):
        self.env = env
        self.databases = {}  # uuid -> iot.database, for the records made after the lookup
        self.certificate = None

    def find_database(self, db_uuid):
        database = self.env["iot.database"].sudo().search([("uuid", "=", db_uuid)], limit=1)
        if not database:
            return None
        self.databases[database.uuid] = database
        return database._facts()

    def reserve_certificate(self, facts, template, mode):
        try:
            with self.env.cr.savepoint():
                self.certificate = (
                    self.env["iot.certificate"]
                    .sudo()
                    .create(
                        {
                            "database_id": self.databases[facts.uuid].id,
                            "subject_cn": template.subject_cn,
                            "serial": f"{template.serial:x}",
                            "not_before": _naive_utc(template.not_before),
                            "not_after": _naive_utc(template.not_after),
                            "mode": mode,
                            "state": "valid",
                        }
                    )
                )
                self.certificate.flush_recordset()
        except psycopg2.IntegrityError:
            return False
        return True

    def complete_certificate(self, template, certificate):
        self.certificate.write(
            {"fingerprint": keys.fingerprint_sha256(certificate), "certificate_pem": keys.certificate_pem(certificate)}
        )

    def discard_certificate(self, template):
        self.certificate.unlink()
        self.certificate = None

    def rate_limit_wait(self, limits, now):
        return self.env["iot.rate.bucket"].sudo()._wait_seconds(limits, now)

    def record_failure(self, limits, now):
        self.env["iot.rate.bucket"].sudo()._record_failure(limits, now)


class IotIssuer(models.AbstractModel):
    _name = "iot.issuer"
    _description = "IoT Certificate Issuer"

    # === CA ===

    @api.model
    def _ca_directory(self):
        """Where this database's CA lives: outside the database, so a dump alone reveals no key."""
        return Path(config["data_dir"]) / "iot_https" / self.env.cr.dbname / "ca"

    @api.model
    def _get_ca(self):
        """The loaded CA, created on first use (never overwritten)."""
        directory = self._ca_directory()
        with _CA_LOCK:
            authority = _CA_CACHE.get(str(directory))
            if authority is None or not (directory / ca_module.ROOT_CERT).exists():
                company = self.env.company.sudo()
                country = (company.country_id.code or "BE").upper()
                authority = ca_module.CertificateAuthority.load_or_create(
                    directory,
                    passphrase=config.get(PASSPHRASE_OPTION) or None,
                    organization=(company.name or "iot_https")[:64],
                    country=country,
                )
                _CA_CACHE[str(directory)] = authority
        return authority

    @api.model
    def _box_trust_file(self, host):
        """CA file to verify a box's HTTPS: our root for names in our zone, else the system's."""
        zone = profile.normalize_host(self._settings().zone)
        if profile.normalize_host(host).endswith("." + zone):
            return str(self._ca_directory() / ca_module.ROOT_CERT)
        return True

    # === SETTINGS ===

    @api.model
    def _settings(self):
        params = self.env["ir.config_parameter"].sudo()
        return profile.ProfileSettings(
            zone=params.get_param("iot_https.zone") or "",
            public_url=params.get_param("iot_https.public_url") or params.get_param("web.base.url") or "",
            validity_days=int(params.get_param("iot_https.validity_days") or profile.DEFAULT_VALIDITY_DAYS),
            legacy_key_type=params.get_param("iot_https.legacy_key_type") or "rsa2048",
        )

    @api.model
    def _service(self):
        params = self.env["ir.config_parameter"].sudo()
        enabled = params.get_param("iot_https.issuance_enabled", "True") not in ("False", "0", "")
        settings = self._settings()
        return service.IssuanceService(
            self._get_ca(),
            settings,
            key_source=_KEY_POOLS[settings.legacy_key_type],
            enabled=enabled,
            uuid_limit=ratelimit.Limit.parse(params.get_param("iot_https.uuid_rate_limit") or "10/60"),
            client_limit=ratelimit.Limit.parse(params.get_param("iot_https.client_rate_limit") or "30/10"),
        )

    # === REQUESTS ===

    @api.model
    def _handle_x509(self, body, client_address):
        """Answer a certificate request body; record it.

        :return: a core ``protocol.Answer``
        """
        try:
            issuer = self._service()
        except (profile.ProfileError, ca_module.CAError, ValueError) as exc:
            _logger.error("iot_https cannot issue: %s", exc)
            return protocol.error(
                503, "unavailable", "the issuer is not configured; see its log", {"Retry-After": "300"}
            )
        store = OrmStore(self.env)
        answer, outcome = issuer.handle(body, store, client_address or "")
        database = store.databases.get(outcome.db_uuid)
        self.env["iot.request"].sudo().create(
            {
                "database_id": database.id if database else False,
                "claimed_uuid": _claimed_uuid(body),
                "decision": outcome.decision,
                "detail": outcome.detail[:500] or False,
                "mode": outcome.mode or False,
                "client_address": client_address,
                "certificate_id": store.certificate.id if store.certificate else False,
            }
        )
        _logger.info("x509 %s", outcome.log_line(client_address))
        return answer

    @api.model
    def _download(self, what):
        """The CA material at the URLs embedded in certificates: root PEM, issuing DER, CRL."""
        issuer = self._service()
        if what == "root":
            return issuer.root_answer()
        if what == "issuing":
            return issuer.issuing_answer()
        revoked = (
            self.env["iot.certificate"]
            .sudo()
            .search([("state", "=", "revoked"), ("not_after", ">", fields.Datetime.now())])
        )
        return issuer.crl_answer(
            [(int(c.serial, 16), c.revoked_at.replace(tzinfo=datetime.timezone.utc)) for c in revoked]
        )

    @api.model
    def _handle_setup(self, body):
        """Answer a stock box registration (POST /iot/setup)."""
        try:
            setup = protocol.parse_setup_request(body)
        except protocol.ProtocolError as exc:
            return protocol.error(400, "invalid_request", str(exc))
        channel = self.env["iot.box"]._register_box(setup)
        return protocol.setup_answer(setup.request_id, channel)


def _claimed_uuid(body):
    """The db_uuid as sent, for admins asking why a box has no HTTPS (never the enterprise code)."""
    try:
        return protocol.parse_request(body).db_uuid[:128]
    except protocol.ProtocolError:
        return False


def ensure_ca_on_install(env):
    """post_init_hook: settings and CA exist right after install, with no manual step."""
    params = env["ir.config_parameter"].sudo()
    if not params.get_param("iot_https.pairing_token"):
        params.set_param("iot_https.pairing_token", secrets.token_urlsafe(32))
    if not params.get_param("iot_https.ws_channel"):
        params.set_param("iot_https.ws_channel", "iot_channel-" + secrets.token_hex(16))
    if not params.get_param("iot_https.zone"):
        params.set_param("iot_https.zone", default_zone(params.get_param("web.base.url") or ""))
    env["iot.issuer"]._get_ca()


def default_zone(base_url):
    """``iot.<host of web.base.url>`` when that is a DNS name, else ``iot.localhost``."""
    host = urlsplit(base_url).hostname or ""
    try:
        return profile.validate_zone("iot." + host)
    except profile.ProfileError:
        return "iot.localhost"
