from odoo import fields, models

from ..iot_pki import codes, service

DECISIONS = [
    (service.ISSUED, "Issued"),
    *[(code, code.replace("_", " ").capitalize()) for code in codes.REFUSALS],
    (service.INVALID_REQUEST, "Invalid request"),
    (service.RATE_LIMITED, "Rate limited"),
    (service.INTERNAL_ERROR, "Internal error"),
]


class IotRequest(models.Model):
    """One certificate request, as the issuer answered it."""

    _name = "iot.request"
    _description = "IoT Certificate Request"
    _order = "id desc"
    _rec_name = "decision"

    database_id = fields.Many2one("iot.database", index=True, ondelete="cascade", readonly=True)
    claimed_uuid = fields.Char(string="UUID Sent", readonly=True, help="The db_uuid in the request, as sent.")
    decision = fields.Selection(DECISIONS, required=True, readonly=True, index=True)
    detail = fields.Char(readonly=True)
    mode = fields.Selection([("legacy", "Legacy"), ("csr", "CSR")], readonly=True)
    client_address = fields.Char(readonly=True)
    certificate_id = fields.Many2one("iot.certificate", readonly=True, ondelete="set null")
    box_error_code = fields.Char(
        string="Box Shows",
        compute="_compute_box_error_code",
        help="What a box shows on its homepage after this answer.",
    )

    # === COMPUTE ===

    def _compute_box_error_code(self):
        for request in self:
            request.box_error_code = service.box_error_code(request.decision) or False
