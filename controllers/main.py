"""Public endpoints: parse, delegate to the models (which delegate to the core), answer.

Every route runs as the public user; the models elevate rights only for the
lookups and records they need. Routes are type="http" so the body and status
of every answer are the protocol's, never Odoo's JSON-RPC error with its debug
traceback.
"""

import logging

from odoo import http
from odoo.http import request

from ..iot_pki import profile, protocol

_logger = logging.getLogger(__name__)

ISSUER_PATHS = frozenset({profile.X509_PATH, profile.ROOT_PATH, profile.ISSUING_PATH, profile.CRL_PATH, "/iot/setup"})
BODY_KEY = "iot_https.body"  # the body, kept for Odoo's retries after a serialization failure
UNAVAILABLE_RETRY_AFTER = "10"


def _read_body():
    """The request body, or a 413 answer before reading a body over the cap."""
    environ = request.httprequest.environ
    if BODY_KEY in environ:  # Odoo retries the whole request after a serialization failure
        return environ[BODY_KEY]
    length = request.httprequest.content_length
    if length is not None and length > protocol.MAX_BODY_BYTES:
        return protocol.error(413, "body_too_large", f"request body larger than {protocol.MAX_BODY_BYTES} bytes")
    stream = request.httprequest.stream
    body = stream.read(protocol.MAX_BODY_BYTES + 1)
    if len(body) > protocol.MAX_BODY_BYTES:
        # A body without Content-Length: drain a bounded remainder (unparsed), so a
        # client still streaming reads the 413 rather than a reset connection.
        for _chunk in range(16):
            if not stream.read(64 * 1024):
                break
        return protocol.error(413, "body_too_large", f"request body larger than {protocol.MAX_BODY_BYTES} bytes")
    environ[BODY_KEY] = body
    return body


def _respond(answer):
    headers = [("Content-Type", answer.content_type), *answer.headers.items()]
    return request.make_response(answer.body, headers=headers, status=answer.status)


def unavailable_response():
    """503 + Retry-After: the database cannot answer now (restart, lost connection, exhausted retries)."""
    answer = protocol.error(
        503, "unavailable", "the issuer is unavailable, retry later", {"Retry-After": UNAVAILABLE_RETRY_AFTER}
    )
    return http.Response(
        answer.body, status=answer.status, headers=list(answer.headers.items()), content_type=answer.content_type
    )


class IotHttpsController(http.Controller):
    _x509_url = profile.X509_PATH
    _root_url = profile.ROOT_PATH
    _issuing_url = profile.ISSUING_PATH
    _crl_url = profile.CRL_PATH
    _setup_url = "/iot/setup"

    @http.route(_x509_url, type="http", auth="public", methods=["POST"], csrf=False, save_session=False)
    def iot_x509(self, **_kwargs):
        """A box asks for its certificate (stock protocol, legacy or CSR mode)."""
        body = _read_body()
        if isinstance(body, protocol.Answer):
            return _respond(body)
        return _respond(request.env["iot.issuer"]._handle_x509(body, request.httprequest.remote_addr))

    @http.route(_setup_url, type="http", auth="public", methods=["POST"], csrf=False, save_session=False)
    def iot_setup(self, **_kwargs):
        """A box registers itself and its devices (stock protocol)."""
        body = _read_body()
        if isinstance(body, protocol.Answer):
            return _respond(body)
        return _respond(request.env["iot.issuer"]._handle_setup(body))

    @http.route(_root_url, type="http", auth="public", methods=["GET"], save_session=False)
    def iot_ca_root(self, **_kwargs):
        return _respond(request.env["iot.issuer"]._download("root"))

    @http.route(_issuing_url, type="http", auth="public", methods=["GET"], save_session=False)
    def iot_ca_issuing(self, **_kwargs):
        return _respond(request.env["iot.issuer"]._download("issuing"))

    @http.route(_crl_url, type="http", auth="public", methods=["GET"], save_session=False)
    def iot_ca_crl(self, **_kwargs):
        return _respond(request.env["iot.issuer"]._download("crl"))


# When PostgreSQL is unreachable, Odoo serves the request without a database,
# where the issuer's routes do not exist: a box would read 404 ("wrong URL")
# during a database restart. On the issuer's paths, answer 503 + Retry-After.
_serve_nodb = http.Request._serve_nodb


def _serve_nodb_or_unavailable(self):
    if self.httprequest.path in ISSUER_PATHS:
        _logger.warning("iot_https: %s without a database (unreachable, or no dbfilter)", self.httprequest.path)
        return unavailable_response()
    return _serve_nodb(self)


if not getattr(http.Request._serve_nodb, "_iot_https", False):
    _serve_nodb_or_unavailable._iot_https = True
    http.Request._serve_nodb = _serve_nodb_or_unavailable
