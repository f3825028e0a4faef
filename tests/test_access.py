import json

from odoo.exceptions import AccessError
from odoo.tests import new_test_user, tagged
from odoo.tools import mute_logger

from .common import IotHttpsHttpCase

IOT_MODELS = ("iot.certificate", "iot.request", "iot.box", "iot.database", "iot.subscription", "iot.device")


@tagged("post_install", "-at_install")
class TestAccessRights(IotHttpsHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.employee = new_test_user(cls.env, "iot_employee", groups="base.group_user", password="iot_employee_pw")
        cls.iot_user = new_test_user(cls.env, "iot_user", groups="iot_https.iot_https_group_user")
        cls.iot_manager = new_test_user(cls.env, "iot_manager", groups="iot_https.iot_https_group_manager")
        cls.certificate = cls._create_certificate(cls.database, "ac1")
        cls.box = cls.env["iot.box"].create(
            {"name": "Box", "identifier": "b8:27:eb:00:00:04", "database_id": cls.database.id}
        )
        cls.request = cls.env["iot.request"].create({"database_id": cls.database.id, "decision": "issued"})

    def _call_kw(self, model, method, args=(), kwargs=None):
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 1,
            "params": {"model": model, "method": method, "args": list(args), "kwargs": kwargs or {}},
        }
        with mute_logger("odoo.http"):
            response = self.url_open(
                "/web/dataset/call_kw", data=json.dumps(payload), headers={"Content-Type": "application/json"}
            )
        self.assertEqual(response.status_code, 200)
        return response.json()

    def test_employee_reads_nothing(self):
        records = {
            "iot.certificate": self.certificate,
            "iot.request": self.request,
            "iot.box": self.box,
            "iot.database": self.database,
            "iot.subscription": self.subscription,
        }
        for model, record in records.items():
            with self.subTest(model=model):
                with self.assertRaises(AccessError):
                    self.env[model].with_user(self.employee).search([])
                with self.assertRaises(AccessError):
                    record.with_user(self.employee).read(["display_name"])

    def test_employee_cannot_reach_the_ca_over_rpc(self):
        self.authenticate("iot_employee", "iot_employee_pw")
        for method in ("_get_ca", "_ca_directory", "_service", "_settings"):
            with self.subTest(method=method):
                body = self._call_kw("iot.issuer", method)
                self.assertNotIn("result", body)
                self.assertEqual(body["error"]["data"]["name"], "odoo.exceptions.AccessError")
                self.assertIn("Private methods", body["error"]["data"]["message"])
                self.assertNotIn("PRIVATE KEY", json.dumps(body))
        # A public ORM call on the certificates is refused by the access rights.
        body = self._call_kw("iot.certificate", "search_read", [[]], {"fields": ["certificate_pem"]})
        self.assertEqual(body["error"]["data"]["name"], "odoo.exceptions.AccessError")

    def test_admin_cannot_reach_the_ca_over_rpc_either(self):
        self.authenticate("admin", "admin")
        body = self._call_kw("iot.issuer", "_get_ca")
        self.assertNotIn("result", body)
        self.assertIn("Private methods", body["error"]["data"]["message"])

    def test_no_field_or_public_method_exposes_a_key(self):
        # The issuer model adds no public method: everything it does is private (no RPC).
        base_methods = set(dir(type(self.env["base"])))
        public = [
            name
            for name in dir(type(self.env["iot.issuer"]))
            if not name.startswith("_") and name not in base_methods and callable(getattr(self.env["iot.issuer"], name))
        ]
        self.assertEqual(public, [])
        self.assertFalse(
            set(self.env["iot.issuer"]._fields) - set(self.env["base"]._fields), "the issuer stores nothing"
        )
        for model in (*IOT_MODELS, "iot.issuer"):
            for name in self.env[model]._fields:
                self.assertNotIn("private", name, f"{model}.{name}")
                self.assertNotIn("passphrase", name, f"{model}.{name}")

    def test_iot_user_reads_but_cannot_revoke(self):
        certificate = self.certificate.with_user(self.iot_user)
        self.assertEqual(certificate.read(["subject_cn"])[0]["subject_cn"], self.certificate.subject_cn)
        self.assertIn(self.certificate, self.env["iot.certificate"].with_user(self.iot_user).search([]))
        self.assertTrue(self.request.with_user(self.iot_user).read(["decision"]))
        self.assertTrue(self.database.with_user(self.iot_user).read(["eligible"]))
        with self.assertRaises(AccessError):
            certificate.write({"state": "revoked"})
        with self.assertRaises(AccessError):
            certificate.action_revoke()
        with self.assertRaises(AccessError):
            self.database.with_user(self.iot_user).write({"database_type": "staging"})
        self.assertEqual(self.certificate.state, "valid")

    def test_iot_manager_revokes(self):
        self.certificate.with_user(self.iot_manager).action_revoke()
        self.assertEqual(self.certificate.state, "revoked")
        self.assertTrue(self.certificate.revoked_at)
        with self.assertRaises(AccessError):
            self.certificate.with_user(self.iot_manager).unlink()
