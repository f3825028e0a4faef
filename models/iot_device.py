from odoo import fields, models


class IotDevice(models.Model):
    _name = "iot.device"
    _description = "IoT Device"
    _order = "box_id, name"

    box_id = fields.Many2one("iot.box", string="IoT Box", required=True, ondelete="cascade", index=True)
    identifier = fields.Char(required=True)
    name = fields.Char(required=True)
    device_type = fields.Char(string="Type")
    manufacturer = fields.Char()
    connection = fields.Char()
    connected = fields.Boolean(default=True, help="Reported by the box at its last registration.")

    _sql_constraints = [
        ("identifier_unique", "UNIQUE(box_id, identifier)", "A box reports each device once."),
    ]
