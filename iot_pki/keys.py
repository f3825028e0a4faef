"""Key policy, key generation and PEM helpers.

Works with cryptography 3.4.8 (pinned by Odoo 17) and with current releases:
only APIs present in both are used.
"""

import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

RSA_SIZES = (2048, 3072, 4096)
EC_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384"}
LEGACY_KEY_TYPES = ("rsa2048", "p256")

# A CSR is a few hundred bytes to a few KiB; anything larger is not a CSR.
MAX_CSR_PEM_LENGTH = 16 * 1024


class KeyPolicyError(ValueError):
    """A key or CSR this issuer does not accept; the message says why."""


def generate_key(key_type="p256"):
    """Generate a private key.

    :param key_type: one of ``LEGACY_KEY_TYPES`` or ``"p384"``
    :return: a cryptography private key
    """
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "p384":
        return ec.generate_private_key(ec.SECP384R1())
    raise ValueError(f"unknown key type {key_type!r}")


def describe_key(public_key):
    """A short human name for a public key, e.g. ``RSA-2048`` or ``P-256``."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return f"RSA-{public_key.key_size}"
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return EC_CURVES.get(public_key.curve.name, public_key.curve.name)
    return type(public_key).__name__


def check_public_key(public_key):
    """Raise KeyPolicyError unless the key is RSA 2048/3072/4096 with e=65537, P-256 or P-384."""
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size not in RSA_SIZES:
            raise KeyPolicyError(f"RSA key of {public_key.key_size} bits refused: use 2048, 3072 or 4096 bits")
        exponent = public_key.public_numbers().e
        if exponent != 65537:
            raise KeyPolicyError(f"RSA public exponent {exponent} refused: use 65537")
        return
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        if public_key.curve.name not in EC_CURVES:
            raise KeyPolicyError(f"elliptic curve {public_key.curve.name} refused: use P-256 or P-384")
        return
    raise KeyPolicyError(f"{describe_key(public_key)} keys refused: use RSA or ECDSA (P-256, P-384)")


def load_csr(csr_pem):
    """Parse a PEM CSR, verify its signature and its key against the policy.

    Names in the CSR are ignored: the issuer decides them.

    :param csr_pem: the CSR as PEM text
    :return: the CSR's public key
    :raise KeyPolicyError: with a message a user can act on
    """
    if not isinstance(csr_pem, str) or not csr_pem.strip():
        raise KeyPolicyError("csr_pem must be a non-empty PEM string")
    if len(csr_pem) > MAX_CSR_PEM_LENGTH:
        raise KeyPolicyError(f"csr_pem longer than {MAX_CSR_PEM_LENGTH} characters")
    try:
        data = csr_pem.encode("ascii")
    except UnicodeEncodeError:
        raise KeyPolicyError("csr_pem is not a PEM document (non-ASCII characters)") from None
    try:
        csr = x509.load_pem_x509_csr(data)
    except Exception:  # cryptography raises ValueError, or others on odd input
        raise KeyPolicyError("csr_pem is not a valid PEM certificate signing request") from None
    try:
        public_key = csr.public_key()
    except Exception:
        raise KeyPolicyError("the CSR's public key cannot be read") from None
    check_public_key(public_key)
    try:
        valid = csr.is_signature_valid
    except (InvalidSignature, ValueError, TypeError):
        valid = False
    if not valid:
        raise KeyPolicyError("the CSR's signature does not verify")
    return public_key


def make_csr(private_key, common_name="iot-box"):
    """Build a CSR for ``private_key`` (used by the box client in CSR mode)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, common_name)])
    )
    return builder.sign(private_key, hashes.SHA256())


def private_key_pem(private_key, passphrase=None):
    """PKCS#8 PEM of a private key, encrypted when a passphrase is given."""
    encryption = (
        serialization.BestAvailableEncryption(passphrase.encode()) if passphrase else serialization.NoEncryption()
    )
    return private_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption).decode(
        "ascii"
    )


def load_private_key_pem(data, passphrase=None):
    """Load a PEM private key, encrypted or not."""
    if isinstance(data, str):
        data = data.encode("ascii")
    password = passphrase.encode() if passphrase else None
    return serialization.load_pem_private_key(data, password=password)


def certificate_pem(certificate):
    return certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")


def fingerprint_sha256(certificate):
    return certificate.fingerprint(hashes.SHA256()).hex()


def utcnow():
    """Timezone-aware current UTC time, truncated to the second (X.509 precision)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def not_valid_before(certificate):
    """notBefore as an aware UTC datetime, on old and new cryptography alike."""
    value = getattr(certificate, "not_valid_before_utc", None)
    if value is None:
        value = certificate.not_valid_before.replace(tzinfo=datetime.timezone.utc)
    return value


def not_valid_after(certificate):
    """notAfter as an aware UTC datetime, on old and new cryptography alike."""
    value = getattr(certificate, "not_valid_after_utc", None)
    if value is None:
        value = certificate.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def common_name(certificate):
    """The subject CN, as a stock box reads it, or None."""
    attributes = certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    return attributes[0].value if attributes else None
