from odoo.exceptions import UserError
from odoo.tests import new_test_user, tagged

from odoo.addons.iot_https.models.iot_box import LOG_MAX_BYTES, LOG_PATH
from odoo.addons.iot_https.testkit.tls import closed_port

from .common import IotHttpsCase, serve_fake_box


@tagged("post_install", "-at_install")
class TestDownloadLogs(IotHttpsCase):
    """iot.box.action_download_logs against a real local HTTP server standing in for a box."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.fake_box = serve_fake_box(cls, b"")
        cls.box = cls.env["iot.box"].create({"name": "Counter", "identifier": "b8:27:eb:00:00:02", "ip": "127.0.0.1"})

    def setUp(self):
        super().setUp()
        self.fake_box.log, self.fake_box.status, self.fake_box.paths = b"", 200, []

    def _attachments(self):
        return self.env["ir.attachment"].search([("res_model", "=", "iot.box"), ("res_id", "=", self.box.id)])

    def test_download(self):
        self.fake_box.log = b"2026-11-27 10:00:00 INFO hw_drivers: started\nERR_IOT_HTTPS_LOAD_REQUEST_STATUS 400\n"
        # An IoT user (not an administrator) downloads the logs of a box.
        iot_user = new_test_user(self.env, "iot_logs_user", groups="iot_https.iot_https_group_user")
        action = self.box.with_user(iot_user).action_download_logs()
        self.assertEqual(self.fake_box.paths, [LOG_PATH])
        attachment = self._attachments()
        self.assertEqual(len(attachment), 1)
        self.assertEqual(action["type"], "ir.actions.act_url")
        self.assertEqual(action["url"], f"/web/content/{attachment.id}?download=true")
        self.assertEqual(attachment.raw, self.fake_box.log)
        self.assertEqual(attachment.res_model, "iot.box")
        self.assertEqual(attachment.res_id, self.box.id)
        self.assertTrue(attachment.name.startswith("Counter-"))
        self.assertTrue(attachment.name.endswith(".log"))

    def test_large_log_keeps_its_end(self):
        line = b"2026-11-27 10:00:00 DEBUG hw_drivers: " + b"x" * 985 + b"\n"  # 1 KiB
        self.fake_box.log = b"FIRST LINE\n" + line * (6 * 1024) + b"LAST LINE\n"
        self.box.action_download_logs()
        content = self._attachments().raw
        self.assertTrue(content.endswith(b"LAST LINE\n"))
        self.assertNotIn(b"FIRST LINE", content)
        notice, _newline, kept = content.partition(b"\n")
        self.assertIn(b"truncated", notice)
        self.assertEqual(len(kept), LOG_MAX_BYTES, "the last 5 MiB of the log are kept")
        self.assertEqual(kept, self.fake_box.log[-LOG_MAX_BYTES:])
        dropped = len(self.fake_box.log) - LOG_MAX_BYTES
        self.assertIn(str(dropped).encode(), notice)

    def test_unreachable_box(self):
        port = closed_port()
        self.params.set_param("iot_https.box_http_port", str(port))
        with self.assertRaises(UserError) as caught:
            self.box.action_download_logs()
        message = str(caught.exception)
        self.assertIn("cannot be reached", message)
        self.assertIn(f"http://127.0.0.1:{port}{LOG_PATH}", message)
        self.assertIn("Counter", message)
        self.assertFalse(self._attachments())

    def test_box_answers_an_error(self):
        self.fake_box.status = 500
        with self.assertRaises(UserError) as caught:
            self.box.action_download_logs()
        self.assertIn("500", str(caught.exception))
        self.assertEqual(self.fake_box.paths, [LOG_PATH])
        self.assertFalse(self._attachments())

    def test_box_without_address(self):
        box = self.env["iot.box"].create({"name": "New", "identifier": "b8:27:eb:00:00:03"})
        with self.assertRaises(UserError):
            box.action_download_logs()
