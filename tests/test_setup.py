from odoo import fields
from odoo.tests import Form, tagged

from .common import SETUP_URL, IotHttpsHttpCase, pem_certificates

MAC = "b8:27:eb:00:00:01"


@tagged("post_install", "-at_install")
class TestBoxRegistration(IotHttpsHttpCase):
    """POST /iot/setup with the payload of a stock Odoo 17 box."""

    def _payload(self, ip="10.0.0.5", token=None, devices=None, identifier=MAC):
        if devices is None:
            devices = {
                "usb_printer_1": {
                    "name": "Receipt Printer",
                    "type": "printer",
                    "manufacturer": "Epson",
                    "connection": "direct",
                },
                "scale_1": {"name": "Scale", "type": "scale", "manufacturer": "Mettler", "connection": "serial"},
            }
        return {
            "params": {
                "iot_box": {
                    "name": "iotbox-shop",
                    "identifier": identifier,
                    "ip": ip,
                    "token": self.pairing_token if token is None else token,
                    "version": "24.10",
                },
                "devices": devices,
            }
        }

    def _post_setup(self, **kwargs):
        response = self.post_json(SETUP_URL, self._payload(**kwargs))
        self.assertEqual(response.status_code, 200, response.text)
        return response.json()

    def _box(self, identifier=MAC):
        return self.env["iot.box"].search([("identifier", "=", identifier)])

    def test_register_then_update(self):
        body = self._post_setup()
        self.assertTrue(body["result"], "stock boxes read a truthy result (their bus channel)")
        self.assertEqual(body["result"], self.params.get_param("iot_https.ws_channel"))
        box = self._box()
        self.assertEqual(len(box), 1)
        self.assertEqual(box.name, "iotbox-shop")
        self.assertEqual(box.ip, "10.0.0.5")
        self.assertEqual(box.version, "24.10")
        self.assertEqual(box.https_url, "http://10.0.0.5:8069")
        self.assertFalse(box.certificate_id)
        devices = {device.identifier: device for device in box.device_ids}
        self.assertEqual(set(devices), {"usb_printer_1", "scale_1"})
        printer = devices["usb_printer_1"]
        self.assertEqual(
            (printer.name, printer.device_type, printer.manufacturer, printer.connection, printer.connected),
            ("Receipt Printer", "printer", "Epson", "direct", True),
        )

        # The box restarts with a new address and without its scale.
        devices_now = {"usb_printer_1": self._payload()["params"]["devices"]["usb_printer_1"]}
        body = self._post_setup(ip="10.0.0.9", devices=devices_now)
        self.assertTrue(body["result"])
        self.assertEqual(self._box(), box, "the same box is updated, not a new one made")
        self.assertEqual(box.ip, "10.0.0.9")
        self.assertEqual(len(box.device_ids), 2)
        self.assertTrue(printer.connected)
        self.assertFalse(devices["scale_1"].connected)

    def test_wrong_token_changes_nothing(self):
        self._post_setup()
        box = self._box()
        boxes_before = self.env["iot.box"].search_count([])
        devices_before = self.env["iot.device"].search_count([])

        body = self._post_setup(token="wrong-token", ip="10.0.0.66", devices={})
        self.assertIs(body["result"], False)
        self.assertEqual(box.ip, "10.0.0.5")
        self.assertTrue(all(box.device_ids.mapped("connected")))

        body = self._post_setup(token="wrong-token", identifier="b8:27:eb:00:00:99")
        self.assertIs(body["result"], False)
        body = self._post_setup(token="", identifier="b8:27:eb:00:00:98")
        self.assertIs(body["result"], False)
        self.assertFalse(self._box("b8:27:eb:00:00:99") | self._box("b8:27:eb:00:00:98"))
        self.assertEqual(self.env["iot.box"].search_count([]), boxes_before)
        self.assertEqual(self.env["iot.device"].search_count([]), devices_before)

    def test_malformed_registration_gets_400(self):
        for body in (b"{not json", b"[]", b'{"params": {"iot_box": {"name": "no identifier"}}}'):
            with self.subTest(body=body):
                response = self.post_json(SETUP_URL, body)
                self.assertEqual(response.status_code, 400)
                self.assertNotIn("Traceback", response.text)
                self.assertEqual(response.json()["error"]["code"], "invalid_request")
        self.assertFalse(self.env["iot.box"].search_count([]))

    def test_box_with_certificate_registers_with_its_host_name(self):
        self._post_setup()
        box = self._box()
        self.assertFalse(box.database_id)

        result = self.issue()
        leaf = pem_certificates(result["x509_pem"])[0]
        certificate = self.env["iot.certificate"].search([("serial", "=", f"{leaf.serial_number:x}")])
        host = "10-0-0-5" + result["subject_cn"].lstrip("*")
        self.assertTrue(host.endswith("." + self.zone))

        body = self._post_setup(ip=host)
        self.assertTrue(body["result"])
        self.assertEqual(box.ip, host)
        self.assertEqual(box.database_id, self.database)
        self.assertEqual(box.certificate_id, certificate)
        self.assertEqual(box.https_url, f"https://{host}")
        self.assertIn(box, self.database.box_ids)

        # The form's banner shows the certificate.
        form = Form(box)
        self.assertEqual(form.certificate_subject, result["subject_cn"])
        self.assertEqual(form.certificate_not_before, fields.Datetime.to_string(leaf.not_valid_before))
        self.assertEqual(form.certificate_not_after, fields.Datetime.to_string(leaf.not_valid_after))
        self.assertEqual(box.certificate_not_after, certificate.not_after)
