"""The catalogue of everything a user can be told: box error codes and refusal reasons.

Box error codes are the strings a stock Odoo 17 IoT box shows on its homepage
(see the documentation page "HTTPS certificate (IoT)"). Refusal reasons are
this issuer's reasons for answering a certificate request with a falsy result.
The box client, the mock issuer, the Odoo addon and the README all read them
from here, so a code means the same thing everywhere.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Code:
    code: str
    meaning: str
    fix: str


# === BOX ERROR CODES (shown by the box, exactly as a stock box shows them) ===

CHECK_NO_SERVER = "ERR_IOT_HTTPS_CHECK_NO_SERVER"
CHECK_CERT_READ_EXCEPTION = "ERR_IOT_HTTPS_CHECK_CERT_READ_EXCEPTION"
LOAD_NO_CREDENTIAL = "ERR_IOT_HTTPS_LOAD_NO_CREDENTIAL"
LOAD_REQUEST_EXCEPTION = "ERR_IOT_HTTPS_LOAD_REQUEST_EXCEPTION"
LOAD_REQUEST_STATUS = "ERR_IOT_HTTPS_LOAD_REQUEST_STATUS"
LOAD_REQUEST_NO_RESULT = "ERR_IOT_HTTPS_LOAD_REQUEST_NO_RESULT"

BOX_ERRORS = {
    c.code: c
    for c in (
        Code(
            CHECK_NO_SERVER,
            "The box is not connected to an Odoo database (no server configured).",
            "Connect the box to the database: paste the pairing string shown in "
            "IoT > Connect a box on the box homepage.",
        ),
        Code(
            CHECK_CERT_READ_EXCEPTION,
            "The certificate file on the box exists but cannot be read or parsed.",
            "Check the certificate file's permissions, or delete it so the box requests a new one on its next check.",
        ),
        Code(
            LOAD_NO_CREDENTIAL,
            "The database UUID and/or the enterprise code is missing on the box.",
            "Set both on the box (homepage > cogs > Credential), or pair the box again with the pairing string.",
        ),
        Code(
            LOAD_REQUEST_EXCEPTION,
            "The box could not reach the issuer (no network, DNS, firewall, proxy, "
            "VPN, or a TLS verification failure).",
            "Check the box's network access to the issuer; open the firewall for "
            "HTTPS to the issuer until the certificate is issued. The line after "
            "the code gives the exception.",
        ),
        Code(
            LOAD_REQUEST_STATUS,
            "The box reached the issuer but got an unexpected HTTP status "
            "(for example 404: wrong issuer URL; 429: too many failed attempts; "
            "5xx: issuer down).",
            "Check the issuer URL and that the issuer is up; after a 429, wait for "
            "the Retry-After delay. Quote the 3-digit status when asking for help.",
        ),
        Code(
            LOAD_REQUEST_NO_RESULT,
            "The issuer answered but refused the certificate: the database is not "
            "eligible or the credentials are wrong.",
            "Check eligibility: production database, subscription In Progress with "
            "an IoT box line, and the right UUID and enterprise code on the box. "
            "Then refresh the box homepage.",
        ),
    )
}


# === REFUSAL REASONS (the issuer's side of a falsy result) ===

UNKNOWN_CREDENTIALS = "unknown_credentials"
NOT_PRODUCTION = "not_production"
NO_SUBSCRIPTION = "no_subscription"
SUBSCRIPTION_NOT_IN_PROGRESS = "subscription_not_in_progress"
NO_IOT_BOX_LINE = "no_iot_box_line"
ISSUANCE_DISABLED = "issuance_disabled"
CSR_REJECTED = "csr_rejected"

REFUSALS = {
    c.code: c
    for c in (
        Code(
            UNKNOWN_CREDENTIALS,
            "No database has this UUID with this enterprise code.",
            "Pair the box again with the pairing string of the right database.",
        ),
        Code(
            NOT_PRODUCTION,
            "The database is not a production database (staging, development or duplicate).",
            "Only production databases get certificates: connect the box to the production database.",
        ),
        Code(
            NO_SUBSCRIPTION,
            "The database has no subscription.",
            "Link the database to its subscription.",
        ),
        Code(
            SUBSCRIPTION_NOT_IN_PROGRESS,
            "The subscription is not In Progress.",
            "Renew or resume the subscription, then refresh the box homepage.",
        ),
        Code(
            NO_IOT_BOX_LINE,
            "The subscription has no IoT box line.",
            "Add an IoT box subscription line, then refresh the box homepage (or restart the box).",
        ),
        Code(
            ISSUANCE_DISABLED,
            "Certificate issuance is disabled on this issuer (for example a neutralized copy of a database).",
            "Issue certificates from the production issuer.",
        ),
        Code(
            CSR_REJECTED,
            "The certificate signing request was refused.",
            "Send a valid CSR with an RSA 2048/3072/4096 (exponent 65537), P-256 "
            "or P-384 key, or send no CSR to get a key from the issuer.",
        ),
    )
}
