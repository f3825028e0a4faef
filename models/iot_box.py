import datetime
import hmac
import ipaddress
import logging

import requests

from odoo import _, api, fields, models
from odoo.exceptions import UserError, ValidationError

from ..iot_pki import codes, https_check, profile, service

_logger = logging.getLogger(__name__)

LOG_PATH = "/hw_drivers/download_logs"
LOG_TIMEOUT = (5, 30)  # seconds: connect, read
LOG_MAX_BYTES = 5 * 1024 * 1024
BOX_HTTP_PORT = 8069
BOX_HTTPS_PORT = 443
HTTPS_STATES = [("unknown", "Not checked"), ("ok", "OK"), ("warning", "Renew soon"), ("error", "Not working")]
HTTPS_CODES = [(code, code.replace("_", " ").capitalize()) for code in https_check.CODES]
SERVER_RESOLVER = "the Odoo server's resolver"  # the resolver's name in the check's messages
# Parameter values that are words: shown translated (registered in core_i18n.py).
TRANSLATED_PARAMS = frozenset((*https_check.PHRASES, SERVER_RESOLVER))


class IotBox(models.Model):
    _name = "iot.box"
    _description = "IoT Box"
    _order = "name, id"

    name = fields.Char(required=True)
    identifier = fields.Char(required=True, copy=False, index=True, help="The box's MAC address.")
    ip = fields.Char(
        string="Address",
        help="What the box reports: its IPv4 address, or its HTTPS host name once it has a certificate.",
    )
    version = fields.Char(string="Image Version")
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, index=True)
    database_id = fields.Many2one("iot.database", index=True, help="Set from the box's certificate when it registers.")
    device_ids = fields.One2many("iot.device", "box_id", string="Devices")
    device_count = fields.Integer(compute="_compute_device_count")
    https_url = fields.Char(string="Homepage", compute="_compute_https")
    certificate_id = fields.Many2one("iot.certificate", compute="_compute_https")
    certificate_subject = fields.Char(compute="_compute_https")
    certificate_not_before = fields.Datetime(string="Valid From", compute="_compute_https")
    certificate_not_after = fields.Datetime(string="Valid Until", compute="_compute_https")
    last_error_code = fields.Char(
        compute="_compute_last_error_code",
        help="What the box shows after the last certificate request of its database.",
    )
    last_error_meaning = fields.Char(string="What the Error Means", compute="_compute_last_error_code")
    # What the last Check HTTPS found, from the Odoo server (stored: the list shows which boxes work).
    https_state = fields.Selection(
        HTTPS_STATES, string="HTTPS", required=True, default="unknown", readonly=True, copy=False, index=True
    )
    https_code = fields.Selection(HTTPS_CODES, string="HTTPS Outcome", readonly=True, copy=False)
    # The core's text keys and parameters are stored, the texts rendered in the reader's language.
    https_message_key = fields.Char(string="HTTPS Message Code", readonly=True, copy=False)
    https_fix_key = fields.Char(string="HTTPS Fix Code", readonly=True, copy=False)
    https_params = fields.Json(string="HTTPS Check Details", readonly=True, copy=False)
    https_message = fields.Text(string="HTTPS Check", compute="_compute_https_texts")
    https_fix = fields.Text(string="How to Fix", compute="_compute_https_texts")
    https_checked_at = fields.Datetime(string="HTTPS Checked On", readonly=True, copy=False)
    https_subject = fields.Char(string="Served Certificate", readonly=True, copy=False)
    https_not_before = fields.Datetime(string="Served Valid From", readonly=True, copy=False)
    https_not_after = fields.Datetime(string="Served Valid Until", readonly=True, copy=False)

    _sql_constraints = [
        ("identifier_unique", "UNIQUE(identifier)", "Another IoT box has this identifier."),
    ]

    # === COMPUTE ===

    @api.depends("device_ids")
    def _compute_device_count(self):
        for box in self:
            box.device_count = len(box.device_ids)

    @api.depends("ip")
    def _compute_https(self):
        certificates = self.env["iot.certificate"].sudo()
        for box in self:
            subject = profile.subject_of_box_host(box.ip)
            box.https_url = f"https://{box.ip}" if subject else (box.ip and f"http://{box.ip}:{BOX_HTTP_PORT}")
            certificate = subject and certificates.search(
                [("subject_cn", "=", subject), ("state", "=", "valid")], order="not_after desc", limit=1
            )
            box.certificate_id = certificate or False
            box.certificate_subject = certificate.subject_cn if certificate else False
            box.certificate_not_before = certificate.not_before if certificate else False
            box.certificate_not_after = certificate.not_after if certificate else False

    @api.depends("https_message_key", "https_fix_key", "https_params")
    @api.depends_context("lang")
    def _compute_https_texts(self):
        for box in self:
            params = {}
            for name, value in (box.https_params or {}).items():
                params[name] = _(value) if value in TRANSLATED_PARAMS else value
            # The core's templates are registered for translation in core_i18n.py.
            message = https_check.MESSAGES.get(box.https_message_key or "")
            fix = https_check.FIXES.get(box.https_fix_key or "")
            box.https_message = _(message, **params) if message else False
            box.https_fix = _(fix, **params) if fix else False

    @api.depends("database_id")
    @api.depends_context("lang")
    def _compute_last_error_code(self):
        requests_ = self.env["iot.request"].sudo()
        for box in self:
            last = box.database_id and requests_.search([("database_id", "=", box.database_id.id)], limit=1)
            code = (last and service.box_error_code(last.decision)) or False
            box.last_error_code = code
            # The catalogue's texts are registered for translation in core_i18n.py.
            entry = code and codes.BOX_ERRORS.get(code.split()[0])  # "ERR_..._STATUS 429": the code, then the status
            box.last_error_meaning = _(entry.meaning) if entry else False

    # === CONSTRAINT ===

    @api.constrains("ip")
    def _check_ip(self):
        for box in self.filtered("ip"):
            if not _is_ipv4(box.ip) and not profile.subject_of_box_host(box.ip):
                raise ValidationError(
                    _("%(ip)s is not a box address: use an IPv4 address or the box's HTTPS host name.", ip=box.ip)
                )

    # === CRUD ===

    def write(self, vals):
        # A new address is a new HTTPS name (or none): the last check said nothing about it.
        moved = self.filtered(lambda box: box.ip != (vals["ip"] or False)) if "ip" in vals else self.browse()
        result = super().write(vals)
        if moved:
            super(IotBox, moved).write(_https_values(None))
        return result

    # === ACTION ===

    def action_check_https(self):
        """Check the box's HTTPS from the Odoo server as a browser would (DNS, connection, chain,
        name, validity) and store the outcome and its fix on the box.

        :return: True (the form shows the outcome)
        """
        self.ensure_one()
        result = self._https_check()
        _logger.info("check https: box %s (%s): %s", self.id, self.ip, result.code)
        self.write({**_https_values(result), "https_checked_at": fields.Datetime.now()})
        return True

    def action_download_logs(self):
        """Fetch the box's log from the Odoo server, keep it as an attachment, download it.

        Works where the browser cannot reach the box, and from an HTTPS page to an HTTP box.
        :return: an act_url downloading the attachment
        """
        self.ensure_one()
        url, verify = self._log_url()
        content = self._iot_box_request(url, verify)
        attachment = self.env["ir.attachment"].create(
            {
                "name": f"{self.name or self.identifier}-{fields.Datetime.now():%Y%m%d-%H%M%S}.log",
                "raw": content,
                "mimetype": "text/plain",
                "res_model": self._name,
                "res_id": self.id,
            }
        )
        return {
            "type": "ir.actions.act_url",
            "url": f"/web/content/{attachment.id}?download=true",
            "target": "self",
        }

    # === CRON ===

    @api.model
    def _cron_https_expiry(self):
        """Daily: re-judge the stored checks whose served certificate ends within the warning
        period, by date alone (no connection), so a box's HTTPS does not expire silently."""
        now = fields.Datetime.now()
        boxes = self.search(
            [
                ("https_state", "in", ("ok", "warning")),
                ("https_not_before", "!=", False),
                ("https_not_after", "<", now + https_check.EXPIRY_WARNING),
            ]
        )
        port = self._https_port()
        for box in boxes:
            # The facts of the check that was stored: its port, and the address the box's name
            # resolved to (the check passed only when the name resolved to the address in it).
            host = profile.normalize_host(box.ip)
            result = https_check.validity_outcome(
                box.https_subject,
                _aware(box.https_not_before),
                _aware(box.https_not_after),
                now=_aware(now),
                host=host,
                port=(box.https_params or {}).get("port", port),
                address=https_check.box_address(host),
            )
            if (result.code, result.message_key, result.params) != (
                box.https_code,
                box.https_message_key,
                box.https_params or {},
            ):
                box.write(_https_values(result))
        return True

    # === BUSINESS ===

    def _https_check(self):
        """The one place the server checks a box's HTTPS: its name, the box HTTPS port, our
        root for names in our zone (else the system's roots), an explicit timeout.

        :return: a core ``https_check.HttpsCheck``
        """
        if not profile.subject_of_box_host(self.ip):
            return https_check.no_https_name(self.ip)
        trust = self.env["iot.issuer"]._box_trust_file(self.ip)
        return https_check.check_https(
            self.ip,
            self._https_port(),
            cafile=trust if isinstance(trust, str) else None,
            timeout=https_check.DEFAULT_TIMEOUT,
            resolver_name=SERVER_RESOLVER,
        )

    @api.model
    def _https_port(self):
        params = self.env["ir.config_parameter"].sudo()
        return int(params.get_param("iot_https.box_https_port", BOX_HTTPS_PORT))

    def _log_url(self):
        """:return: (url, verify) of the box's log: https through its name, else http on its IP."""
        if not self.ip:
            raise UserError(_("The IoT box %s has no address yet: start it and connect it first.", self.name))
        params = self.env["ir.config_parameter"].sudo()
        if profile.subject_of_box_host(self.ip):
            port = self._https_port()
            # Names in our zone carry our certificates: verified against our root.
            verify = self.env["iot.issuer"]._box_trust_file(self.ip)
            return f"https://{self.ip}:{port}{LOG_PATH}", verify
        port = int(params.get_param("iot_https.box_http_port", BOX_HTTP_PORT))
        return f"http://{self.ip}:{port}{LOG_PATH}", True

    def _iot_box_request(self, url, verify=True):
        """The one place the server calls a box: explicit timeout, size cap, clear errors.

        :return: the body (bytes): its last LOG_MAX_BYTES at most, after a notice when the start was dropped
        :raise UserError: the box cannot be reached or answers with an error
        """
        try:
            with requests.get(url, timeout=LOG_TIMEOUT, stream=True, verify=verify) as response:
                if response.status_code != 200:
                    raise UserError(
                        _(
                            "The IoT box %(box)s answered %(status)s to %(url)s.",
                            box=self.name,
                            status=response.status_code,
                            url=url,
                        )
                    )
                tail, dropped = bytearray(), 0
                for chunk in response.iter_content(64 * 1024):
                    tail += chunk
                    if len(tail) > 2 * LOG_MAX_BYTES:  # trim now and then, keeping the end of the log
                        dropped += len(tail) - LOG_MAX_BYTES
                        del tail[:-LOG_MAX_BYTES]
        except requests.exceptions.RequestException as exc:
            _logger.info("download logs: %s unreachable: %s", url, exc)
            raise UserError(
                _(
                    "The IoT box %(box)s cannot be reached at %(url)s from the Odoo server. "
                    "Check that it is on and that the server can reach its network.\n\n%(error)s",
                    box=self.name,
                    url=url,
                    error=type(exc).__name__,
                )
            ) from None
        if len(tail) > LOG_MAX_BYTES:
            dropped += len(tail) - LOG_MAX_BYTES
            del tail[:-LOG_MAX_BYTES]
        content = bytes(tail)
        if dropped:
            notice = _("[log truncated: the first %s bytes were dropped]\n", dropped)
            content = notice.encode() + content
        return content

    @api.model
    def _register_box(self, setup):
        """Create or update a box from a stock box registration (POST /iot/setup).

        :param setup: a core ``protocol.SetupRequest``
        :return: the box's bus channel, or False when the token is wrong (nothing changed)
        """
        params = self.env["ir.config_parameter"].sudo()
        expected = params.get_param("iot_https.pairing_token") or ""
        if not expected or not hmac.compare_digest(setup.box["token"].encode(), expected.encode()):
            return False
        boxes = self.sudo().with_context(active_test=False)
        box = boxes.search([("identifier", "=", setup.box["identifier"])], limit=1)
        values = {
            "name": setup.box["name"] or setup.box["identifier"],
            "ip": setup.box["ip"]
            if (_is_ipv4(setup.box["ip"]) or profile.subject_of_box_host(setup.box["ip"]))
            else False,
            "version": setup.box["version"],
        }
        if not box:
            box = boxes.create({**values, "identifier": setup.box["identifier"]})
        else:
            box.write(values)
        if box.certificate_id:
            box.database_id = box.certificate_id.database_id
        box._sync_devices(setup.devices)
        return params.get_param("iot_https.ws_channel") or "iot_https"

    def _sync_devices(self, devices):
        existing = {device.identifier: device for device in self.device_ids}
        for identifier, description in devices.items():
            values = {
                "name": description["name"] or identifier,
                "device_type": description["type"],
                "manufacturer": description["manufacturer"],
                "connection": description["connection"],
                "connected": True,
            }
            if identifier in existing:
                existing.pop(identifier).write(values)
            else:
                self.env["iot.device"].sudo().create({**values, "box_id": self.id, "identifier": identifier})
        for device in existing.values():
            device.connected = False


def _https_values(result):
    """:return: the stored fields of a core ``HttpsCheck`` (None: not checked)."""
    if result is None:
        return {
            "https_state": "unknown",
            "https_code": False,
            "https_message_key": False,
            "https_fix_key": False,
            "https_params": False,
            "https_checked_at": False,
            "https_subject": False,
            "https_not_before": False,
            "https_not_after": False,
        }
    return {
        "https_state": result.severity,
        "https_code": result.code,
        "https_message_key": result.message_key,
        "https_fix_key": result.fix_key or False,
        "https_params": result.params,
        "https_subject": result.subject or False,
        "https_not_before": _naive_utc(result.not_before),
        "https_not_after": _naive_utc(result.not_after),
    }


def _naive_utc(moment):
    return moment.astimezone(datetime.timezone.utc).replace(tzinfo=None) if moment else False


def _aware(moment):
    return moment.replace(tzinfo=datetime.timezone.utc) if moment else None


def _is_ipv4(value):
    try:
        ipaddress.IPv4Address(value or "")
    except ValueError:
        return False
    return True
