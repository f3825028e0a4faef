from odoo import api, fields, models

from ..iot_pki.protocol import pairing_string


class IotConnectWizard(models.TransientModel):
    """Connect a box: the pairing string stock boxes accept on their homepage."""

    _name = "iot.connect.wizard"
    _description = "Connect an IoT Box"

    database_id = fields.Many2one(
        "iot.database",
        required=True,
        default=lambda self: self.env["iot.database"].search([("eligible", "=", True)], limit=1),
        help="The database whose UUID and enterprise code the box will send to get its certificate.",
    )
    server_url = fields.Char(
        string="Server URL",
        required=True,
        default=lambda self: self.env["ir.config_parameter"].sudo().get_param("web.base.url"),
        help="The URL boxes use to reach this Odoo (registration and certificates).",
    )
    pairing_string = fields.Char(compute="_compute_pairing_string")
    eligibility_message = fields.Char(related="database_id.eligibility_message")
    eligible = fields.Boolean(related="database_id.eligible")

    # === COMPUTE ===

    @api.depends("database_id", "server_url")
    def _compute_pairing_string(self):
        token = self.env["ir.config_parameter"].sudo().get_param("iot_https.pairing_token") or ""
        for wizard in self:
            code = wizard.database_id.sudo().subscription_id.code
            if wizard.server_url and wizard.database_id and code:
                wizard.pairing_string = pairing_string(wizard.server_url, token, wizard.database_id.uuid, code)
            else:
                wizard.pairing_string = False
