"""The two-tier certificate authority: a root (public, offline in spirit) and an
issuing intermediate that signs the boxes' certificates and the CRL.

The CA lives in a directory of PEM files, created on first use and never
overwritten. Private keys are written 0600 and encrypted when a passphrase is
given. Creation takes an exclusive lock so two processes starting at once
cannot make two CAs.
"""

import datetime
import fcntl
import os
import secrets
from contextlib import contextmanager
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import keys

ROOT_CERT = "root.crt"
ROOT_KEY = "root.key"
ISSUING_CERT = "issuing.crt"
ISSUING_KEY = "issuing.key"
LABEL_KEY = "label.key"
CA_FILES = (ROOT_CERT, ROOT_KEY, ISSUING_CERT, ISSUING_KEY, LABEL_KEY)
PRIVATE_FILES = (ROOT_KEY, ISSUING_KEY, LABEL_KEY)

ROOT_VALIDITY = datetime.timedelta(days=20 * 365)
ISSUING_VALIDITY = datetime.timedelta(days=8 * 365)
CRL_VALIDITY = datetime.timedelta(days=1)


class CAError(Exception):
    """The CA cannot be loaded or created; the message says what to do."""


def _name(organization, country, common_name):
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_extensions(builder, public_key, issuer_key, path_length):
    builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=True,
            content_commitment=False,
            key_encipherment=False,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=True,
            crl_sign=True,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    return builder.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
    )


def _create_material(organization, country):
    """A new root and issuing CA, as (root_cert, root_key, issuing_cert, issuing_key)."""
    now = keys.utcnow()
    root_key = keys.generate_key("p384")
    root_name = _name(organization, country, f"{organization} IoT Root CA")
    root_builder = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(new_serial())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + ROOT_VALIDITY)
    )
    root_builder = _ca_extensions(root_builder, root_key.public_key(), root_key, path_length=None)
    root_cert = root_builder.sign(root_key, hashes.SHA384())

    issuing_key = keys.generate_key("p256")
    issuing_builder = (
        x509.CertificateBuilder()
        .subject_name(_name(organization, country, f"{organization} IoT Issuing CA"))
        .issuer_name(root_name)
        .public_key(issuing_key.public_key())
        .serial_number(new_serial())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + ISSUING_VALIDITY)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    issuing_builder = _ca_extensions(issuing_builder, issuing_key.public_key(), root_key, path_length=0)
    issuing_cert = issuing_builder.sign(root_key, hashes.SHA384())
    return root_cert, root_key, issuing_cert, issuing_key


def new_serial():
    """A positive serial of 127 random bits from the OS CSPRNG (at least 64 significant bits)."""
    while True:
        serial = secrets.randbits(127)
        if serial >= 1 << 64:
            return serial


@contextmanager
def _locked(directory):
    with open(directory / ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_new(path, data, private):
    """Write a file that must not exist yet (never overwrite CA material)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    fd = os.open(path, flags, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


class CertificateAuthority:
    """A loaded CA: the root certificate (public) and the issuing certificate and key."""

    def __init__(self, root_cert, issuing_cert, issuing_key, label_key):
        self.root_cert = root_cert
        self.issuing_cert = issuing_cert
        self.issuing_key = issuing_key
        self.label_key = label_key
        # Read once: every issuance checks the leaf against the issuer's validity.
        self.not_before = keys.not_valid_before(issuing_cert)
        self.not_after = keys.not_valid_after(issuing_cert)
        # Built once: these are served on every download of the CA or chain.
        self.root_pem = keys.certificate_pem(root_cert)
        self.issuing_pem = keys.certificate_pem(issuing_cert)
        self.issuing_der = issuing_cert.public_bytes(serialization.Encoding.DER)
        ski = issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        self.authority_key_identifier = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)

    # === LOAD / CREATE ===

    @classmethod
    def load_or_create(cls, directory, passphrase=None, organization="iot_https", country="BE"):
        """Load the CA in ``directory``, creating it first if the directory holds none.

        :param directory: folder of the CA files (created 0700 if missing)
        :param passphrase: encrypts the private keys at rest; needed to load them again
        :raise CAError: partial CA, wrong or missing passphrase, unreadable files
        """
        directory = Path(directory)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with _locked(directory):
            present = [name for name in CA_FILES if (directory / name).exists()]
            if not present:
                cls._create(directory, passphrase, organization, country)
            elif len(present) != len(CA_FILES):
                missing = sorted(set(CA_FILES) - set(present))
                raise CAError(
                    f"incomplete CA in {directory}: {', '.join(missing)} missing. "
                    "Restore the missing files from a backup; the CA is never recreated over existing files."
                )
        return cls.load(directory, passphrase)

    @classmethod
    def _create(cls, directory, passphrase, organization, country):
        root_cert, root_key, issuing_cert, issuing_key = _create_material(organization, country)
        pem = serialization.Encoding.PEM
        _write_new(directory / ROOT_KEY, keys.private_key_pem(root_key, passphrase).encode(), True)
        _write_new(directory / ISSUING_KEY, keys.private_key_pem(issuing_key, passphrase).encode(), True)
        _write_new(directory / LABEL_KEY, secrets.token_hex(32).encode(), True)
        _write_new(directory / ISSUING_CERT, issuing_cert.public_bytes(pem), False)
        # The root certificate is written last: its presence marks a complete CA.
        _write_new(directory / ROOT_CERT, root_cert.public_bytes(pem), False)

    @classmethod
    def load(cls, directory, passphrase=None):
        directory = Path(directory)
        try:
            root_cert = x509.load_pem_x509_certificate((directory / ROOT_CERT).read_bytes())
            issuing_cert = x509.load_pem_x509_certificate((directory / ISSUING_CERT).read_bytes())
            key_data = (directory / ISSUING_KEY).read_bytes()
            label_key = bytes.fromhex((directory / LABEL_KEY).read_text().strip())
        except (OSError, ValueError) as exc:
            raise CAError(f"cannot read the CA in {directory}: {exc}") from None
        encrypted = b"ENCRYPTED" in key_data.split(b"\n", 1)[0]
        if encrypted and not passphrase:
            raise CAError(f"the CA keys in {directory} are encrypted: a passphrase is required")
        try:
            issuing_key = keys.load_private_key_pem(key_data, passphrase if encrypted else None)
        except ValueError:
            raise CAError(f"cannot decrypt the CA keys in {directory}: wrong passphrase") from None
        if issuing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != issuing_cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise CAError(f"{ISSUING_KEY} does not match {ISSUING_CERT} in {directory}")
        return cls(root_cert, issuing_cert, issuing_key, label_key)

    # === SIGNING ===

    def sign(self, builder):
        """Sign a certificate or CRL builder with the issuing key."""
        return builder.sign(self.issuing_key, hashes.SHA256())

    def build_crl(self, revoked, now=None, number=None):
        """A CRL signed by the issuing CA.

        :param revoked: iterable of (serial, revocation datetime) pairs
        :return: the CRL in DER
        """
        now = now or keys.utcnow()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.issuing_cert.subject)
            .last_update(now)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number if number is not None else int(now.timestamp())), critical=False)
            .add_extension(self.authority_key_identifier, critical=False)
        )
        for serial, when in revoked:
            entry = x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
            builder = builder.add_revoked_certificate(entry)
        return self.sign(builder).public_bytes(serialization.Encoding.DER)
