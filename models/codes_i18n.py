"""The texts of the error-code catalogue (``iot_pki/codes.py``) as translatable terms.

The core imports no ``odoo``, so its texts cannot be wrapped where they are written, and
Odoo's extractor only finds literal ``_()``/``_lt()`` calls: each text is repeated here once,
for ``--i18n-export``. ``tests/test_i18n.py`` checks that ``TERMS`` is exactly the catalogue's
texts, so the two cannot drift. Forms show a catalogue text through ``_(text)``, which looks up
the translation of that same source term.
"""

from odoo import _lt

TERMS = (
    # BOX ERRORS
    _lt("The box is not connected to an Odoo database (no server configured)."),
    _lt("Connect the box to the database: paste the pairing string shown in IoT > Connect a box on the box homepage."),
    _lt("The certificate file on the box exists but cannot be read or parsed."),
    _lt("Check the certificate file's permissions, or delete it so the box requests a new one on its next check."),
    _lt("The database UUID and/or the enterprise code is missing on the box."),
    _lt("Set both on the box (homepage > cogs > Credential), or pair the box again with the pairing string."),
    _lt("The box could not reach the issuer (no network, DNS, firewall, proxy, VPN, or a TLS verification failure)."),
    _lt(
        "Check the box's network access to the issuer; open the firewall for HTTPS to the issuer until the "
        "certificate is issued. The line after the code gives the exception."
    ),
    _lt(
        "The box reached the issuer but got an unexpected HTTP status (for example 404: wrong issuer URL; "
        "429: too many failed attempts; 5xx: issuer down)."
    ),
    _lt(
        "Check the issuer URL and that the issuer is up; after a 429, wait for the Retry-After delay. Quote "
        "the 3-digit status when asking for help."
    ),
    _lt("The issuer answered but refused the certificate: the database is not eligible or the credentials are wrong."),
    _lt(
        "Check eligibility: production database, subscription In Progress with an IoT box line, and the right"
        " UUID and enterprise code on the box. Then refresh the box homepage."
    ),
    # REFUSALS
    _lt("No database has this UUID with this enterprise code."),
    _lt("Pair the box again with the pairing string of the right database."),
    _lt("The database is not a production database (staging, development or duplicate)."),
    _lt("Only production databases get certificates: connect the box to the production database."),
    _lt("The database has no subscription."),
    _lt("Link the database to its subscription."),
    _lt("The subscription is not In Progress."),
    _lt("Renew or resume the subscription, then refresh the box homepage."),
    _lt("The subscription has no IoT box line."),
    _lt("Add an IoT box subscription line, then refresh the box homepage (or restart the box)."),
    _lt("Certificate issuance is disabled on this issuer (for example a neutralized copy of a database)."),
    _lt("Issue certificates from the production issuer."),
    _lt("The certificate signing request was refused."),
    _lt(
        "Send a valid CSR with an RSA 2048/3072/4096 (exponent 65537), P-256 or P-384 key, or send no CSR to "
        "get a key from the issuer."
    ),
)
