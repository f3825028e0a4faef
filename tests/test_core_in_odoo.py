import sys

from odoo.tests import TransactionCase, tagged

from odoo.addons.iot_https import iot_pki


@tagged("post_install", "-at_install")
class TestCoreInOdoo(TransactionCase):
    """The framework-free core loads inside Odoo, as part of the addon, with Odoo's pinned libraries."""

    def test_core_is_the_addons_package(self):
        self.assertEqual(iot_pki.__name__, "odoo.addons.iot_https.iot_pki")
        self.assertIn("odoo.addons.iot_https.iot_pki.service", sys.modules)

    def test_core_decides_inside_odoo(self):
        facts = iot_pki.eligibility.DatabaseFacts("uuid", "code", "production", "in_progress", True)
        self.assertTrue(iot_pki.eligibility.evaluate(facts).eligible)
        staging = iot_pki.eligibility.DatabaseFacts("uuid", "code", "staging", "in_progress", True)
        self.assertEqual(iot_pki.eligibility.evaluate(staging).reason, iot_pki.codes.NOT_PRODUCTION)
