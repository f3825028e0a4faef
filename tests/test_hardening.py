"""Brute force, revocation when a database stops being entitled, revocation over RPC,
faults between signing and recording, CA key custody."""

import json
import stat
from pathlib import Path
from unittest.mock import patch

import psycopg2
from cryptography import x509

from odoo.tests import new_test_user, tagged
from odoo.tools import config, mute_logger

from odoo.addons.iot_https.iot_pki import ca as ca_module
from odoo.addons.iot_https.iot_pki import codes, service

from .common import CRL_URL, X509_URL, IotHttpsCase, IotHttpsHttpCase, pem_certificates


@tagged("post_install", "-at_install")
class TestBruteForce(IotHttpsHttpCase):
    def setUp(self):
        super().setUp()
        self.env["iot.rate.bucket"].sudo().search([]).unlink()

    def test_wrong_codes_exhaust_the_database_bucket(self):
        self.params.set_param("iot_https.uuid_rate_limit", "3/3600")
        self.params.set_param("iot_https.client_rate_limit", "1000/1")
        for _attempt in range(3):
            response = self.request_x509(self.database.uuid, "WRONG-CODE")
            self.assertEqual(response.json(), {"jsonrpc": "2.0", "id": None, "result": False})
        # Locked: even the right code waits, or guessing would go on unhindered.
        response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.status_code, 429)
        self.assertGreater(int(response.headers["Retry-After"]), 0)
        self.assertEqual(response.json()["error"]["code"], service.RATE_LIMITED)
        self.assertEqual(self.last_request().decision, service.RATE_LIMITED)
        self.assertEqual(self.last_request().box_error_code, f"{codes.LOAD_REQUEST_STATUS} 429")
        # Another database is not affected.
        other = self._create_database("db-uuid-other", self._create_subscription("ENT-CODE-OTHER"))
        self.assertTrue(self.issue(other)["subject_cn"])

    def test_failures_from_one_client_exhaust_its_bucket(self):
        self.params.set_param("iot_https.uuid_rate_limit", "1000/1")
        self.params.set_param("iot_https.client_rate_limit", "3/3600")
        self.request_x509("unknown-1", "x")
        self.post_json(X509_URL, b"not json")
        self.request_x509("unknown-2", "y")
        response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.status_code, 429)
        self.assertIn("Retry-After", response.headers)

    def test_successes_take_no_token(self):
        self.params.set_param("iot_https.uuid_rate_limit", "1/3600")
        self.params.set_param("iot_https.client_rate_limit", "1/3600")
        for _box in range(5):
            self.assertTrue(self.issue(csr_pem=self.csr_pem)["x509_pem"])
        self.assertFalse(self.env["iot.rate.bucket"].sudo().search([]))


@tagged("post_install", "-at_install")
class TestRevocation(IotHttpsHttpCase):
    def _issued(self, database=None):
        result = self.issue(database, csr_pem=self.csr_pem)
        serial = pem_certificates(result["x509_pem"])[0].serial_number
        return self.env["iot.certificate"].search([("serial", "=", f"{serial:x}")])

    def _crl_serials(self):
        response = self.url_open(CRL_URL)
        return {entry.serial_number for entry in x509.load_der_x509_crl(response.content)}

    def test_closing_the_subscription_revokes(self):
        certificate = self._issued()
        self.subscription.state = "paused"  # paused resumes: certificates stay
        self.assertEqual(certificate.state, "valid")
        self.subscription.state = "closed"
        self.assertEqual(certificate.state, "revoked")
        self.assertIn(int(certificate.serial, 16), self._crl_serials())

    def test_leaving_production_revokes(self):
        certificate = self._issued()
        self.database.database_type = "staging"
        self.assertEqual(certificate.state, "revoked")
        self.assertTrue(certificate.revoked_at)

    def test_revoke_over_rpc_then_new_certificate_only_if_eligible(self):
        certificate = self._issued()
        manager = new_test_user(self.env, "iot_manager_rpc", groups="iot_https.iot_https_group_manager")
        self.authenticate(manager.login, manager.login)
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "params": {"model": "iot.certificate", "method": "action_revoke", "args": [[certificate.id]], "kwargs": {}},
        }
        response = self.url_open(
            "/web/dataset/call_kw", data=json.dumps(payload), headers={"Content-Type": "application/json"}
        )
        self.assertTrue(response.json()["result"], response.text)
        self.assertEqual(certificate.state, "revoked")
        self.assertIn(int(certificate.serial, 16), self._crl_serials())
        # Still eligible: the box's next request gets a new certificate.
        self.assertNotEqual(self._issued().id, certificate.id)
        # No longer eligible: refused.
        self.subscription.line_ids.filtered("is_iot_box").unlink()
        response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.json()["refusal"]["code"], codes.NO_IOT_BOX_LINE)


@tagged("post_install", "-at_install")
class TestFaults(IotHttpsHttpCase):
    def test_failure_after_signing_leaves_nothing_and_sends_nothing(self):
        """A crash between signing and recording: the transaction rolls back, no certificate leaves."""
        certificates_before = self.env["iot.certificate"].search_count([])
        with (
            patch(
                "odoo.addons.iot_https.models.iot_issuer.OrmStore.complete_certificate",
                side_effect=RuntimeError("disk full"),
            ),
            mute_logger("odoo.addons.iot_https.models.ir_http", "odoo.http"),
        ):
            response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.status_code, 500)
        self.assertNotIn("BEGIN CERTIFICATE", response.text)
        self.assertNotIn("Traceback", response.text)
        self.assertEqual(response.json()["error"]["code"], "internal_error")
        self.assertEqual(self.env["iot.certificate"].search_count([]), certificates_before)

    def test_database_unavailable_is_503_with_retry_after(self):
        with (
            patch(
                "odoo.addons.iot_https.models.iot_issuer.OrmStore.find_database",
                side_effect=psycopg2.OperationalError("server closed the connection unexpectedly"),
            ),
            mute_logger("odoo.addons.iot_https.models.ir_http", "odoo.http", "odoo.service.model"),
        ):
            response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.status_code, 503)
        self.assertIn("Retry-After", response.headers)
        self.assertNotIn("Traceback", response.text)


@tagged("post_install", "-at_install")
class TestKeyCustody(IotHttpsCase):
    def test_passphrase_from_server_configuration_encrypts_ca_keys(self):
        """odoo.conf's iot_https_ca_passphrase encrypts the CA keys written at creation."""
        directory = Path(self.env["iot.issuer"]._ca_directory()).parent / "custody-test"
        with (
            patch.dict(config.options, {"iot_https_ca_passphrase": "conf passphrase"}),
            patch.object(type(self.env["iot.issuer"]), "_ca_directory", lambda _self: directory),
        ):
            authority = self.env["iot.issuer"]._get_ca()
        self.assertTrue(authority.issuing_key)
        for name in (ca_module.ROOT_KEY, ca_module.ISSUING_KEY):
            data = (directory / name).read_bytes()
            self.assertIn(b"ENCRYPTED PRIVATE KEY", data)
            self.assertEqual(stat.S_IMODE((directory / name).stat().st_mode), 0o600)
        with self.assertRaisesRegex(ca_module.CAError, "passphrase is required"):
            ca_module.CertificateAuthority.load(directory)
        ca_module.CertificateAuthority.load(directory, "conf passphrase")


HOSTILE_BODIES = [
    b"",
    b"not json",
    b"\xff\xfe\x00",
    b"[]",
    b'"params"',
    b"42",
    b"null",
    b'{"params": null}',
    b'{"params": []}',
    b'{"params": "x"}',
    b'{"params": {"db_uuid": 1, "enterprise_code": "c"}}',
    b'{"params": {"db_uuid": ["u"], "enterprise_code": "c"}}',
    b'{"params": {"db_uuid": {"u": 1}, "enterprise_code": "c"}}',
    b'{"params": {"db_uuid": true, "enterprise_code": "c"}}',
    b'{"params": {"db_uuid": "u", "enterprise_code": null}}',
    b'{"params": {"db_uuid": "u\\u0000", "enterprise_code": "c"}}',
    b'{"params": {"db_uuid": "\\ud800", "enterprise_code": "c"}}',
    b'{"params": {"db_uuid": "db-uuid-eligible", "enterprise_code": "\\ud800"}}',
    '{"params": {"db_uuid": "\u202e\U0001f512\u0301\u200d", "enterprise_code": "\u0645"}}'.encode(),
    json.dumps({"params": {"db_uuid": "u" * 100, "enterprise_code": "é" * 1000}}).encode(),
    json.dumps({"params": {"db_uuid": "u", "enterprise_code": "c" * 60_000}}).encode(),
    json.dumps(
        {"params": {"db_uuid": "db-uuid-eligible", "enterprise_code": "ENT-CODE-ELIGIBLE", "csr_pem": 7}}
    ).encode(),
    json.dumps({"jsonrpc": "1.0", "params": {"db_uuid": "u", "enterprise_code": "c"}}).encode(),
    json.dumps({"id": {"x": 1}, "params": {"db_uuid": "u", "enterprise_code": "c"}}).encode(),
    b"[" * 5000 + b"]" * 5000,
]


@tagged("post_install", "-at_install")
class TestHostileInput(IotHttpsHttpCase):
    def test_every_hostile_body_gets_a_result_or_a_4xx(self):
        self.params.set_param("iot_https.client_rate_limit", "100000/1")
        certificates = self.env["iot.certificate"].search_count([])
        for body in HOSTILE_BODIES:
            requests_before = self.env["iot.request"].search_count([])
            response = self.post_json(X509_URL, body)
            self.assertLess(response.status_code, 500, body[:80])
            if response.status_code == 200:
                self.assertIn("result", response.json(), body[:80])
            self.assertNotIn("Traceback", response.text)
            self.assertLessEqual(self.env["iot.request"].search_count([]) - requests_before, 1)
        self.assertEqual(self.env["iot.certificate"].search_count([]), certificates)

    def test_refused_csrs_are_refusals_with_a_reason(self):
        from cryptography.hazmat.primitives import serialization as ser
        from cryptography.hazmat.primitives.asymmetric import rsa

        from odoo.addons.iot_https.iot_pki import keys

        weak = keys.make_csr(rsa.generate_private_key(65537, 1024)).public_bytes(ser.Encoding.PEM).decode()  # noqa: S505
        for csr_pem in ("garbage", weak, self.csr_pem.replace("A", "B", 3)):
            response = self.request_x509(self.database.uuid, self.subscription.code, csr_pem=csr_pem)
            self.assertEqual(response.status_code, 200)
            self.assertIs(response.json()["result"], False)
            self.assertEqual(response.json()["refusal"]["code"], codes.CSR_REJECTED)

    def test_unknown_methods_and_paths_are_4xx(self):
        for method in ("PUT", "DELETE", "PATCH"):
            response = self.opener.request(method, self.base_url() + X509_URL, timeout=10)
            self.assertEqual(response.status_code, 405, method)
        self.assertEqual(self.url_open("/odoo-enterprise/iot/nope").status_code, 404)
