"""Public endpoints: parse, delegate to the models (which delegate to the core), answer.

Every route runs as the public user; the models elevate rights only for the
lookups and records they need. Routes are type="http" so the body and status
of every answer are the protocol's, never Odoo's JSON-RPC error with its debug
traceback.
"""

from odoo import http
from odoo.http import request

from ..iot_pki import profile, protocol


def _read_body():
    """The request body, or a 413 answer before reading a body over the cap."""
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
    return body


def _respond(answer):
    headers = [("Content-Type", answer.content_type), *answer.headers.items()]
    return request.make_response(answer.body, headers=headers, status=answer.status)


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
