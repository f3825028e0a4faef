import shutil
import stat
import tempfile
from pathlib import Path
from unittest.mock import patch

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from odoo.tests import tagged

from odoo.addons.iot_https.iot_pki import ca as ca_module
from odoo.addons.iot_https.models import iot_issuer

from .common import CRL_URL, ISSUING_URL, ROOT_URL, IotHttpsHttpCase, pem_body_lines, pem_certificates

# A PEM private key of any kind: PKCS#8, encrypted PKCS#8, traditional RSA/EC.
PRIVATE_KEY_PATTERN = "-----BEGIN [A-Z ]*PRIVATE KEY-----"


def _verify(issuer_certificate, signed):
    """Raise unless ``issuer_certificate``'s key signed ``signed`` (a certificate)."""
    issuer_certificate.public_key().verify(
        signed.signature, signed.tbs_certificate_bytes, ec.ECDSA(signed.signature_hash_algorithm)
    )


@tagged("post_install", "-at_install")
class TestCaDownloads(IotHttpsHttpCase):
    """The CA material served at the URLs embedded in the certificates."""

    def _get(self, url, content_type):
        response = self.url_open(url)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.headers["Content-Type"], content_type)
        return response.content

    def test_root_issuing_and_leaf(self):
        result = self.issue()
        leaf, chain_issuing = pem_certificates(result["x509_pem"])

        root_pem = self._get(ROOT_URL, "application/x-pem-file").decode("ascii")
        (root,) = pem_certificates(root_pem)
        self.assertEqual(root.subject, root.issuer, "the root is self-signed")
        _verify(root, root)
        self.assertTrue(root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        self.assertNotIn(root_pem.strip(), result["x509_pem"], "the root is not in the chain sent to boxes")
        self.assertNotIn(root, pem_certificates(result["x509_pem"]))

        issuing = x509.load_der_x509_certificate(self._get(ISSUING_URL, "application/pkix-cert"))
        self.assertEqual(issuing, chain_issuing, "the chain's intermediate is the issuing CA served")
        self.assertEqual(issuing.issuer, root.subject)
        _verify(root, issuing)
        self.assertEqual(leaf.issuer, issuing.subject)
        _verify(issuing, leaf)

        # The leaf points to these very URLs (public URL setting + paths).
        aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
        self.assertEqual(aia[0].access_location.value, "http://pki.example.com" + ISSUING_URL)
        crl_dp = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
        self.assertEqual(crl_dp[0].full_name[0].value, "http://pki.example.com" + CRL_URL)

    def test_crl_lists_revoked_certificates(self):
        result = self.issue()
        leaf = pem_certificates(result["x509_pem"])[0]
        issuing = x509.load_der_x509_certificate(self.url_open(ISSUING_URL).content)

        crl = x509.load_der_x509_crl(self._get(CRL_URL, "application/pkix-crl"))
        self.assertTrue(crl.is_signature_valid(issuing.public_key()))
        self.assertEqual(crl.issuer, issuing.subject)
        self.assertIsNone(crl.get_revoked_certificate_by_serial_number(leaf.serial_number))

        certificate = self.env["iot.certificate"].search([("serial", "=", f"{leaf.serial_number:x}")])
        certificate.action_revoke()
        self.assertEqual(certificate.state, "revoked")
        self.assertTrue(certificate.revoked_at)

        crl = x509.load_der_x509_crl(self._get(CRL_URL, "application/pkix-crl"))
        self.assertTrue(crl.is_signature_valid(issuing.public_key()))
        entry = crl.get_revoked_certificate_by_serial_number(leaf.serial_number)
        self.assertIsNotNone(entry, "the revoked certificate is in the CRL")
        self.assertEqual(entry.revocation_date, certificate.revoked_at)
        self.assertEqual(len(crl), 1)


@tagged("post_install", "-at_install")
class TestCaOnInstall(IotHttpsHttpCase):
    """The post_init_hook made the CA; its keys and the keys given to boxes stay out of the database."""

    def test_ca_directory_after_install(self):
        directory = self.env["iot.issuer"]._ca_directory()
        self.assertTrue(directory.is_dir())
        self.assertEqual(stat.S_IMODE(directory.stat().st_mode), 0o700)
        for name in ca_module.CA_FILES:
            self.assertTrue((directory / name).is_file(), name)
        for name in ca_module.PRIVATE_FILES:
            with self.subTest(file=name):
                self.assertEqual(stat.S_IMODE((directory / name).stat().st_mode), 0o600)
        root = x509.load_pem_x509_certificate((directory / ca_module.ROOT_CERT).read_bytes())
        issuing = x509.load_pem_x509_certificate((directory / ca_module.ISSUING_CERT).read_bytes())
        self.assertEqual(issuing.issuer, root.subject)
        # The files are the CA that is served (it was not created again on first use).
        self.assertEqual(root, pem_certificates(self.url_open(ROOT_URL).text)[0])
        # The hook's other settings exist too.
        self.assertTrue(self.params.get_param("iot_https.ws_channel"))

    def test_post_init_hook_makes_ca_and_settings(self):
        """The hook itself, on an empty CA directory and without settings: no manual step is needed."""
        directory = Path(tempfile.mkdtemp(prefix="iot_https_ca_")) / "ca"
        self.addCleanup(shutil.rmtree, directory.parent, True)
        self.addCleanup(iot_issuer._CA_CACHE.pop, str(directory), None)
        keys_ = ("iot_https.pairing_token", "iot_https.ws_channel", "iot_https.zone")
        self.env["ir.config_parameter"].search([("key", "in", keys_)]).unlink()
        self.params.set_param("web.base.url", "https://erp.example.com")
        issuer_class = type(self.env["iot.issuer"])
        with patch.object(issuer_class, "_ca_directory", lambda _self: directory):
            iot_issuer.ensure_ca_on_install(self.env)
            for name in ca_module.CA_FILES:
                self.assertTrue((directory / name).is_file(), name)
            token = self.params.get_param("iot_https.pairing_token")
            self.assertGreaterEqual(len(token), 32)
            self.assertTrue(self.params.get_param("iot_https.ws_channel"))
            self.assertEqual(self.params.get_param("iot_https.zone"), "iot.erp.example.com")
            root = (directory / ca_module.ROOT_CERT).read_bytes()

            # Running it again (an upgrade, a second worker) changes nothing.
            iot_issuer.ensure_ca_on_install(self.env)
            self.assertEqual((directory / ca_module.ROOT_CERT).read_bytes(), root)
            self.assertEqual(self.params.get_param("iot_https.pairing_token"), token)

    def _text_columns(self):
        self.env.cr.execute(
            """
            SELECT c.table_name, array_agg(c.column_name::text)
              FROM information_schema.columns c
              JOIN information_schema.tables t
                ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'
               AND c.data_type IN ('text', 'character varying', 'jsonb')
             GROUP BY c.table_name
            """
        )
        return self.env.cr.fetchall()

    def _tables_matching(self, operator, needle):
        """Every table with a text column matching ``needle`` (LIKE or ~)."""
        self.env.flush_all()
        found = []
        for table, columns in self._text_columns():
            condition = " OR ".join(f'"{column}"::text {operator} %(needle)s' for column in columns)
            self.env.cr.execute(f'SELECT 1 FROM "{table}" WHERE {condition} LIMIT 1', {"needle": needle})  # noqa: S608
            if self.env.cr.fetchone():
                found.append(table)
        return found

    def test_no_private_key_in_the_database(self):
        self.issue()  # a legacy certificate: the issuer made and sent a key
        self.issue(csr_pem=self.csr_pem)
        self.env.flush_all()
        cr = self.env.cr

        cr.execute("SELECT key FROM ir_config_parameter WHERE value ~ %s", [PRIVATE_KEY_PATTERN])
        self.assertFalse(cr.fetchall())
        cr.execute("SELECT id FROM iot_certificate WHERE certificate_pem ~ 'PRIVATE KEY'")
        self.assertFalse(cr.fetchall())
        cr.execute("SELECT count(*) FROM iot_certificate WHERE certificate_pem IS NOT NULL")
        self.assertEqual(cr.fetchone()[0], 2)
        cr.execute(
            "SELECT id FROM ir_attachment WHERE index_content ~ %s OR position(%s::bytea in db_datas) > 0",
            [PRIVATE_KEY_PATTERN, b"PRIVATE KEY-----"],
        )
        self.assertFalse(cr.fetchall())
        for attachment in self.env["ir.attachment"].sudo().search([("type", "=", "binary")]):
            self.assertNotIn(b"PRIVATE KEY-----", attachment.raw or b"", attachment.name)
        # And no text column of any table holds a PEM private key.
        self.assertEqual(self._tables_matching("~", PRIVATE_KEY_PATTERN), [])

        # Nor the body of the CA's keys, whatever their header.
        directory = self.env["iot.issuer"]._ca_directory()
        for name in (ca_module.ROOT_KEY, ca_module.ISSUING_KEY):
            lines = pem_body_lines((directory / name).read_text())
            needle = "%" + max(lines, key=len) + "%"
            self.assertEqual(self._tables_matching("LIKE", needle), [], name)

    def test_legacy_key_sent_to_the_box_is_not_kept(self):
        result = self.issue()
        private_key_pem = result["private_key_pem"]
        serialization.load_pem_private_key(private_key_pem.encode(), password=None)
        lines = pem_body_lines(private_key_pem)
        self.assertGreater(len(lines), 10)
        self.env.flush_all()
        cr = self.env.cr
        for line in (lines[1], lines[len(lines) // 2], lines[-2]):
            needle = f"%{line}%"
            cr.execute(
                """
                SELECT 'certificate' FROM iot_certificate
                 WHERE certificate_pem LIKE %(n)s OR fingerprint LIKE %(n)s OR subject_cn LIKE %(n)s
                 UNION ALL
                SELECT 'request' FROM iot_request
                 WHERE detail LIKE %(n)s OR claimed_uuid LIKE %(n)s OR client_address LIKE %(n)s
                 UNION ALL
                SELECT 'parameter' FROM ir_config_parameter WHERE value LIKE %(n)s
                 UNION ALL
                SELECT 'attachment' FROM ir_attachment WHERE index_content LIKE %(n)s
                """,
                {"n": needle},
            )
            self.assertFalse(cr.fetchall())
            self.assertEqual(self._tables_matching("LIKE", needle), [])
