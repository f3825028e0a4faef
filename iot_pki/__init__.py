"""iot_pki: the framework-free issuing core of iot_https.

No Odoo import here or below: the Odoo addon, the mock issuer and the box
client all call this package, so every certificate and eligibility decision
is made once. Relative imports only, so it loads both as
``odoo.addons.iot_https.iot_pki`` and as the top-level ``iot_pki``.
"""

from . import ca, codes, eligibility, keys, profile, protocol, service
