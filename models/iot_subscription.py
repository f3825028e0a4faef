from odoo import api, fields, models

from ..iot_pki.eligibility import SUBSCRIPTION_STATES


class IotSubscription(models.Model):
    _name = "iot.subscription"
    _description = "IoT Subscription"
    _rec_name = "code"
    _order = "code"

    code = fields.Char(
        string="Enterprise Code",
        required=True,
        copy=False,
        help="The enterprise code boxes send with their database UUID.",
    )
    partner_id = fields.Many2one("res.partner", string="Customer", index=True)
    state = fields.Selection(list(SUBSCRIPTION_STATES), required=True, default="draft", index=True)
    line_ids = fields.One2many("iot.subscription.line", "subscription_id", string="Lines", copy=True)
    database_ids = fields.One2many("iot.database", "subscription_id", string="Databases")
    has_iot_box_line = fields.Boolean(
        string="Has IoT Box Line",
        compute="_compute_has_iot_box_line",
        store=True,
        help="At least one line of a product marked IoT Box Subscription, with a positive quantity.",
    )
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, index=True)

    _sql_constraints = [
        ("code_unique", "UNIQUE(code)", "Another subscription already has this enterprise code."),
    ]

    # === COMPUTE ===

    @api.depends("line_ids.product_id.product_tmpl_id.iot_box_subscription", "line_ids.quantity")
    def _compute_has_iot_box_line(self):
        for subscription in self:
            subscription.has_iot_box_line = any(line.is_iot_box and line.quantity > 0 for line in subscription.line_ids)

    # === CONSTRAINT ===

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("code"):
                vals["code"] = vals["code"].strip()
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("code"):
            vals["code"] = vals["code"].strip()
        result = super().write(vals)
        if "state" in vals:
            self.database_ids._revoke_if_no_longer_entitled()
        return result
