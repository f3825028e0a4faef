from odoo.tests import tagged
from odoo.tools.misc import file_open

from odoo.addons.iot_https.iot_pki import codes

from .common import SETUP_URL, IotHttpsHttpCase


@tagged("post_install", "-at_install")
class TestNeutralize(IotHttpsHttpCase):
    """data/neutralize.sql, as Odoo runs it on a duplicated database."""

    def _neutralize(self):
        with file_open("iot_https/data/neutralize.sql") as sql:
            query = sql.read()
        self.env.flush_all()
        self.env.cr.execute(query)
        # Raw SQL bypasses the ORM: drop the cached parameters, as a new process would start without them.
        self.env.registry.clear_cache()
        self.env.invalidate_all()

    def test_neutralized_copy_cannot_issue(self):
        self.issue()  # issuing works before
        self._neutralize()

        response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertIs(body["result"], False)
        self.assertEqual(body["refusal"]["code"], codes.ISSUANCE_DISABLED)
        self.assertEqual(self.last_request().decision, codes.ISSUANCE_DISABLED)
        self.assertEqual(self.env["iot.certificate"].search_count([("database_id", "=", self.database.id)]), 1)

    def test_neutralize_without_the_parameter(self):
        # The parameter may not exist yet: the script inserts it.
        self.env["ir.config_parameter"].search([("key", "=", "iot_https.issuance_enabled")]).unlink()
        self._neutralize()
        self.assertEqual(self.params.get_param("iot_https.issuance_enabled"), "False")
        body = self.request_x509(self.database.uuid, self.subscription.code).json()
        self.assertEqual(body["refusal"]["code"], codes.ISSUANCE_DISABLED)

    def test_neutralize_changes_the_pairing_token(self):
        self._neutralize()
        token = self.params.get_param("iot_https.pairing_token")
        self.assertTrue(token)
        self.assertNotEqual(token, self.pairing_token)

        # A box paired with the production database cannot register with the copy.
        payload = {
            "params": {
                "iot_box": {
                    "name": "box",
                    "identifier": "b8:27:eb:00:00:05",
                    "ip": "10.0.0.5",
                    "token": self.pairing_token,
                    "version": "24.10",
                },
                "devices": {},
            }
        }
        response = self.post_json(SETUP_URL, payload)
        self.assertIs(response.json()["result"], False)
        self.assertFalse(self.env["iot.box"].search([("identifier", "=", "b8:27:eb:00:00:05")]))
