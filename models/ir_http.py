import logging

import psycopg2
from werkzeug.exceptions import HTTPException

from odoo import models
from odoo.http import request

from ..controllers.main import ISSUER_PATHS, unavailable_response
from ..iot_pki import protocol

_logger = logging.getLogger(__name__)


class IrHttp(models.AbstractModel):
    _inherit = "ir.http"

    @classmethod
    def _handle_error(cls, exception):
        """On the issuer's paths, errors are JSON without traceback: 503 + Retry-After
        when the database cannot answer (Odoo's retries exhausted, lost connection)."""
        if request and request.httprequest.path in ISSUER_PATHS and not isinstance(exception, HTTPException):
            if isinstance(exception, psycopg2.OperationalError):
                _logger.warning("iot_https: %s: database unavailable: %s", request.httprequest.path, exception)
                return unavailable_response()
            _logger.error("iot_https: %s failed", request.httprequest.path, exc_info=exception)
            answer = protocol.error(500, "internal_error", "the issuer failed; see its log")
            return request.make_response(answer.body, headers=[("Content-Type", answer.content_type)], status=500)
        return super()._handle_error(exception)
