from odoo import fields, models


class ProductTemplate(models.Model):
    _inherit = "product.template"

    iot_box_subscription = fields.Boolean(
        string="IoT Box Subscription",
        help="A subscription line with this product grants HTTPS certificates to the database's IoT boxes.",
    )
