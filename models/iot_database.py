from odoo import _, api, fields, models

from ..iot_pki import codes
from ..iot_pki.eligibility import DATABASE_TYPES, DatabaseFacts, evaluate, revokes_certificates

REFUSAL_REASONS = [(code, code.replace("_", " ").capitalize()) for code in codes.REFUSALS]


class IotDatabase(models.Model):
    _name = "iot.database"
    _description = "Registered Database"
    _order = "name, id"

    name = fields.Char(required=True)
    uuid = fields.Char(
        string="Database UUID", required=True, copy=False, help="The db_uuid boxes of this database send."
    )
    database_type = fields.Selection(list(DATABASE_TYPES), string="Type", required=True, default="production")
    subscription_id = fields.Many2one("iot.subscription", index=True, ondelete="restrict")
    subscription_state = fields.Selection(related="subscription_id.state", string="Subscription Status")
    company_id = fields.Many2one("res.company", default=lambda self: self.env.company, index=True)
    certificate_ids = fields.One2many("iot.certificate", "database_id", string="Certificates")
    request_ids = fields.One2many("iot.request", "database_id", string="Requests")
    box_ids = fields.One2many("iot.box", "database_id", string="IoT Boxes")
    certificate_count = fields.Integer(compute="_compute_certificate_count")
    eligible = fields.Boolean(compute="_compute_eligibility", store=True)
    refusal_reason = fields.Selection(REFUSAL_REASONS, compute="_compute_eligibility", store=True)
    eligibility_message = fields.Char(string="Eligibility", compute="_compute_eligibility_message")
    eligibility_fix = fields.Char(string="How to Fix", compute="_compute_eligibility_message")

    # The unique constraint's index serves the issuer's lookup by UUID (no second index).
    _sql_constraints = [
        ("uuid_unique", "UNIQUE(uuid)", "Another database is already registered with this UUID."),
    ]

    # === COMPUTE ===

    @api.depends("database_type", "subscription_id.state", "subscription_id.has_iot_box_line")
    def _compute_eligibility(self):
        for database in self:
            decision = evaluate(database._facts())
            database.eligible = decision.eligible
            database.refusal_reason = decision.reason or False

    @api.depends("eligible", "refusal_reason")
    @api.depends_context("lang")
    def _compute_eligibility_message(self):
        for database in self:
            if database.eligible:
                database.eligibility_message = _("Eligible: its boxes get HTTPS certificates.")
                database.eligibility_fix = False
            else:
                refusal = codes.REFUSALS[database.refusal_reason or codes.NO_SUBSCRIPTION]
                # The catalogue's texts are registered for translation in core_i18n.py.
                database.eligibility_message = _(refusal.meaning)
                database.eligibility_fix = _(refusal.fix)

    def _compute_certificate_count(self):
        counts = dict(
            self.env["iot.certificate"]._read_group([("database_id", "in", self.ids)], ["database_id"], ["__count"])
        )
        for database in self:
            database.certificate_count = counts.get(database, 0)

    # === BUSINESS ===

    def _facts(self):
        """The core's view of this database (eligibility works on plain data)."""
        self.ensure_one()
        subscription = self.subscription_id
        return DatabaseFacts(
            uuid=self.uuid or "",
            enterprise_code=subscription.code or "",
            database_type=self.database_type or "",
            subscription_state=subscription.state or "",
            has_iot_box_line=bool(subscription.has_iot_box_line),
        )

    @api.model_create_multi
    def create(self, vals_list):
        for vals in vals_list:
            if vals.get("uuid"):
                vals["uuid"] = vals["uuid"].strip()
        return super().create(vals_list)

    def write(self, vals):
        if vals.get("uuid"):
            vals["uuid"] = vals["uuid"].strip()
        result = super().write(vals)
        if {"database_type", "subscription_id"} & set(vals):
            self._revoke_if_no_longer_entitled()
        return result

    def _revoke_if_no_longer_entitled(self):
        """Revoke the valid certificates of databases that left production or whose subscription closed."""
        certificates = self.filtered(lambda database: revokes_certificates(database._facts())).sudo().certificate_ids
        certificates.filtered(lambda certificate: certificate.state == "valid").action_revoke()

    # === ACTION ===

    def action_view_certificates(self):
        self.ensure_one()
        action = self.env["ir.actions.act_window"]._for_xml_id("iot_https.iot_certificate_action")
        action["domain"] = [("database_id", "=", self.id)]
        action["context"] = {"default_database_id": self.id}
        return action
