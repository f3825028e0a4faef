import hashlib
import json

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from odoo.tests import tagged

from odoo.addons.iot_https.iot_pki import codes

from .common import X509_URL, IotHttpsHttpCase, pem_certificates, spki

REFUSED_BODY = {"jsonrpc": "2.0", "id": None, "result": False}


@tagged("post_install", "-at_install")
class TestX509Endpoint(IotHttpsHttpCase):
    """POST /odoo-enterprise/iot/x509 over HTTP, as a stock box (or a CSR-aware box) calls it."""

    def _assert_chain(self, result):
        """The x509_pem of an answer: leaf then issuing CA, no root; :return: (leaf, issuing)."""
        chain = pem_certificates(result["x509_pem"])
        self.assertEqual(len(chain), 2, "leaf + intermediate, the root is not sent")
        self.assertEqual(result["x509_pem"].count("-----BEGIN CERTIFICATE-----"), 2)
        leaf, issuing = chain
        self.assertEqual(leaf.issuer, issuing.subject)
        self.assertNotEqual(issuing.issuer, issuing.subject, "the second certificate is not a self-signed root")
        issuing.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
        subject_cn = result["subject_cn"]
        self.assertEqual(leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, subject_cn)
        self.assertTrue(subject_cn.startswith("*."))
        self.assertTrue(subject_cn.endswith("." + self.zone))
        label = subject_cn[2 : -len(self.zone) - 1]
        self.assertTrue(label and "." not in label, "one label between the wildcard and the zone")
        self.assertNotIn(self.database.uuid, subject_cn, "the label does not reveal the database UUID")
        return leaf, issuing

    def _assert_recorded(self, leaf, result, mode):
        certificate = self.env["iot.certificate"].search([("serial", "=", f"{leaf.serial_number:x}")])
        self.assertEqual(len(certificate), 1)
        self.assertEqual(certificate.database_id, self.database)
        self.assertEqual(certificate.subject_cn, result["subject_cn"])
        self.assertEqual(certificate.mode, mode)
        self.assertEqual(certificate.state, "valid")
        self.assertEqual(certificate.not_before, leaf.not_valid_before)
        self.assertEqual(certificate.not_after, leaf.not_valid_after)
        der = leaf.public_bytes(serialization.Encoding.DER)
        self.assertEqual(certificate.fingerprint, hashlib.sha256(der).hexdigest())
        self.assertEqual(pem_certificates(certificate.certificate_pem), [leaf])
        self.assertNotIn("PRIVATE KEY", certificate.certificate_pem)

        request = self.last_request()
        self.assertEqual(request.decision, "issued")
        self.assertEqual(request.mode, mode)
        self.assertEqual(request.database_id, self.database)
        self.assertEqual(request.claimed_uuid, self.database.uuid)
        self.assertEqual(request.certificate_id, certificate)
        self.assertEqual(request.client_address, "127.0.0.1")
        self.assertFalse(request.box_error_code)
        return certificate

    def test_legacy_mode_issues_key_and_chain(self):
        response = self.request_x509(self.database.uuid, self.subscription.code)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], "application/json")
        body = response.json()
        self.assertEqual(body["jsonrpc"], "2.0")
        self.assertIsNone(body["id"])
        result = body["result"]
        self.assertEqual(set(result), {"x509_pem", "private_key_pem", "subject_cn"})
        leaf, _issuing = self._assert_chain(result)

        private_key = serialization.load_pem_private_key(result["private_key_pem"].encode(), password=None)
        self.assertEqual(spki(private_key), spki(leaf), "the key returned is the leaf's key")
        self.assertIsInstance(private_key, rsa.RSAPrivateKey, "stock boxes get RSA-2048 by default")
        self.assertEqual(private_key.key_size, 2048)
        # The key really works with the certificate: sign with it, verify with the leaf.
        signature = private_key.sign(b"nginx", padding.PKCS1v15(), leaf.signature_hash_algorithm)
        leaf.public_key().verify(signature, b"nginx", padding.PKCS1v15(), leaf.signature_hash_algorithm)

        self._assert_recorded(leaf, result, "legacy")

    def test_csr_mode_keeps_the_box_key(self):
        result = self.issue(csr_pem=self.csr_pem)
        self.assertNotIn("private_key_pem", result)
        self.assertEqual(set(result), {"x509_pem", "subject_cn"})
        leaf, _issuing = self._assert_chain(result)
        self.assertEqual(spki(leaf), spki(self.csr_key), "the leaf certifies the CSR's key")
        self.assertNotEqual(
            leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value, "iot-box", "names in the CSR are ignored"
        )
        self._assert_recorded(leaf, result, "csr")

    def test_same_database_same_subject(self):
        first = self.issue(csr_pem=self.csr_pem)
        second = self.issue()
        self.assertEqual(first["subject_cn"], second["subject_cn"])
        serials = {pem_certificates(r["x509_pem"])[0].serial_number for r in (first, second)}
        self.assertEqual(len(serials), 2, "every certificate has its own serial")
        self.assertEqual(self.env["iot.certificate"].search_count([("database_id", "=", self.database.id)]), 2)

    def test_jsonrpc_envelope(self):
        payload = {
            "jsonrpc": "2.0",
            "method": "call",
            "id": 5,
            "params": {"db_uuid": self.database.uuid, "enterprise_code": self.subscription.code},
        }
        response = self.post_json(X509_URL, payload)
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertEqual(body["id"], 5)
        self.assertEqual(body["jsonrpc"], "2.0")
        self.assertTrue(body["result"]["x509_pem"])

    def test_refusals_give_the_reason_with_matching_credentials(self):
        cases = {
            codes.NOT_PRODUCTION: self._create_database(
                "db-uuid-staging", self._create_subscription("ENT-CODE-STAGING"), "staging"
            ),
            codes.SUBSCRIPTION_NOT_IN_PROGRESS: self._create_database(
                "db-uuid-paused", self._create_subscription("ENT-CODE-PAUSED", state="paused")
            ),
            codes.NO_IOT_BOX_LINE: self._create_database(
                "db-uuid-noline", self._create_subscription("ENT-CODE-NOLINE", iot_line=False)
            ),
        }
        for reason, database in cases.items():
            with self.subTest(reason=reason):
                before = self.env["iot.certificate"].search_count([])
                response = self.request_x509(database.uuid, database.subscription_id.code)
                self.assertEqual(response.status_code, 200)
                body = response.json()
                self.assertIs(body["result"], False)
                self.assertEqual(body["refusal"]["code"], reason)
                self.assertEqual(body["refusal"]["message"], codes.REFUSALS[reason].meaning)
                self.assertEqual(self.env["iot.certificate"].search_count([]), before)
                request = self.last_request()
                self.assertEqual(request.decision, reason)
                self.assertEqual(request.database_id, database)
                self.assertEqual(request.claimed_uuid, database.uuid)
                self.assertFalse(request.certificate_id)
                self.assertEqual(request.box_error_code, codes.LOAD_REQUEST_NO_RESULT)

    def test_unknown_uuid_and_wrong_code_answer_the_same(self):
        requests_before = self.env["iot.request"].search_count([])
        unknown = self.request_x509("db-uuid-nobody", self.subscription.code)
        wrong_code = self.request_x509(self.database.uuid, "ENT-CODE-WRONG")
        for response in (unknown, wrong_code):
            self.assertEqual(response.status_code, 200)
            self.assertEqual(response.json(), REFUSED_BODY)
        self.assertEqual(unknown.content, wrong_code.content, "nothing tells a known UUID from an unknown one")

        self.assertEqual(self.env["iot.request"].search_count([]), requests_before + 2)
        logged = self.env["iot.request"].search([], limit=2)
        self.assertEqual(set(logged.mapped("decision")), {codes.UNKNOWN_CREDENTIALS})
        self.assertEqual(set(logged.mapped("claimed_uuid")), {"db-uuid-nobody", self.database.uuid})
        self.assertFalse(logged.database_id)
        self.assertFalse(self.env["iot.certificate"].search_count([]))

    def test_database_without_subscription_has_no_valid_code(self):
        database = self._create_database("db-uuid-nosub")
        response = self.request_x509(database.uuid, "ENT-CODE-ANY")
        self.assertEqual(response.json(), REFUSED_BODY)
        self.assertEqual(self.last_request().decision, codes.UNKNOWN_CREDENTIALS)

    def test_malformed_requests_get_400(self):
        bodies = {
            "not json": b"{not json",
            "not an object": b"[1, 2]",
            "no params": json.dumps({"db_uuid": self.database.uuid}),
            "missing code": json.dumps({"params": {"db_uuid": self.database.uuid}}),
            "code not a string": json.dumps({"params": {"db_uuid": self.database.uuid, "enterprise_code": 42}}),
        }
        for name, body in bodies.items():
            with self.subTest(body=name):
                response = self.post_json(X509_URL, body)
                self.assertEqual(response.status_code, 400)
                self.assertNotIn("Traceback", response.text)
                self.assertNotIn('File "', response.text)
                error = response.json()["error"]
                self.assertEqual(error["code"], "invalid_request")
                self.assertTrue(error["message"])
                self.assertEqual(self.last_request().decision, "invalid_request")
        self.assertFalse(self.env["iot.certificate"].search_count([]))

    def test_csr_rejected(self):
        response = self.request_x509(self.database.uuid, self.subscription.code, csr_pem="not a CSR")
        self.assertEqual(response.status_code, 200)
        body = response.json()
        self.assertIs(body["result"], False)
        self.assertEqual(body["refusal"]["code"], codes.CSR_REJECTED)
        self.assertEqual(self.last_request().decision, codes.CSR_REJECTED)

    def test_body_over_64_kib_gets_413(self):
        payload = {
            "params": {
                "db_uuid": self.database.uuid,
                "enterprise_code": self.subscription.code,
                "padding": "x" * (65 * 1024),
            }
        }
        requests_before = self.env["iot.request"].search_count([])
        response = self.post_json(X509_URL, payload)
        self.assertEqual(response.status_code, 413)
        self.assertEqual(response.json()["error"]["code"], "body_too_large")
        self.assertEqual(self.env["iot.request"].search_count([]), requests_before)
        self.assertFalse(self.env["iot.certificate"].search_count([]))

    def test_chunked_body_over_64_kib_gets_413(self):
        """Without a Content-Length, the body is read up to the cap, not further."""
        chunks = [b'{"params": {"db_uuid": "x", "enterprise_code": "y", "padding": "', *[b"x" * 1024] * 70, b'"}}']
        response = self.url_open(X509_URL, data=iter(chunks), headers={"Content-Type": "application/json"})
        self.assertEqual(response.status_code, 413)
        self.assertEqual(response.json()["error"]["code"], "body_too_large")

    def test_get_is_not_an_answer(self):
        response = self.url_open(X509_URL)
        self.assertNotEqual(response.status_code, 200)
        self.assertEqual(response.status_code, 405)


@tagged("post_install", "-at_install")
class TestIotLineAddedLater(IotHttpsHttpCase):
    """Documented case: the IoT box line was added after the box connected. Eligibility is
    evaluated on every request, so the box's next request (refresh, restart) gets its certificate."""

    def test_next_request_is_issued(self):
        subscription = self._create_subscription("ENT-CODE-LATER", iot_line=False)
        database = self._create_database("db-uuid-later", subscription)

        first = self.request_x509(database.uuid, subscription.code)
        self.assertEqual(first.status_code, 200)
        self.assertIs(first.json()["result"], False)
        self.assertEqual(first.json()["refusal"]["code"], codes.NO_IOT_BOX_LINE)
        self.assertEqual(self.last_request().decision, codes.NO_IOT_BOX_LINE)

        subscription.write({"line_ids": [(0, 0, {"product_id": self.iot_product.id, "quantity": 1})]})

        second = self.request_x509(database.uuid, subscription.code)
        self.assertEqual(second.status_code, 200)
        result = second.json()["result"]
        self.assertTrue(result["x509_pem"])
        self.assertTrue(result["private_key_pem"])
        self.assertEqual(self.last_request().decision, "issued")
        self.assertEqual(self.last_request().database_id, database)
        self.assertEqual(database.certificate_count, 1)
