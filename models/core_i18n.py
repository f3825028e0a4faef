"""The core's user-facing texts as translatable terms: the error-code catalogue
(``iot_pki/codes.py``) and the HTTPS check's messages and fixes (``iot_pki/https_check.py``).

The core imports no ``odoo``, so its texts cannot be wrapped where they are written, and
Odoo's extractor only finds literal ``_()``/``_lt()`` calls: each text is repeated here once,
for ``--i18n-export``. ``tests/test_i18n.py`` checks that these terms are exactly the core's
texts, so the two cannot drift. Forms show a core text through ``_(text)``, which looks up the
translation of that same source term (and fills its ``%(name)s`` placeholders).
"""

from odoo import _lt

CATALOGUE_TERMS = (
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

HTTPS_CHECK_TERMS = (
    # MESSAGES
    _lt("cannot read the CA file %(cafile)s: %(reason)s"),
    _lt("cannot read the roots: %(reason)s"),
    _lt("TLS handshake with %(where)s failed: %(reason)s"),
    _lt("connection to %(where)s refused: nothing serves HTTPS there"),
    _lt("no answer from %(where)s within %(timeout)s s"),
    _lt("cannot connect to %(where)s: %(reason)s"),
    _lt("the certificate served on %(where)s is not for %(host)s (%(detail)s)"),
    _lt("the certificate served on %(where)s is not for %(host)s (%(detail)s): it is for %(subject)s"),
    _lt("the certificate served on %(where)s expired"),
    _lt("the certificate served on %(where)s expired on %(not_after)s"),
    _lt("the certificate served on %(where)s is not valid yet"),
    _lt("the certificate served on %(where)s is not valid yet (valid from %(not_before)s)"),
    _lt("the certificate served on %(where)s for %(host)s does not verify: %(detail)s"),
    _lt(
        "%(where)s serves the temporary self-signed certificate %(subject)s: the box has no certificate from "
        "the issuer yet"
    ),
    _lt("https://%(host)s:%(port)s works, but %(subject)s expires on %(not_after)s (%(days)s days left)"),
    _lt("https://%(host)s:%(port)s works, but %(subject)s expires on %(not_after)s (1 day left)"),
    _lt("https://%(host)s:%(port)s works, but %(subject)s expires on %(not_after)s (less than a day left)"),
    _lt("https://%(host)s:%(port)s verified: %(subject)s valid from %(not_before)s until %(not_after)s"),
    _lt(
        "https://%(host)s:%(port)s verified (%(tls_version)s): %(subject)s valid from %(not_before)s until "
        "%(not_after)s"
    ),
    _lt("the box has not registered an address yet"),
    _lt(
        "the box registered with its IP address %(address)s: it has no HTTPS name yet (it registers with its "
        "HTTPS name once it has a certificate)"
    ),
    _lt(
        "%(host)s resolves to %(addresses)s (%(resolver)s), not to the box's address %(expected)s: the name "
        "points elsewhere (a local DNS record or a DNS override on the router?)"
    ),
    _lt(
        "%(host)s does not resolve (%(answer)s from %(resolver)s): the router or DNS server blocks public "
        "names that resolve to private addresses such as %(expected)s (DNS rebinding protection); browsers "
        "show DNS_PROBE_FINISHED_NXDOMAIN and the homepage opens by IP address but not by name"
    ),
    _lt(
        "%(host)s does not resolve (%(answer)s from %(resolver)s): the router or DNS server blocks public "
        "names that resolve to private addresses (DNS rebinding protection); browsers show "
        "DNS_PROBE_FINISHED_NXDOMAIN and the homepage opens by IP address but not by name"
    ),
    _lt("%(host)s does not resolve (%(answer)s from %(resolver)s)"),
    _lt("%(resolver)s gave no answer for %(host)s: %(detail)s"),
    # FIXES
    _lt("give a PEM file of CA certificates"),
    _lt("the box must serve HTTPS on port %(port)s with its certificate and key (nginx on a box); restart the box"),
    _lt("start the box (its nginx serves HTTPS on port %(port)s), or check the port"),
    _lt("check that the box is on and reachable from here, and that no firewall drops port %(port)s"),
    _lt("check the box's address and that this machine can reach the box's network"),
    _lt(
        "the box must serve the certificate of its own name %(host)s (its nginx certificate): restart the "
        "box; if its address changed, it registers again with its new name"
    ),
    _lt(
        "the box renews its certificate when it restarts or its homepage opens: restart it; if it keeps this "
        "certificate, the error code on its homepage says why the issuer refuses"
    ),
    _lt("set the clock (NTP) of the machine checking, or of the issuer if it is the one behind"),
    _lt(
        "the box must serve the whole chain (its certificate, then the issuing CA), and the devices that use "
        "it must trust the issuer's root (IoT > Certificates: the root is at /odoo-enterprise/iot/ca.pem)"
    ),
    _lt(
        "the box's homepage shows why it has no certificate (error code); the database must be eligible "
        "(production, subscription In Progress with an IoT box line); then restart the box or refresh its "
        "homepage"
    ),
    _lt("start the box and connect it to the database (IoT > Connect a box)"),
    _lt(
        "remove the override so that the name resolves to %(expected)s, or use Google DNS (8.8.8.8 and "
        "8.8.4.4) on the router or on each device"
    ),
    _lt(
        "if the router allows manual DNS, set it to Google DNS (8.8.8.8 and 8.8.4.4); if not, set Google DNS "
        "(8.8.8.8 and 8.8.4.4) on each device that uses the box (payment terminals usually need no change)"
    ),
    _lt(
        "the issuer's DNS zone must answer %(host)s with %(expected)s; ask its operator, or use Google DNS "
        "(8.8.8.8 and 8.8.4.4)"
    ),
    _lt("check the DNS server and the network of the machine checking, then check again"),
    # PHRASES (parameter values that are words)
    _lt("the system resolver"),
    _lt("no address"),
    # THE ADDON'S PHRASES (models/iot_box.py)
    _lt("the Odoo server's resolver"),
)
