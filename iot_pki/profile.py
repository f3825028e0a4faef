"""The leaf certificate profile: names, validity, extensions, and the lint that
every certificate passes before it is signed.

The order follows Let's Encrypt's Boulder: a ``LeafTemplate`` holds every
field of the certificate; ``lint_template`` checks it against the profile
(cheap: no throwaway signature); ``sign_template`` builds the one certificate
from the same template, so what is signed is what was linted.
"""

import base64
import datetime
import functools
import hashlib
import hmac
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from . import keys

DV_POLICY = ObjectIdentifier("2.23.140.1.2.1")
MAX_VALIDITY_DAYS = 200
DEFAULT_VALIDITY_DAYS = 90
BACKDATE = datetime.timedelta(minutes=10)
MAX_BACKDATE = datetime.timedelta(hours=1)
LABEL_LENGTH = 16

# Paths, relative to the public URL, where the issuer serves its CA material.
ROOT_PATH = "/odoo-enterprise/iot/ca.pem"
ISSUING_PATH = "/odoo-enterprise/iot/issuing-ca.cer"
CRL_PATH = "/odoo-enterprise/iot/issuing-ca.crl"
X509_PATH = "/odoo-enterprise/iot/x509"

_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# "*." then at least three labels: the database's label and a zone of two or more.
_WILDCARD_NAME = re.compile(r"\*(?:\.(?!-)[a-z0-9-]{1,63}(?<!-)){3,}")
# Room for the longest box host name: "255-255-255-255." + label + "." + zone.
_MAX_ZONE_LENGTH = 253 - len("255-255-255-255.") - LABEL_LENGTH - 1


class ProfileError(ValueError):
    """Settings or a template that break the certificate profile."""


def validate_zone(zone):
    """Return the zone normalized (lowercase, no trailing dot) or raise ProfileError."""
    if not isinstance(zone, str):
        raise ProfileError("the zone must be a DNS name such as iot.example.com")
    zone = zone.strip().lower().rstrip(".")
    labels = zone.split(".")
    if len(labels) < 2 or not all(_DNS_LABEL.match(label) for label in labels):
        raise ProfileError(f"invalid zone {zone!r}: use a DNS name such as iot.example.com")
    if len(zone) > _MAX_ZONE_LENGTH:
        raise ProfileError(f"zone {zone!r} too long: at most {_MAX_ZONE_LENGTH} characters")
    if labels[-1].isdigit():
        raise ProfileError(f"invalid zone {zone!r}: an IP address is not a zone")
    return zone


def validate_public_url(url):
    """Return the public base URL without trailing slash, or raise ProfileError."""
    if not isinstance(url, str):
        raise ProfileError("the public URL must be an http(s) URL such as http://pki.example.com")
    url = url.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProfileError(f"invalid public URL {url!r}: use an http(s) URL such as http://pki.example.com")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ProfileError(f"invalid public URL {url!r}: no query, fragment or credentials")
    return url


def validate_validity_days(days):
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= MAX_VALIDITY_DAYS:
        raise ProfileError(f"validity must be a whole number of days from 1 to {MAX_VALIDITY_DAYS}")
    return days


@dataclass(frozen=True)
class ProfileSettings:
    """What an operator configures about issued certificates."""

    zone: str
    public_url: str
    validity_days: int = DEFAULT_VALIDITY_DAYS
    legacy_key_type: str = "rsa2048"

    def __post_init__(self):
        object.__setattr__(self, "zone", validate_zone(self.zone))
        object.__setattr__(self, "public_url", validate_public_url(self.public_url))
        validate_validity_days(self.validity_days)
        if self.legacy_key_type not in keys.LEGACY_KEY_TYPES:
            raise ProfileError(f"legacy key type must be one of {', '.join(keys.LEGACY_KEY_TYPES)}")

    @property
    def issuing_url(self):
        return self.public_url + ISSUING_PATH

    @property
    def crl_url(self):
        return self.public_url + CRL_PATH


@functools.lru_cache(maxsize=4096)
def database_label(label_key, db_uuid):
    """The DNS label of a database: stable, and revealing nothing of the UUID.

    A keyed hash (HMAC-SHA256 with the CA's label key), base32, lowercase.
    """
    digest = hmac.new(label_key, db_uuid.encode("utf-8"), hashlib.sha256).digest()
    return base64.b32encode(digest).decode("ascii").lower()[:LABEL_LENGTH]


def box_hostname(ip, subject_cn):
    """The host name a box serves HTTPS on: ``10-0-0-5`` + subject without ``*``."""
    return ip.replace(".", "-") + subject_cn.lstrip("*")


@dataclass(frozen=True)
class LeafTemplate:
    """Every field of a leaf certificate, before it is signed."""

    serial: int
    subject_cn: str
    not_before: datetime.datetime
    not_after: datetime.datetime
    public_key: object
    issuing_url: str
    crl_url: str


def make_template(settings, ca, db_uuid, public_key, serial, now=None):
    """The template of a leaf for this database and key."""
    now = now or keys.utcnow()
    # Backdated for clocks running a little late, but never before the issuer.
    not_before = max(now - BACKDATE, ca.not_before)
    not_after = not_before + datetime.timedelta(days=settings.validity_days)
    # A leaf never outlives its issuer.
    not_after = min(not_after, ca.not_after)
    subject_cn = f"*.{database_label(ca.label_key, db_uuid)}.{settings.zone}"
    return LeafTemplate(serial, subject_cn, not_before, not_after, public_key, settings.issuing_url, settings.crl_url)


def lint_template(template, ca, now=None):
    """Check a template against the profile.

    :return: a list of findings (empty when the template may be signed)
    """
    now = now or keys.utcnow()
    findings = []
    if not (1 << 63) <= template.serial < (1 << 159):
        findings.append("serial must be positive, at least 64 bits and below 2^159")
    name = template.subject_cn
    if len(name) > 253 or not _WILDCARD_NAME.fullmatch(name):
        findings.append(f"subject {name!r} is not a wildcard DNS name below a label of the zone")
    if template.not_before > now:
        findings.append("notBefore is in the future")
    if now - template.not_before > MAX_BACKDATE:
        findings.append("notBefore is backdated more than one hour")
    lifetime = template.not_after - template.not_before
    if lifetime <= datetime.timedelta(0) or lifetime > datetime.timedelta(days=MAX_VALIDITY_DAYS):
        findings.append(f"validity must be positive and at most {MAX_VALIDITY_DAYS} days")
    if template.not_after > ca.not_after:
        findings.append("the leaf would outlive its issuer")
    if template.not_before < ca.not_before:
        findings.append("the leaf would start before its issuer")
    try:
        keys.check_public_key(template.public_key)
    except keys.KeyPolicyError as exc:
        findings.append(str(exc))
    for url in (template.issuing_url, template.crl_url):
        if not _is_http_url(url):
            findings.append(f"{url!r} is not an http(s) URL")
    return findings


@functools.lru_cache(maxsize=64)
def _is_http_url(url):
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def is_public_name(host):
    """False for IP literals and names that are not public DNS names (for the README's warnings)."""
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        pass
    return "." in host and host.rsplit(".", 1)[1] not in ("local", "localhost", "test", "internal", "lan", "home")


def _key_usage(rsa_key):
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        # keyEncipherment only makes sense for RSA (RSA key transport).
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


_KEY_USAGE = {True: _key_usage(True), False: _key_usage(False)}


@functools.lru_cache(maxsize=16)
def _base_builder(ca, issuing_url, crl_url):
    """The part of every leaf that depends only on the CA and the URLs, built once.

    Builders are immutable: each leaf extends this one without changing it.
    """
    return (
        x509.CertificateBuilder()
        .issuer_name(ca.issuing_cert.subject)
        .add_extension(ca.authority_key_identifier, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(issuing_url)
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [x509.DistributionPoint([x509.UniformResourceIdentifier(crl_url)], None, None, None)]
            ),
            critical=False,
        )
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(DV_POLICY, None)]), critical=False)
    )


def sign_template(template, ca):
    """Build and sign the certificate of a linted template."""
    builder = (
        _base_builder(ca, template.issuing_url, template.crl_url)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, template.subject_cn)]))
        .public_key(template.public_key)
        .serial_number(template.serial)
        .not_valid_before(template.not_before)
        .not_valid_after(template.not_after)
        .add_extension(_KEY_USAGE[isinstance(template.public_key, rsa.RSAPublicKey)], critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(template.subject_cn)]), critical=False)
    )
    return ca.sign(builder)


def normalize_host(host):
    """A host name as compared: lowercase, without surrounding blanks or a trailing dot."""
    return (host or "").strip().lower().rstrip(".")


def subject_of_box_host(host):
    """The certificate subject a box host name belongs to.

    ``10-0-0-5.<label>.<zone>`` -> ``*.<label>.<zone>``; None for a plain
    IP address (a box without a certificate registers with its IP).
    """
    host = normalize_host(host)
    first, _dot, rest = host.partition(".")
    if "." not in rest or not all(_DNS_LABEL.match(label) for label in rest.split(".")):
        return None
    try:
        ipaddress.IPv4Address(first.replace("-", "."))
    except ValueError:
        return None
    return "*." + rest
