from odoo import _, api, fields, models
from odoo.exceptions import ValidationError

from ..iot_pki import keys, profile


class ResConfigSettings(models.TransientModel):
    _inherit = "res.config.settings"

    iot_https_zone = fields.Char(
        string="IoT Zone", config_parameter="iot_https.zone", help="Boxes get *.<label>.<zone> certificates."
    )
    iot_https_public_url = fields.Char(
        string="Public URL",
        config_parameter="iot_https.public_url",
        help="Base of the CA and CRL URLs embedded in certificates (default: web.base.url).",
    )
    iot_https_validity_days = fields.Integer(
        string="Certificate Lifetime (days)",
        config_parameter="iot_https.validity_days",
        default=profile.DEFAULT_VALIDITY_DAYS,
    )
    iot_https_legacy_key_type = fields.Selection(
        [(key_type, key_type.upper()) for key_type in keys.LEGACY_KEY_TYPES],
        string="Key for Stock Boxes",
        config_parameter="iot_https.legacy_key_type",
        default="rsa2048",
    )

    # === CONSTRAINT ===

    @api.constrains("iot_https_zone", "iot_https_public_url", "iot_https_validity_days")
    def _check_iot_https_settings(self):
        for settings in self:
            try:
                if settings.iot_https_zone:
                    profile.validate_zone(settings.iot_https_zone)
                if settings.iot_https_public_url:
                    profile.validate_public_url(settings.iot_https_public_url)
                profile.validate_validity_days(settings.iot_https_validity_days)
            except profile.ProfileError as exc:
                raise ValidationError(_("Invalid IoT HTTPS setting: %s", exc)) from None
