from odoo import _, api, fields, models
from odoo.exceptions import UserError

CERTIFICATE_STATES = [("valid", "Valid"), ("revoked", "Revoked"), ("expired", "Expired")]
CERTIFICATE_MODES = [("legacy", "Legacy (key made by the issuer)"), ("csr", "CSR (key kept by the box)")]


class IotCertificate(models.Model):
    """A certificate this database issued. Never holds a private key."""

    _name = "iot.certificate"
    _description = "Issued IoT Certificate"
    _rec_name = "subject_cn"
    _order = "not_before desc, id desc"

    database_id = fields.Many2one("iot.database", required=True, index=True, ondelete="restrict")
    subject_cn = fields.Char(string="Subject", required=True, index=True, readonly=True)
    serial = fields.Char(string="Serial (hex)", required=True, readonly=True, copy=False)
    not_before = fields.Datetime(string="Valid From", required=True, readonly=True)
    not_after = fields.Datetime(string="Valid Until", required=True, readonly=True, index=True)
    fingerprint = fields.Char(string="SHA-256 Fingerprint", readonly=True)
    mode = fields.Selection(CERTIFICATE_MODES, required=True, readonly=True)
    state = fields.Selection(CERTIFICATE_STATES, required=True, default="valid", index=True, readonly=True)
    revoked_at = fields.Datetime(readonly=True)
    certificate_pem = fields.Text(string="Certificate (PEM)", readonly=True)

    _sql_constraints = [
        ("serial_unique", "UNIQUE(serial)", "A serial number is never issued twice."),
    ]

    # === ACTION ===

    def action_revoke(self):
        """Revoke valid certificates: they are in the CRL from the next download on.

        :return: True
        """
        if any(certificate.state != "valid" for certificate in self):
            raise UserError(_("Only valid certificates can be revoked."))
        self.write({"state": "revoked", "revoked_at": fields.Datetime.now()})
        return True

    # === CRON ===

    @api.model
    def _cron_mark_expired(self):
        """Daily: record expiry, so no certificate expires silently."""
        expired = self.search([("state", "=", "valid"), ("not_after", "<", fields.Datetime.now())])
        expired.write({"state": "expired"})
        # And what boxes serve: the last Check HTTPS of each, judged again by date.
        self.env["iot.box"]._cron_https_expiry()
        return True
