"""The wire protocol of ``POST /odoo-enterprise/iot/x509``, as stock Odoo 17 boxes speak it.

Request: ``{"params": {"db_uuid": ..., "enterprise_code": ...}}`` or a full
JSON-RPC 2.0 envelope; ``params.csr_pem`` (optional) asks for CSR mode.

Answers:
- issued: HTTP 200, ``result`` = ``{x509_pem, private_key_pem, subject_cn}``
  (no ``private_key_pem`` in CSR mode);
- refused: HTTP 200, ``result`` = ``False``; a ``refusal`` key gives the
  reason only when the credentials matched a known database;
- malformed: HTTP 400 with a JSON-RPC ``error`` (a stock box shows
  ERR_IOT_HTTPS_LOAD_REQUEST_STATUS 400 and the reason).
Every HTTP 200 answer has a ``result`` key: a stock box crashes without one.
"""

import json
from dataclasses import dataclass, field

MAX_BODY_BYTES = 64 * 1024
MAX_UUID_LENGTH = 128
MAX_CODE_LENGTH = 256
JSON_CONTENT_TYPE = "application/json"


class ProtocolError(ValueError):
    """A request that does not follow the protocol; the message says how."""


@dataclass(frozen=True)
class CertificateRequest:
    db_uuid: str
    enterprise_code: str
    csr_pem: str = None
    request_id: object = None

    @property
    def mode(self):
        return "csr" if self.csr_pem is not None else "legacy"


@dataclass
class Answer:
    """An HTTP answer, framework-free: each server adapts it to its own response type."""

    status: int
    body: bytes
    content_type: str = JSON_CONTENT_TYPE
    headers: dict = field(default_factory=dict)


def _string_param(params, name, max_length, required=True):
    value = params.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str):
        kind = "missing" if value is None else f"a {type(value).__name__}, not a string"
        raise ProtocolError(f"params.{name} is {kind}")
    if required and not value.strip():
        raise ProtocolError(f"params.{name} is empty")
    if len(value) > max_length:
        raise ProtocolError(f"params.{name} is longer than {max_length} characters")
    if "\x00" in value:
        raise ProtocolError(f"params.{name} contains a null character")
    if not _is_utf8(value):
        raise ProtocolError(f"params.{name} is not valid Unicode (lone surrogate)")
    return value


def _is_utf8(value):
    """JSON can carry lone surrogates ("\\ud800") that no storage or comparison can encode."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _json_object(body):
    """The body as a JSON object, within the size cap."""
    if len(body) > MAX_BODY_BYTES:
        raise ProtocolError(f"request body larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ProtocolError("request body is not JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("request body must be a JSON object with a params object")
    return data


def parse_request(body):
    """Parse the body of a certificate request.

    :param body: the raw request body (bytes)
    :return: a ``CertificateRequest``
    :raise ProtocolError: with a message saying what is wrong
    """
    data = _json_object(body)
    if "jsonrpc" in data and data["jsonrpc"] != "2.0":
        raise ProtocolError('jsonrpc must be "2.0"')
    request_id = data.get("id")
    if request_id is not None and (isinstance(request_id, bool) or not isinstance(request_id, (str, int, float))):
        raise ProtocolError("id must be a string, a number or null")
    if isinstance(request_id, str) and (len(request_id) > MAX_UUID_LENGTH or not _is_utf8(request_id)):
        raise ProtocolError(f"id must be valid Unicode of at most {MAX_UUID_LENGTH} characters")
    params = data.get("params")
    if not isinstance(params, dict):
        raise ProtocolError("params must be a JSON object with db_uuid and enterprise_code")
    return CertificateRequest(
        db_uuid=_string_param(params, "db_uuid", MAX_UUID_LENGTH).strip(),
        enterprise_code=_string_param(params, "enterprise_code", MAX_CODE_LENGTH).strip(),
        # Length and content of the CSR are the key policy's business (keys.load_csr).
        csr_pem=_string_param(params, "csr_pem", MAX_BODY_BYTES, required=False),
        request_id=request_id,
    )


def encode(payload, status=200, headers=None):
    return Answer(status, json.dumps(payload).encode("utf-8"), JSON_CONTENT_TYPE, dict(headers or {}))


def issued(request, x509_pem, subject_cn, private_key_pem=None):
    result = {"x509_pem": x509_pem, "subject_cn": subject_cn}
    if private_key_pem is not None:
        result["private_key_pem"] = private_key_pem
    return encode({"jsonrpc": "2.0", "id": request.request_id, "result": result})


def refused(request, reason=None, message=None):
    """A falsy result; the reason is given only when ``reason`` is passed (known credentials)."""
    payload = {"jsonrpc": "2.0", "id": request.request_id, "result": False}
    if reason:
        payload["refusal"] = {"code": reason, "message": message}
    return encode(payload)


def error(status, code, message, headers=None):
    """A non-200 answer with a JSON body saying why."""
    payload = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return encode(payload, status=status, headers=headers)


# === BOX REGISTRATION: POST /iot/setup ===

SETUP_BOX_FIELDS = {"name": 255, "identifier": 64, "ip": 253, "token": 256, "version": 64}
SETUP_DEVICE_FIELDS = {"name": 255, "type": 64, "manufacturer": 255, "connection": 64}
MAX_DEVICES = 256


@dataclass(frozen=True)
class SetupRequest:
    """A stock box's registration: its own description and its devices."""

    box: dict  # name, identifier, ip, token, version (strings, "" when absent)
    devices: dict  # device identifier -> {name, type, manufacturer, connection}
    request_id: object = None


def _clean_strings(raw, limits, where):
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where} must be a JSON object")
    cleaned = {}
    for name, max_length in limits.items():
        value = raw.get(name)
        if value is None or value is False:  # stock boxes send False for unknown values
            value = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ProtocolError(f"{where}.{name} must be a string")
        if "\x00" in value or not _is_utf8(value):
            raise ProtocolError(f"{where}.{name} contains a null character or invalid Unicode")
        cleaned[name] = value.strip()[:max_length]
    return cleaned


def parse_setup_request(body):
    """Parse the body of ``POST /iot/setup`` (stock box registration).

    :return: a ``SetupRequest``
    :raise ProtocolError: with a message saying what is wrong
    """
    data = _json_object(body)
    if not isinstance(data.get("params"), dict):
        raise ProtocolError("request body must be a JSON object with a params object")
    params = data["params"]
    box = _clean_strings(params.get("iot_box"), SETUP_BOX_FIELDS, "params.iot_box")
    if not box["identifier"]:
        raise ProtocolError("params.iot_box.identifier is missing")
    raw_devices = params.get("devices") or {}
    if not isinstance(raw_devices, dict):
        raise ProtocolError("params.devices must be a JSON object")
    if len(raw_devices) > MAX_DEVICES:
        raise ProtocolError(f"more than {MAX_DEVICES} devices")
    devices = {
        str(identifier)[:255]: _clean_strings(device, SETUP_DEVICE_FIELDS, f"params.devices[{identifier!r}]")
        for identifier, device in raw_devices.items()
    }
    request_id = data.get("id") if isinstance(data.get("id"), (str, int)) else None
    return SetupRequest(box, devices, request_id)


def setup_answer(request_id, result):
    """The JSON-RPC answer to /iot/setup; stock boxes read ``result`` (their bus channel)."""
    return encode({"jsonrpc": "2.0", "id": request_id, "result": result})


# === PAIRING ===


def pairing_string(server_url, token, db_uuid, enterprise_code):
    """The string a database shows and a box accepts: ``URL|TOKEN|DB_UUID|ENTERPRISE_CODE``."""
    return "|".join((server_url.rstrip("/"), token, db_uuid, enterprise_code))


def parse_pairing(value):
    """:return: (server_url, token, db_uuid, enterprise_code); :raise ProtocolError: when malformed"""
    parts = [part.strip() for part in (value or "").strip().split("|")]
    if len(parts) != 4 or not all(parts):
        raise ProtocolError("the pairing string must be URL|TOKEN|DB_UUID|ENTERPRISE_CODE")
    return tuple(parts)
