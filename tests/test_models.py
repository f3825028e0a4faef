import datetime

from psycopg2 import IntegrityError

from odoo import fields
from odoo.exceptions import ValidationError
from odoo.tests import tagged
from odoo.tools import mute_logger

from odoo.addons.iot_https.iot_pki import codes

from .common import IotHttpsCase


@tagged("post_install", "-at_install")
class TestIotModels(IotHttpsCase):
    """Uniqueness, line quantities, the IoT-box-line flag and box addresses."""

    def _assert_integrity_error(self, create):
        with mute_logger("odoo.sql_db"), self.assertRaises(IntegrityError):
            create()
            self.env.flush_all()

    def test_subscription_code_unique(self):
        # The code is stripped before it is stored: a padded copy is still a duplicate.
        self._assert_integrity_error(lambda: self._create_subscription(" ENT-CODE-ELIGIBLE "))
        self.assertEqual(self._create_subscription(" ENT-CODE-OTHER ").code, "ENT-CODE-OTHER")

    def test_database_uuid_unique(self):
        self._assert_integrity_error(lambda: self._create_database("db-uuid-eligible "))
        self.assertEqual(self._create_database(" db-uuid-other").uuid, "db-uuid-other")

    def test_box_identifier_unique(self):
        boxes = self.env["iot.box"]
        boxes.create({"name": "Box A", "identifier": "aa:bb:cc:dd:ee:01"})
        self._assert_integrity_error(lambda: boxes.create({"name": "Box B", "identifier": "aa:bb:cc:dd:ee:01"}))

    def test_certificate_serial_unique(self):
        self._create_certificate(self.database, "7f3a")
        self._assert_integrity_error(lambda: self._create_certificate(self.database, "7f3a"))

    def test_negative_line_quantity_refused(self):
        self._assert_integrity_error(
            lambda: self.env["iot.subscription.line"].create(
                {"subscription_id": self.subscription.id, "product_id": self.iot_product.id, "quantity": -1}
            )
        )
        line = self.subscription.line_ids.filtered("is_iot_box")
        self._assert_integrity_error(lambda: line.write({"quantity": -2}))

    def test_has_iot_box_line_follows_lines(self):
        subscription = self._create_subscription("ENT-CODE-LINES", iot_line=False)
        database = self._create_database("db-uuid-lines", subscription)
        self.assertFalse(subscription.has_iot_box_line)
        self.assertEqual(database.refusal_reason, codes.NO_IOT_BOX_LINE)

        subscription.write({"line_ids": [(0, 0, {"product_id": self.iot_product.id, "quantity": 2})]})
        self.assertTrue(subscription.has_iot_box_line)
        self.assertTrue(database.eligible)
        self.assertFalse(database.refusal_reason)

        # A line of quantity 0 does not count.
        iot_line = subscription.line_ids.filtered("is_iot_box")
        iot_line.quantity = 0
        self.assertFalse(subscription.has_iot_box_line)
        iot_line.quantity = 1
        self.assertTrue(subscription.has_iot_box_line)

        iot_line.unlink()
        self.assertFalse(subscription.has_iot_box_line)
        self.assertFalse(database.eligible)
        self.assertEqual(database.refusal_reason, codes.NO_IOT_BOX_LINE)

    def test_has_iot_box_line_follows_product_flag(self):
        subscription = self._create_subscription("ENT-CODE-FLAG", iot_line=False)
        database = self._create_database("db-uuid-flag", subscription)
        self.assertFalse(subscription.has_iot_box_line)

        self.other_product.product_tmpl_id.iot_box_subscription = True
        self.assertTrue(subscription.line_ids.is_iot_box)
        self.assertTrue(subscription.has_iot_box_line)
        self.assertTrue(database.eligible)

        self.other_product.product_tmpl_id.iot_box_subscription = False
        self.assertFalse(subscription.has_iot_box_line)
        self.assertFalse(database.eligible)
        self.assertEqual(database.refusal_reason, codes.NO_IOT_BOX_LINE)

        # The stored values are right in the database too, not only in the cache.
        self.env.flush_all()
        self.env.invalidate_all()
        self.assertFalse(subscription.has_iot_box_line)
        self.assertEqual(database.refusal_reason, codes.NO_IOT_BOX_LINE)

    def test_box_ip_constraint(self):
        boxes = self.env["iot.box"]
        box = boxes.create({"name": "Box", "identifier": "aa:bb:cc:dd:ee:02", "ip": "10.0.0.5"})
        host = f"10-0-0-5.abcdefgh12345678.{self.zone}"
        box.ip = host
        self.assertEqual(box.ip, host)
        self.assertEqual(box.https_url, f"https://{host}")
        box.ip = False  # no address yet is allowed
        for bad in ("box.local", "10.0.0.256", "10.0.0", "10-0-0-5", "http://10.0.0.5", "not an ip"):
            with self.subTest(ip=bad), self.assertRaises(ValidationError):
                box.ip = bad
                self.env.flush_all()
        with self.assertRaises(ValidationError):
            boxes.create({"name": "Box", "identifier": "aa:bb:cc:dd:ee:03", "ip": "example.com"})


@tagged("post_install", "-at_install")
class TestEligibility(IotHttpsCase):
    """Every refusal reason on iot.database (eligible, refusal_reason, eligibility_message)."""

    def _assert_refused(self, database, reason):
        self.assertFalse(database.eligible)
        self.assertEqual(database.refusal_reason, reason)
        self.assertEqual(database.eligibility_message, codes.REFUSALS[reason].meaning)
        self.assertEqual(database.eligibility_fix, codes.REFUSALS[reason].fix)

    def test_eligible(self):
        self.assertTrue(self.database.eligible)
        self.assertFalse(self.database.refusal_reason)
        self.assertTrue(self.database.eligibility_message.startswith("Eligible"))
        self.assertFalse(self.database.eligibility_fix)
        self.assertEqual(self.env["iot.database"].search([("eligible", "=", True)]), self.database)

    def test_not_production(self):
        for database_type in ("staging", "development", "duplicate"):
            with self.subTest(database_type=database_type):
                subscription = self._create_subscription(f"ENT-CODE-{database_type}")
                database = self._create_database(f"db-uuid-{database_type}", subscription, database_type)
                self._assert_refused(database, codes.NOT_PRODUCTION)
                database.database_type = "production"
                self.assertTrue(database.eligible)

    def test_no_subscription(self):
        database = self._create_database("db-uuid-nosub")
        self._assert_refused(database, codes.NO_SUBSCRIPTION)

    def test_subscription_not_in_progress(self):
        for state in ("draft", "paused", "closed"):
            with self.subTest(state=state):
                subscription = self._create_subscription(f"ENT-CODE-{state}", state=state)
                database = self._create_database(f"db-uuid-{state}", subscription)
                self._assert_refused(database, codes.SUBSCRIPTION_NOT_IN_PROGRESS)
                subscription.state = "in_progress"
                self.assertTrue(database.eligible)

    def test_no_iot_box_line(self):
        subscription = self._create_subscription("ENT-CODE-NOLINE", iot_line=False)
        database = self._create_database("db-uuid-noline", subscription)
        self._assert_refused(database, codes.NO_IOT_BOX_LINE)

    def test_closing_the_subscription_of_an_eligible_database(self):
        self.subscription.state = "closed"
        self._assert_refused(self.database, codes.SUBSCRIPTION_NOT_IN_PROGRESS)


@tagged("post_install", "-at_install")
class TestCertificateCron(IotHttpsCase):
    def test_cron_marks_expired(self):
        now = fields.Datetime.now()
        past = self._create_certificate(
            self.database,
            "e1",
            not_before=now - datetime.timedelta(days=100),
            not_after=now - datetime.timedelta(days=10),
        )
        current = self._create_certificate(
            self.database,
            "e2",
            not_before=now - datetime.timedelta(days=10),
            not_after=now + datetime.timedelta(days=80),
        )
        revoked = self._create_certificate(
            self.database,
            "e3",
            not_before=now - datetime.timedelta(days=100),
            not_after=now - datetime.timedelta(days=10),
            state="revoked",
            revoked_at=now - datetime.timedelta(days=50),
        )
        self.env["iot.certificate"]._cron_mark_expired()
        self.assertEqual(past.state, "expired")
        self.assertEqual(current.state, "valid")
        self.assertEqual(revoked.state, "revoked")

    def test_cron_job_runs_the_method(self):
        now = fields.Datetime.now()
        past = self._create_certificate(
            self.database,
            "e4",
            not_before=now - datetime.timedelta(days=100),
            not_after=now - datetime.timedelta(days=1),
        )
        cron = self.env.ref("iot_https.iot_certificate_cron_mark_expired")
        self.assertTrue(cron.active)
        cron.method_direct_trigger()
        self.assertEqual(past.state, "expired")


@tagged("post_install", "-at_install")
class TestConnectWizard(IotHttpsCase):
    def test_pairing_string(self):
        self.params.set_param("web.base.url", "https://erp.example.com")
        wizard = self.env["iot.connect.wizard"].create({})
        self.assertEqual(wizard.database_id, self.database, "the eligible database is proposed")
        self.assertTrue(wizard.eligible)
        self.assertEqual(
            wizard.pairing_string,
            f"https://erp.example.com|{self.pairing_token}|{self.database.uuid}|{self.subscription.code}",
        )
        wizard.database_id = self._create_database("db-uuid-nosub")
        self.assertFalse(wizard.pairing_string, "no enterprise code, no pairing string")
        self.assertFalse(wizard.eligible)


@tagged("post_install", "-at_install")
class TestSelections(IotHttpsCase):
    def test_every_selection_offers_its_values(self):
        """A selection without options breaks the web client (found by the browser test)."""
        expected = {
            "iot.database": {"database_type": {"production", "staging", "development", "duplicate"}},
            "iot.subscription": {"state": {"draft", "in_progress", "paused", "closed"}},
        }
        for model, fields_ in expected.items():
            described = self.env[model].fields_get(list(fields_))
            for name, values in fields_.items():
                self.assertEqual({key for key, _label in described[name]["selection"]}, values, f"{model}.{name}")
        labels = dict(self.env["iot.subscription"].fields_get(["state"])["state"]["selection"])
        self.assertEqual(labels["in_progress"], "In Progress")
