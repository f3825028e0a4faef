import contextlib
import datetime
import shutil
import socket
import tempfile
from pathlib import Path
from unittest.mock import patch

from dateutil.relativedelta import relativedelta
from lxml import etree

from odoo import fields
from odoo.tests import new_test_user, tagged
from odoo.tools.safe_eval import safe_eval

from odoo.addons.iot_https.iot_pki import https_check, keys, profile
from odoo.addons.iot_https.testkit.tls import TlsServer, closed_port, self_signed, write_chain

from .common import IotHttpsHttpCase, pem_certificates

BOX_IP = "127.0.0.1"


@tagged("post_install", "-at_install")
class TestCheckHttps(IotHttpsHttpCase):
    """iot.box.action_check_https against a real TLS server on 127.0.0.1 serving a certificate
    issued by this database's CA; only the box's name is resolved by a fake, at the edge."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.iot_user = new_test_user(cls.env, "iot_https_checker", groups="iot_https.iot_https_group_user")
        cls.folder = Path(tempfile.mkdtemp())
        cls.addClassCleanup(shutil.rmtree, cls.folder, ignore_errors=True)

    def setUp(self):
        super().setUp()
        # The box's certificate, issued through the x509 endpoint in CSR mode with the key it keeps.
        result = self.issue(csr_pem=self.csr_pem)
        self.chain_pem, self.subject = result["x509_pem"], result["subject_cn"]
        self.leaf = pem_certificates(self.chain_pem)[0]
        self.host = profile.box_hostname(BOX_IP, self.subject)
        self.server = self._serve(self.chain_pem, self.csr_key)
        self.params.set_param("iot_https.box_https_port", str(self.server.port))
        self.box = self.env["iot.box"].create({"name": "Counter", "identifier": "b8:27:eb:00:00:10", "ip": self.host})

    def _serve(self, chain_pem, key):
        folder = tempfile.mkdtemp(dir=self.folder)
        server = TlsServer(*write_chain(folder, chain_pem, keys.private_key_pem(key)))
        self.addCleanup(server.stop)
        return server

    @contextlib.contextmanager
    def _dns(self, answers):
        """Resolve the names of ``answers`` (an address, or a getaddrinfo errno); others as usual."""
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host not in answers:
                return real(host, port, *args, **kwargs)
            if isinstance(answers[host], int):
                raise socket.gaierror(answers[host], "fake resolver")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port or 0))]

        with patch.object(socket, "getaddrinfo", getaddrinfo):
            yield

    def _check(self, box=None, answers=None):
        box = box or self.box
        with self._dns(answers if answers is not None else {box.ip: BOX_IP}):
            self.assertIs(box.with_user(self.iot_user).action_check_https(), True)
        return box

    def _assert_error(self, box, code):
        self.assertEqual(box.https_state, "error", box.https_message)
        self.assertEqual(box.https_code, code, box.https_message)
        self.assertTrue(box.https_message and box.https_fix and box.https_checked_at)

    # === OUTCOMES ===

    def test_ok_stores_the_served_validity(self):
        before = fields.Datetime.now()
        box = self._check()
        self.assertEqual(box.https_state, "ok", box.https_message)
        self.assertEqual(box.https_code, "ok")
        self.assertEqual(box.https_subject, self.subject)
        self.assertEqual(box.https_not_before, self.leaf.not_valid_before)
        self.assertEqual(box.https_not_after, self.leaf.not_valid_after)
        self.assertEqual(box.https_not_after, box.certificate_id.not_after, "the certificate this database issued")
        self.assertTrue(box.https_message.startswith(f"https://{self.host}:{self.server.port} verified (TLSv1."))
        self.assertIn(f"{self.subject} valid from ", box.https_message)
        self.assertFalse(box.https_fix)
        self.assertGreaterEqual(box.https_checked_at, before.replace(microsecond=0))
        self.assertTrue(self.server.wait_for_handshakes(1))

    def test_button_for_iot_users_and_outcome_on_the_form(self):
        views = self.env["iot.box"].with_user(self.iot_user).get_views([(False, "form"), (False, "list")])
        form = etree.fromstring(views["views"]["form"]["arch"])
        self.assertEqual(len(form.xpath("//header/button[@name='action_check_https']")), 1)
        for state in ("ok", "warning", "error"):
            alert = form.xpath(f"//div[contains(@class, 'alert')][@invisible=\"https_state != '{state}'\"]")
            self.assertEqual(len(alert), 1, state)
            self.assertTrue(alert[0].xpath(".//field[@name='https_message']"), state)
        tree = etree.fromstring(views["views"]["list"]["arch"])
        self.assertEqual(tree.xpath("//field[@name='https_state']/@widget"), ["badge"])

    def test_untrusted_root_is_a_verify_error(self):
        other, key = self_signed(self.subject, dns_name=self.subject)
        server = self._serve(keys.certificate_pem(other), key)
        self.params.set_param("iot_https.box_https_port", str(server.port))
        box = self._check()
        self._assert_error(box, https_check.VERIFY_FAILED)
        self.assertIn("does not verify: self-signed certificate", box.https_message)
        self.assertIn("the whole chain", box.https_fix)
        self.assertIn("issuer's root", box.https_fix)

    def test_wrong_name_is_a_name_mismatch(self):
        host = f"127-0-0-1.otherlabel.{self.zone}"  # in our zone, not the certificate's name
        box = self.env["iot.box"].create({"name": "Moved", "identifier": "b8:27:eb:00:00:11", "ip": host})
        self._check(box)
        self._assert_error(box, https_check.NAME_MISMATCH)
        self.assertIn(f"is not for {host}", box.https_message)
        self.assertTrue(box.https_message.endswith(f"it is for {self.subject}"))
        self.assertIn("its own name", box.https_fix)

    def test_nothing_listening_is_connection_refused(self):
        port = closed_port(BOX_IP)
        self.params.set_param("iot_https.box_https_port", str(port))
        box = self._check()
        self._assert_error(box, https_check.CONNECTION_REFUSED)
        self.assertEqual(box.https_message, f"connection to {BOX_IP}:{port} refused: nothing serves HTTPS there")
        self.assertFalse(box.https_not_after)

    def test_nxdomain_gives_the_documented_dns_fix(self):
        box = self._check(answers={self.host: socket.EAI_NONAME})
        self._assert_error(box, https_check.DNS_NXDOMAIN)
        self.assertTrue(box.https_message.startswith(f"{self.host} does not resolve (NXDOMAIN from the Odoo server's"))
        self.assertIn("blocks public names that resolve to private addresses", box.https_message)
        self.assertIn("DNS_PROBE_FINISHED_NXDOMAIN", box.https_message)
        self.assertTrue(box.https_fix.startswith("if the router allows manual DNS, set it to Google DNS"))
        self.assertIn("on each device that uses the box", box.https_fix)
        self.assertEqual(self.server.handshakes, 0, "a name that does not resolve is not contacted")

    def test_box_with_only_an_ipv4_has_no_https_name(self):
        box = self.env["iot.box"].create({"name": "New", "identifier": "b8:27:eb:00:00:12", "ip": "10.0.0.5"})
        with patch.object(socket, "create_connection", side_effect=AssertionError("contacted")):
            self._check(box, answers={})
        self._assert_error(box, https_check.NO_HTTPS_NAME)
        self.assertIn("IP address 10.0.0.5: it has no HTTPS name yet", box.https_message)
        self.assertIn("restart the box", box.https_fix)
        no_address = self.env["iot.box"].create({"name": "Unseen", "identifier": "b8:27:eb:00:00:13"})
        self._check(no_address, answers={})
        self._assert_error(no_address, https_check.NO_HTTPS_NAME)

    def test_names_in_our_zone_are_verified_with_our_root_whatever_their_case(self):
        host = self.host.upper() + "."
        box = self.env["iot.box"].create({"name": "Typed", "identifier": "b8:27:eb:00:00:14", "ip": host})
        root = self.env["iot.issuer"]._box_trust_file(self.host)
        self.assertTrue(isinstance(root, str) and Path(root).is_file(), root)
        self.assertEqual(box._log_url(), (f"https://{host}:{self.server.port}/hw_drivers/download_logs", root))
        self._check(box, answers={self.host: BOX_IP})
        self.assertEqual(box.https_state, "ok", box.https_message)

    # === STORED STATE ===

    def test_a_new_address_forgets_the_last_check(self):
        self._check()
        self.assertEqual(self.box.https_state, "ok")
        self.box.ip = "10.0.0.6"
        self.assertEqual(self.box.https_state, "unknown")
        self.assertFalse(self.box.https_message or self.box.https_checked_at or self.box.https_not_after)

    def test_daily_cron_records_expiry_of_what_boxes_serve(self):
        self._check()
        checked_at = self.box.https_checked_at
        now = fields.Datetime.now()
        self.box.https_not_after = now + datetime.timedelta(days=5)
        fine = self.box.copy({"identifier": "b8:27:eb:00:00:15", "ip": self.host})
        self.assertEqual(fine.https_state, "unknown", "a copy is not checked")
        fine.write({"https_state": "ok", "https_code": "ok", "https_not_after": now + datetime.timedelta(days=60)})
        gone = self.box.copy({"identifier": "b8:27:eb:00:00:16", "ip": self.host})
        gone.write(
            {
                "https_state": "ok",
                "https_code": "ok",
                "https_subject": self.subject,
                "https_not_before": now - datetime.timedelta(days=90),
                "https_not_after": now - datetime.timedelta(hours=1),
            }
        )
        self.env["iot.certificate"]._cron_mark_expired()
        self.assertEqual((self.box.https_state, self.box.https_code), ("warning", https_check.EXPIRING_SOON))
        self.assertIn(f"{self.subject} expires on ", self.box.https_message)
        self.assertTrue(self.box.https_fix)
        self.assertEqual(self.box.https_checked_at, checked_at, "no connection was made: the check time stays")
        self.assertEqual((gone.https_state, gone.https_code), ("error", https_check.EXPIRED))
        # Worded as the button words it: the address and port that were checked.
        self.assertTrue(gone.https_message.startswith(f"the certificate served on {BOX_IP}:{self.server.port} expired"))
        self.assertEqual(fine.https_state, "ok")

    def test_box_filters(self):
        self._check()
        broken = self.env["iot.box"].create({"name": "Old", "identifier": "b8:27:eb:00:00:17", "ip": "10.0.0.7"})
        self._check(broken, answers={})
        unchecked = self.env["iot.box"].create({"name": "Unseen", "identifier": "b8:27:eb:00:00:18"})
        boxes = self.box | broken | unchecked
        expected = {"https_ok": self.box, "https_not_working": broken, "https_unknown": unchecked}
        for name, selected in expected.items():
            self.assertEqual(self._filter_domain("iot.box", name, boxes), selected, name)
        self.box.write({"https_state": "warning", "https_code": https_check.EXPIRING_SOON})
        broken.https_code = https_check.TEMPORARY_CERTIFICATE
        self.assertEqual(self._filter_domain("iot.box", "https_renew", boxes), self.box | broken)

    # === CERTIFICATES ABOUT TO EXPIRE ===

    def test_certificate_filter_expiring_within_30_days(self):
        now = fields.Datetime.now()
        soon = self._create_certificate(
            self.database, "e10", not_before=now - datetime.timedelta(days=80), not_after=now + relativedelta(days=10)
        )
        later = self._create_certificate(
            self.database, "e60", not_before=now - datetime.timedelta(days=30), not_after=now + relativedelta(days=60)
        )
        revoked = self._create_certificate(
            self.database,
            "e11",
            not_before=now - datetime.timedelta(days=80),
            not_after=now + relativedelta(days=10),
            state="revoked",
        )
        selected = self._filter_domain("iot.certificate", "expiring_soon", soon | later | revoked)
        self.assertEqual(selected, soon)
        tree = etree.fromstring(self.env["iot.certificate"].get_views([(False, "list")])["views"]["list"]["arch"])
        self.assertIn("relativedelta(days=30)", tree.get("decoration-warning"))

    def _filter_domain(self, model, name, records):
        """The records of ``records`` that the search view's filter ``name`` selects (its domain evaluated)."""
        arch = etree.fromstring(self.env[model].get_views([(False, "search")])["views"]["search"]["arch"])
        domains = arch.xpath(f"//filter[@name='{name}']/@domain")
        self.assertEqual(len(domains), 1, f"{model} has a filter {name}")
        domain = safe_eval(
            domains[0],
            {
                "context_today": lambda: fields.Date.context_today(self.env.user),
                "relativedelta": relativedelta,
            },
        )
        return self.env[model].search([*domain, ("id", "in", records.ids)])
