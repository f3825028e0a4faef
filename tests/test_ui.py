"""The screens in a real browser (Debian's chromium): Odoo tours, then screenshots for the README."""

import base64
from datetime import timedelta
from pathlib import Path

from odoo import fields
from odoo.tests import tagged
from odoo.tests.common import ChromeBrowser

from .common import IotHttpsHttpCase, serve_fake_box

ADDON = Path(__file__).resolve().parent.parent
SCREENSHOTS = ADDON / "docs" / "screenshots"
# The app store's image (the manifest's "images"): the box form, from the same run.
STORE_IMAGE = ADDON / "static" / "description" / "iot_https_screenshot.png"
BOX_LOG = b"2026-11-27 08:00:01 INFO hw_drivers: HTTPS certificate loaded\n"


@tagged("post_install", "-at_install")
class TestScreens(IotHttpsHttpCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.params.set_param("iot_https.pairing_token", "tour-pairing-token")
        shop = cls._create_subscription("SHOP-CODE")
        cls.shop_database = cls.env["iot.database"].create(
            {"name": "Acme shop", "uuid": "shop-db-uuid", "database_type": "production", "subscription_id": shop.id}
        )
        staging = cls._create_subscription("STAGING-CODE", iot_line=False)
        cls.env["iot.database"].create(
            {"name": "Staging copy", "uuid": "staging-uuid", "database_type": "staging", "subscription_id": staging.id}
        )
        now = fields.Datetime.now()
        label = "k3fq2zqyw4lmxa7b"
        cls.certificate = cls._create_certificate(
            cls.shop_database,
            "5f0c1a2b3c4d5e6f7a8b9c0d1e2f3a4b",
            subject_cn=f"*.{label}.{cls.zone}",
            not_before=now - timedelta(days=3),
            not_after=now + timedelta(days=87),
        )
        cls.shop_box = cls.env["iot.box"].create(
            {
                "name": "Shop counter",
                "identifier": "b8:27:eb:10:20:30",
                "ip": f"10-0-0-5.{label}.{cls.zone}",
                "version": "24.01",
                "database_id": cls.shop_database.id,
                "device_ids": [
                    (0, 0, {"identifier": "ingenico_1", "name": "Payment terminal", "device_type": "payment",
                            "manufacturer": "Ingenico", "connection": "network"}),
                    (0, 0, {"identifier": "printer_1", "name": "Receipt printer", "device_type": "printer",
                            "manufacturer": "Epson", "connection": "usb"}),
                ],
            }
        )  # fmt: skip
        # The back-office box is reached on its IPv4: a real HTTP server stands in for it.
        cls.fake_box = serve_fake_box(cls, BOX_LOG)
        cls.back_office = cls.env["iot.box"].create(
            {"name": "Back office", "identifier": "b8:27:eb:10:20:31", "ip": "127.0.0.1", "version": "24.01"}
        )

    def test_box_form_in_developer_mode_downloads_the_log(self):
        self.start_tour("/web?debug=1", "iot_https_box_form_debug", login="admin")
        attachment = self.env["ir.attachment"].search(
            [("res_model", "=", "iot.box"), ("res_id", "=", self.back_office.id)]
        )
        self.assertEqual(len(attachment), 1, "Download logs stores the fetched log on the box")
        self.assertEqual(attachment.raw, BOX_LOG)
        self.assertIn("/hw_drivers/download_logs", self.fake_box.paths)

    def test_box_form_outside_developer_mode_has_no_download_logs(self):
        self.start_tour("/web", "iot_https_box_form_no_debug", login="admin")

    def test_database_form_says_why_it_is_refused(self):
        self.start_tour("/web", "iot_https_database_refused", login="admin")

    def test_connect_a_box_shows_the_pairing_string(self):
        self.start_tour("/web", "iot_https_connect_box", login="admin")

    def test_screenshots_for_the_readme(self):
        """The README's screenshots come from this run: each screen is opened, checked, captured."""
        staging = self.env["iot.database"].search([("uuid", "=", "staging-uuid")])
        screens = {
            "box-form": (
                f"/web?debug=1#model=iot.box&id={self.shop_box.id}&view_type=form",
                "document.querySelector('.o_form_view .alert-success') && "
                "document.querySelector('button[name=\"action_download_logs\"]')",
            ),
            "box-list": ("/web#action=iot_https.iot_box_action", "document.querySelector('.o_list_view .o_data_row')"),
            "database-refused": (
                f"/web#model=iot.database&id={staging.id}&view_type=form",
                "document.querySelector('.o_form_view .alert-danger')",
            ),
            "connect-a-box": (
                "/web#action=iot_https.iot_connect_wizard_action",
                "document.querySelector('.modal .o_field_widget[name=\"pairing_string\"]')",
            ),
        }
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for name, (url, ready) in screens.items():
            browser = ChromeBrowser(type(self))
            try:
                self.authenticate("admin", "admin", browser=browser)
                browser._websocket_request(
                    "Emulation.setDeviceMetricsOverride",
                    params={"width": 1280, "height": 760, "deviceScaleFactor": 1, "mobile": False},
                )
                browser.navigate_to(self.base_url() + url, wait_stop=True)
                self.assertTrue(browser._wait_ready(f"!!({ready})", timeout=60), f"{name}: the screen did not show")
                shot = browser._websocket_send("Page.captureScreenshot", with_future=True).result(timeout=60)
                png = base64.b64decode(shot["data"])
                self.assertTrue(png.startswith(b"\x89PNG"), name)
                (SCREENSHOTS / f"{name}.png").write_bytes(png)
                if name == "box-form":
                    STORE_IMAGE.write_bytes(png)
            finally:
                browser.stop()
                self._wait_remaining_requests()
