"""Fixtures shared by the addon's tests: settings, products, subscriptions,
databases and a CSR key, all built in setUpClass (no demo data)."""

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from odoo.tests import HttpCase, TransactionCase

from odoo.addons.iot_https.models.iot_box import LOG_PATH

X509_URL = "/odoo-enterprise/iot/x509"
SETUP_URL = "/iot/setup"
ROOT_URL = "/odoo-enterprise/iot/ca.pem"
ISSUING_URL = "/odoo-enterprise/iot/issuing-ca.cer"
CRL_URL = "/odoo-enterprise/iot/issuing-ca.crl"
JSON_HEADERS = {"Content-Type": "application/json"}

_PEM_CERTIFICATE = re.compile(r"-----BEGIN CERTIFICATE-----\n.+?\n-----END CERTIFICATE-----\n?", re.S)


def pem_certificates(pem):
    """The certificates of a PEM bundle, in order."""
    return [x509.load_pem_x509_certificate(block.encode("ascii")) for block in _PEM_CERTIFICATE.findall(pem)]


def spki(key_or_certificate):
    """The DER SubjectPublicKeyInfo of a key (public or private) or a certificate, to compare keys."""
    key = key_or_certificate.public_key()
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def pem_body_lines(pem):
    """The base64 lines of a PEM document (without its BEGIN/END lines)."""
    return [line for line in pem.strip().splitlines() if line and not line.startswith("-----")]


class IotHttpsCase(TransactionCase):
    """Issuer settings, an IoT-box product, and one eligible database."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.params = cls.env["ir.config_parameter"].sudo()
        cls.zone = "iot.example.com"
        cls.pairing_token = "test-pairing-token-0123456789"
        cls.params.set_param("iot_https.zone", cls.zone)
        cls.params.set_param("iot_https.public_url", "http://pki.example.com")
        cls.params.set_param("iot_https.pairing_token", cls.pairing_token)
        cls.params.set_param("iot_https.issuance_enabled", "True")

        cls.iot_product = cls.env["product.product"].create(
            {"name": "IoT Box Subscription (test)", "iot_box_subscription": True}
        )
        cls.other_product = cls.env["product.product"].create({"name": "Enterprise User (test)"})

        cls.subscription = cls._create_subscription("ENT-CODE-ELIGIBLE")
        cls.database = cls._create_database("db-uuid-eligible", cls.subscription)

        # The key a box keeps in CSR mode (EC: fast to generate).
        cls.csr_key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "iot-box")]))
            .sign(cls.csr_key, hashes.SHA256())
        )
        cls.csr_pem = csr.public_bytes(serialization.Encoding.PEM).decode("ascii")

    @classmethod
    def _create_subscription(cls, code, state="in_progress", iot_line=True):
        lines = [(0, 0, {"product_id": cls.other_product.id, "quantity": 3})]
        if iot_line:
            lines.append((0, 0, {"product_id": cls.iot_product.id, "quantity": 1}))
        return cls.env["iot.subscription"].create({"code": code, "state": state, "line_ids": lines})

    @classmethod
    def _create_database(cls, uuid, subscription=None, database_type="production"):
        return cls.env["iot.database"].create(
            {
                "name": f"Database {uuid}",
                "uuid": uuid,
                "database_type": database_type,
                "subscription_id": subscription.id if subscription else False,
            }
        )

    @classmethod
    def _create_certificate(cls, database, serial, **values):
        """A certificate record as the issuer would keep it (no signing needed for model tests)."""
        return (
            cls.env["iot.certificate"]
            .sudo()
            .create(
                {
                    "database_id": database.id,
                    "subject_cn": f"*.label{serial}.{cls.zone}",
                    "serial": serial,
                    "not_before": "2026-01-01 00:00:00",
                    "not_after": "2026-04-01 00:00:00",
                    "mode": "legacy",
                    **values,
                }
            )
        )


class IotHttpsHttpCase(IotHttpsCase, HttpCase):
    """The fixtures above, plus helpers calling the public routes over HTTP."""

    def post_json(self, url, payload):
        """POST a JSON body (a dict, or raw bytes/str sent as is)."""
        data = payload if isinstance(payload, (bytes, str)) else json.dumps(payload)
        return self.url_open(url, data=data, headers=dict(JSON_HEADERS))

    def request_x509(self, db_uuid, enterprise_code, **params):
        """A certificate request as a stock box sends it (``csr_pem=`` for CSR mode)."""
        payload = {"params": {"db_uuid": db_uuid, "enterprise_code": enterprise_code, **params}}
        return self.post_json(X509_URL, payload)

    def issue(self, database=None, **params):
        """Request a certificate that must be issued: :return: the ``result`` object."""
        database = database or self.database
        response = self.request_x509(database.uuid, database.subscription_id.code, **params)
        self.assertEqual(response.status_code, 200, response.text)
        result = response.json()["result"]
        self.assertTrue(result, response.text)
        return result

    def last_request(self):
        return self.env["iot.request"].search([], limit=1)


class FakeBoxHandler(BaseHTTPRequestHandler):
    """A box's HTTP server: GET /hw_drivers/download_logs serves the server's ``log``."""

    def do_GET(self):
        box = self.server
        box.paths.append(self.path)
        if self.path != LOG_PATH:
            self.send_error(404)
            return
        if box.status != 200:
            self.send_error(box.status)
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", "attachment; filename=odoo.log")
        self.send_header("Content-Length", str(len(box.log)))
        self.end_headers()
        self.wfile.write(box.log)

    def log_message(self, format, *args):  # noqa: A002 - silence the test output
        pass


def serve_fake_box(case_class, log):
    """A box's HTTP server on 127.0.0.1 serving ``log`` (its ``status`` and the ``paths`` asked
    can be changed and read), stopped when ``case_class`` ends; the box HTTP port points at it."""
    fake_box = ThreadingHTTPServer(("127.0.0.1", 0), FakeBoxHandler)
    fake_box.daemon_threads = True
    fake_box.log, fake_box.status, fake_box.paths = log, 200, []
    thread = threading.Thread(target=fake_box.serve_forever, daemon=True)
    thread.start()
    case_class.addClassCleanup(thread.join, 5)
    case_class.addClassCleanup(fake_box.server_close)
    case_class.addClassCleanup(fake_box.shutdown)
    case_class.params.set_param("iot_https.box_http_port", str(fake_box.server_address[1]))
    return fake_box
