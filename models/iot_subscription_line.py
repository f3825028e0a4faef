from odoo import fields, models


class IotSubscriptionLine(models.Model):
    _name = "iot.subscription.line"
    _description = "IoT Subscription Line"

    subscription_id = fields.Many2one("iot.subscription", required=True, ondelete="cascade", index=True)
    product_id = fields.Many2one("product.product", required=True)
    quantity = fields.Float(default=1.0, digits="Product Unit of Measure")
    is_iot_box = fields.Boolean(
        string="IoT Box Line", related="product_id.product_tmpl_id.iot_box_subscription", store=True
    )

    _sql_constraints = [
        ("quantity_positive", "CHECK(quantity >= 0)", "The quantity of a subscription line cannot be negative."),
    ]
