"""Hardening of the real mock issuer process (``python -m mock_issuer serve``).

Hostile input over HTTP, brute force and rate limits, a burst of legitimate
boxes, storage faults, key custody and revocation. Every request goes to
127.0.0.1; every loop is bounded.

Invariants for hostile input: the answer is HTTP 200 with a ``result`` key (a
stock box crashes without one) or a 4xx, never a 5xx, never a traceback; no
certificate is issued and only ``requests`` rows are added to the registry.
"""

import base64
import functools
import json
import re
import socket
import sqlite3
import statistics
import threading
import time
from collections import Counter

import pytest
import requests
from conftest import UNKNOWN_UUID, IssuerProcess, box, first_pem, mock_issuer, register
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iot_pki import keys, profile

ZONE = "iot.example.com"
PUBLIC_URL = "http://pki.example.com"
X509 = profile.X509_PATH
KNOWN_PATHS = (X509, profile.ROOT_PATH, profile.ISSUING_PATH, profile.CRL_PATH)
MAX_BODY = 64 * 1024

# The database of the shared hostile-input issuer: registered and eligible.
HUUID = "7d0c1e2f-3a4b-4c5d-8e6f-0123456789ab"
HCODE = "M24HOSTILE"
# Databases of the other tests.
UUID = "5a6b7c8d-1111-4e2f-9a0b-c1d2e3f4a5b6"
CODE = "M24HARDEN"
UUID2 = "5a6b7c8d-2222-4e2f-9a0b-c1d2e3f4a5b6"
CODE2 = "M24OTHER"
UNKNOWN = UNKNOWN_UUID


# === HELPERS ===


def init(data_dir, *args, env=None):
    result = mock_issuer(data_dir, "init", "--zone", ZONE, "--public-url", PUBLIC_URL, *args, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    return data_dir


def query(data_dir, sql, params=()):
    connection = sqlite3.connect(data_dir / "issuer.sqlite3", timeout=10)
    try:
        return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def registry_snapshot(data_dir):
    return {
        "certificates": query(data_dir, "SELECT * FROM certificates ORDER BY serial"),
        "databases": query(data_dir, "SELECT * FROM databases ORDER BY uuid"),
        "requests": query(data_dir, "SELECT id, client, db_uuid, mode, decision, detail FROM requests ORDER BY id"),
    }


def decisions(data_dir):
    return [row[0] for row in query(data_dir, "SELECT decision FROM requests ORDER BY id")]


def certificate_states(data_dir):
    return query(data_dir, "SELECT serial, state FROM certificates ORDER BY serial")


def params_body(db_uuid=HUUID, code=HCODE, **extra):
    return json.dumps({"params": {"db_uuid": db_uuid, "enterprise_code": code, **extra}}).encode()


def leaf_serial(result):
    return x509.load_pem_x509_certificate(first_pem(result["x509_pem"]).encode()).serial_number


def retry_after_seconds(headers):
    value = headers.get("Retry-After", "")
    assert re.fullmatch(r"\d+", value), f"Retry-After must be whole seconds, got {value!r}"
    assert int(value) > 0
    return int(value)


class Answer:
    """One HTTP answer, from requests or from a raw socket."""

    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {name.lower(): value for name, value in headers.items()}
        self.body = body

    @classmethod
    def of(cls, response):
        return cls(response.status_code, dict(response.headers), response.content)

    def json(self):
        return json.loads(self.body)


def raw_exchange(port, request_bytes):
    """Send raw bytes, read one answer (the server closes these connections)."""
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request_bytes)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                chunk = connection.recv(65536)
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            received += chunk
            head, separator, body = received.partition(b"\r\n\r\n")
            match = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            if separator and match and len(body) >= int(match.group(1)):
                break
    head, _separator, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), f"no HTTP answer: {received[:300]!r}"
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    return Answer(int(lines[0].split()[1]), {k.strip(): v.strip() for k, v in headers.items()}, body)


def assert_hostile_answer(answer, data_dir, before, log_before, log_now, context, rows=None):
    """The invariants of hostile input. :return: the requests rows added by this request"""
    assert answer.status < 500, (
        f"BUG {context}: answered HTTP {answer.status} (a 5xx for a client's input): {answer.body[:300]!r}\n"
        f"server log:\n{log_now[len(log_before) :][-2000:]}"
    )
    assert b"Traceback" not in answer.body, f"{context}: traceback in the body"
    if answer.status == 200:
        payload = answer.json()
        assert isinstance(payload, dict) and "result" in payload, (
            f"{context}: HTTP 200 without a result key crashes a stock box: {answer.body[:300]!r}"
        )
        assert not payload["result"], f"{context}: a certificate was issued for hostile input"
    else:
        assert 400 <= answer.status < 500, f"{context}: HTTP {answer.status}"
    after = registry_snapshot(data_dir)
    assert after["certificates"] == before["certificates"], f"{context}: the certificates table changed"
    assert after["databases"] == before["databases"], f"{context}: the databases table changed"
    assert after["requests"][: len(before["requests"])] == before["requests"], f"{context}: requests rows changed"
    added = after["requests"][len(before["requests"]) :]
    assert len(added) <= 1, f"{context}: {len(added)} requests rows for one request"
    if rows is not None:
        assert len(added) == rows, f"{context}: expected {rows} requests row(s), got {added}"
    assert "Traceback" not in log_now[len(log_before) :], f"{context}: traceback in the server log"
    return added


# === THE SHARED HOSTILE-INPUT ISSUER ===


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """One issuer for every hostile-input case, limits high so nothing is throttled; it never issues."""
    folder = tmp_path_factory.mktemp("hostile")
    data_dir = init(folder / "issuer", "--uuid-rate-limit", "100000/1", "--client-rate-limit", "100000/1")
    register(data_dir, HUUID, HCODE)
    process = IssuerProcess(data_dir, folder / "issuer.log")
    yield process
    process.stop()


def send_hostile(hostile, answer_fn, context, rows=None):
    before = registry_snapshot(hostile.data_dir)
    log_before = hostile.log()
    answer = answer_fn()
    return answer, assert_hostile_answer(answer, hostile.data_dir, before, log_before, hostile.log(), context, rows)


def post_bytes(hostile, body, headers=None):
    response = requests.post(
        hostile.url + X509, data=body, headers=headers or {"Content-Type": "application/json"}, timeout=30
    )
    return Answer.of(response)


def exactly(size):
    """A well-formed request for an unknown database, padded to exactly ``size`` bytes."""
    empty = params_body(UNKNOWN, "wrong", pad="")
    body = params_body(UNKNOWN, "wrong", pad="a" * (size - len(empty)))
    assert len(body) == size
    return body


WRONG_TYPES = [1, 1.5, -0.0, [], ["x"], {}, {"a": "b"}, True, False]
LONG = "x" * 100_000
DEEP = b"[" * 50_000 + b"]" * 50_000

BODY_CASES = [
    # Not JSON.
    pytest.param(b"not json", 400, id="not-json"),
    pytest.param(b"", 400, id="empty-body"),
    pytest.param(b"{", 400, id="truncated"),
    pytest.param(b"\xff\xfe\xfd", 400, id="invalid-bytes"),
    pytest.param(b'{"params": {"db_uuid": "\xc0\xaf", "enterprise_code": "x"}}', 400, id="overlong-utf8"),
    pytest.param(b"[" * 40_000, 400, id="deep-nesting-unclosed"),
    pytest.param(DEEP[:30_000] + DEEP[-30_000:], 400, id="deep-nesting-60k"),
    pytest.param(b'{"params": {"db_uuid": ' + b"9" * 5000 + b"}}", 400, id="5000-digit-number"),
    pytest.param(b'{"params": {"db_uuid": NaN, "enterprise_code": Infinity}}', 400, id="nan-infinity"),
    # JSON of the wrong shape.
    pytest.param(b"[]", 400, id="array"),
    pytest.param(b'[{"params": {}}]', 400, id="array-of-request"),
    pytest.param(b'"x"', 400, id="string"),
    pytest.param(b"42", 400, id="number"),
    pytest.param(b"null", 400, id="null"),
    pytest.param(b"true", 400, id="true"),
    pytest.param(b"{}", 400, id="empty-object"),
    pytest.param(b'{"params": null}', 400, id="params-null"),
    pytest.param(b'{"params": []}', 400, id="params-array"),
    pytest.param(b'{"params": "x"}', 400, id="params-string"),
    pytest.param(b'{"params": 1}', 400, id="params-number"),
    pytest.param(b'{"params": {}}', 400, id="params-empty"),
    pytest.param(params_body()[:-1] + b', "params": 1}', 400, id="duplicate-params-key"),
    pytest.param(
        json.dumps({"jsonrpc": "1.0", "params": {"db_uuid": HUUID, "enterprise_code": HCODE}}).encode(),
        400,
        id="jsonrpc-1.0",
    ),
    pytest.param(json.dumps({"id": {"a": 1}, "params": {}}).encode(), 400, id="id-object"),
    pytest.param(json.dumps({"id": True, "params": {}}).encode(), 400, id="id-bool"),
    pytest.param(json.dumps({"id": "i" * 129, "params": {}}).encode(), 400, id="id-too-long"),
    # Wrong types where strings belong.
    *[
        pytest.param(params_body(db_uuid=value, code="wrong"), 400, id=f"db_uuid-{type(value).__name__}-{i}")
        for i, value in enumerate([None, *WRONG_TYPES])
    ],
    *[
        pytest.param(params_body(code=value), 400, id=f"enterprise_code-{type(value).__name__}-{i}")
        for i, value in enumerate([None, *WRONG_TYPES])
    ],
    # csr_pem with the right credentials (null would be legacy mode: a legitimate request).
    *[
        pytest.param(params_body(csr_pem=value), 400, id=f"csr_pem-{type(value).__name__}-{i}")
        for i, value in enumerate(WRONG_TYPES)
    ],
    pytest.param(params_body(db_uuid="   ", code="x"), 400, id="db_uuid-blank"),
    pytest.param(params_body(code="\u3000\u2003\n"), 400, id="enterprise_code-unicode-blank"),
    # Null bytes.
    pytest.param(params_body(db_uuid=HUUID + "\u0000", code="x"), 400, id="null-in-db_uuid"),
    pytest.param(params_body(code=HCODE + "\u0000"), 400, id="null-in-enterprise_code"),
    pytest.param(params_body(csr_pem="\u0000"), 400, id="null-in-csr_pem"),
    pytest.param(params_body(code="x")[:-2] + b', "x": "\x00"}}', 400, id="raw-null-byte-in-string"),
    pytest.param(b'{"params":\x00 {}}', 400, id="raw-null-byte-between-tokens"),
    pytest.param(
        json.dumps({"id": "\u0000", "params": {"db_uuid": HUUID, "enterprise_code": "x"}}).encode(),
        200,
        id="null-in-id",
    ),
    # Long and odd unicode (wrong credentials: refused, same answer as unknown).
    pytest.param(params_body(db_uuid="\u202e" + HUUID, code=HCODE), 200, id="rtl-override-db_uuid"),
    pytest.param(params_body(code=HCODE + "\u200f"), 200, id="rtl-mark-enterprise_code"),
    pytest.param(params_body(code=HCODE.replace("M", "\u041c")), 200, id="cyrillic-homoglyph-code"),
    pytest.param(params_body(db_uuid="\U0001f525" * 128, code="x"), 200, id="emoji-db_uuid-128"),
    pytest.param(params_body(db_uuid="\U0001f525" * 129, code="x"), 400, id="emoji-db_uuid-129"),
    pytest.param(params_body(db_uuid="e" + "\u0301" * 127, code="x"), 200, id="combining-db_uuid"),
    pytest.param(params_body(code="\u0301" * 256), 200, id="combining-code-256"),
    pytest.param(params_body(code="c" * 257), 400, id="enterprise_code-257"),
    pytest.param(params_body(db_uuid="u" * 129, code="x"), 400, id="db_uuid-129"),
    pytest.param(params_body(db_uuid="\u200b\u200d\ufeff", code="x"), 200, id="zero-width-db_uuid"),
    pytest.param(params_body(db_uuid="\uffff\ufffe\U0010ffff", code="x"), 200, id="noncharacters-db_uuid"),
    pytest.param(params_body(code="\u0001\u001b[31m\x7f"), 200, id="control-chars-code"),
    pytest.param(params_body(code=HCODE + "\r\nX-Injected: 1"), 200, id="crlf-code"),
    pytest.param(b'{"params": {"db_uuid": "\\ud83d\\ude00", "enterprise_code": "x"}}', 200, id="escaped-pair"),
    pytest.param(
        json.dumps(
            {"params": {"db_uuid": "\u05d0\u202b\u0663", "enterprise_code": "\u00e9"}}, ensure_ascii=False
        ).encode("utf-8"),
        200,
        id="raw-utf8-rtl",
    ),
    pytest.param(b"\xef\xbb\xbf" + params_body(code="x"), 200, id="utf8-bom-body"),
    pytest.param(params_body(code="x").decode().encode("utf-16"), 200, id="utf16-body"),
    # Sizes: the limit is 64 KiB, inclusive.
    pytest.param(params_body(db_uuid=LONG, code="x"), 413, id="100k-db_uuid"),
    pytest.param(params_body(code=LONG), 413, id="100k-enterprise_code"),
    pytest.param(params_body(csr_pem=LONG), 413, id="100k-csr_pem"),
    pytest.param(exactly(MAX_BODY), 200, id="exactly-64KiB-is-parsed"),
    pytest.param(exactly(MAX_BODY + 1), 413, id="64KiB-plus-1"),
    # CSR garbage with the right credentials: a refusal that says why.
    pytest.param(params_body(csr_pem="garbage"), 200, id="csr-garbage"),
    pytest.param(params_body(csr_pem=""), 200, id="csr-empty"),
    pytest.param(params_body(csr_pem="c" * 60_000), 200, id="csr-60k"),
    pytest.param(params_body(csr_pem="-----BEGIN CERTIFICATE REQUEST-----\n\u00e9\n"), 200, id="csr-non-ascii"),
    pytest.param(
        params_body(csr_pem="-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"),
        200,
        id="csr-armored-junk",
    ),
    pytest.param(
        params_body(csr_pem="-----BEGIN CERTIFICATE REQUEST-----\n\n-----END CERTIFICATE REQUEST-----\n"),
        200,
        id="csr-armored-empty",
    ),
]

EXPECTED_DECISION = {400: "invalid_request", 413: None}


@pytest.mark.parametrize(("body", "status"), BODY_CASES)
def test_hostile_body_is_answered_safely(hostile, body, status):
    answer, added = send_hostile(hostile, lambda: post_bytes(hostile, body), f"{len(body)}-byte body")
    assert answer.status == status, answer.body[:300]
    if status == 200:
        payload = answer.json()
        assert payload["result"] is False
        decision = "csr_rejected" if b'"csr_pem"' in body else "unknown_credentials"
        if decision == "csr_rejected":
            assert payload["refusal"]["code"] == "csr_rejected", payload
        else:
            assert "refusal" not in payload, "wrong credentials must reveal nothing"
        assert [row[4] for row in added] == [decision]
    else:
        assert answer.json()["error"]["message"]
        expected = EXPECTED_DECISION[status]
        assert [row[4] for row in added] == ([expected] if expected else [])


# === CSRS WITH REFUSED KEYS, OR THAT DO NOT VERIFY ===


def _csr_pem(private_key, algorithm):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "iot-box")])
    )
    return builder.sign(private_key, algorithm).public_bytes(serialization.Encoding.PEM).decode()


def _tampered(der_edit):
    der = keys.make_csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.DER)
    edited = der_edit(der)
    assert edited != der and len(edited) == len(der)
    return x509.load_der_x509_csr(edited).public_bytes(serialization.Encoding.PEM).decode()


def _flip_last_byte(der):
    return der[:-1] + bytes([der[-1] ^ 0x01])


@functools.cache
def refused_csr(name):
    makers = {
        "rsa-1024": lambda: _csr_pem(rsa.generate_private_key(65537, 1024), hashes.SHA256()),
        "rsa-2048-e3": lambda: _csr_pem(rsa.generate_private_key(3, 2048), hashes.SHA256()),
        "p521": lambda: _csr_pem(ec.generate_private_key(ec.SECP521R1()), hashes.SHA512()),
        "secp256k1": lambda: _csr_pem(ec.generate_private_key(ec.SECP256K1()), hashes.SHA256()),
        "ed25519": lambda: _csr_pem(ed25519.Ed25519PrivateKey.generate(), None),
        "dsa-2048": lambda: _csr_pem(dsa.generate_private_key(2048), hashes.SHA256()),
        "bad-signature": lambda: _tampered(_flip_last_byte),
        "tampered-subject": lambda: _tampered(lambda der: der.replace(b"iot-box", b"iot-bot", 1)),
    }
    return makers[name]()


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("rsa-1024", "RSA key of 1024 bits refused"),
        ("rsa-2048-e3", "RSA public exponent 3 refused"),
        ("p521", "elliptic curve secp521r1 refused"),
        ("secp256k1", "elliptic curve secp256k1 refused"),
        ("ed25519", "Ed25519"),
        ("dsa-2048", "DSA"),
        ("bad-signature", "signature does not verify"),
        ("tampered-subject", "signature does not verify"),
        ("certificate-not-csr", "not a valid PEM certificate signing request"),
    ],
)
def test_refused_csr_is_a_csr_rejected_refusal(hostile, name, reason):
    if name == "certificate-not-csr":
        csr_pem = (hostile.data_dir / "ca" / "root.crt").read_text()
    else:
        csr_pem = refused_csr(name)
    body = params_body(csr_pem=csr_pem)
    answer, added = send_hostile(hostile, lambda: post_bytes(hostile, body), f"CSR {name}", rows=1)
    assert answer.status == 200
    payload = answer.json()
    assert payload["result"] is False
    assert payload["refusal"]["code"] == "csr_rejected", payload
    assert reason in payload["refusal"]["message"], payload
    assert added[0][4] == "csr_rejected" and added[0][2] == HUUID and reason in added[0][5]


# === LONE SURROGATES ===


SURROGATE_CAUSE = {
    "db_uuid": "mock_issuer/store.py:257 (_bucket, from rate_limit_wait via iot_pki/service.py:192) binds "
    "'uuid:x\\ud800' in SQLite",
    "enterprise_code": "iot_pki/eligibility.py:60 (credentials_match) calls enterprise_code.encode('utf-8')",
}


@pytest.mark.parametrize("field", ["db_uuid", "enterprise_code", "csr_pem", "id"])
def test_lone_surrogate_is_not_a_5xx(hostile, field):
    # JSON allows "\ud800" (an unpaired surrogate escape); Python decodes it to a str that cannot
    # be encoded to UTF-8, which SQLite and the constant-time comparison need.
    params = {"db_uuid": HUUID, "enterprise_code": "wrong"}
    payload = {"params": params}
    if field == "id":
        payload["id"] = "\ud800"
    elif field == "csr_pem":
        params.update(enterprise_code=HCODE, csr_pem="\ud800")
    else:
        params[field] = "x\ud800"
    body = json.dumps(payload).encode()
    assert b"\\ud800" in body
    before = registry_snapshot(hostile.data_dir)
    log_before = hostile.log()
    answer = post_bytes(hostile, body)
    log_now = hostile.log()
    added = len(registry_snapshot(hostile.data_dir)["requests"]) - len(before["requests"])
    assert answer.status < 500, (
        f"BUG lone surrogate in params.{field}: iot_pki/protocol.py:51 _string_param accepts a string with an "
        f"unpaired surrogate (JSON '\\ud800'), then {SURROGATE_CAUSE.get(field)} -> UnicodeEncodeError, which "
        "mock_issuer/server.py:42-45 (do_POST) turns into 503 + Retry-After: 30 (a box is told the issuer is "
        "down and to come back), with no requests row, no failure token taken, and a full traceback in the "
        f"log for every such request. Got HTTP {answer.status} {answer.body[:120]!r}, {added} requests row(s), "
        f"traceback in the log: {'Traceback' in log_now[len(log_before) :]}. Expected: 400 invalid_request "
        "(reject strings that do not encode to UTF-8 in _string_param)."
    )
    assert_hostile_answer(answer, hostile.data_dir, before, log_before, log_now, f"lone surrogate in {field}", rows=1)


# === HTTP-LEVEL HOSTILITY ===


@pytest.mark.parametrize("path", KNOWN_PATHS)
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_on_known_paths_are_405(hostile, method, path):
    def call():
        return Answer.of(requests.request(method, hostile.url + path, data=params_body(), timeout=30))

    answer, _added = send_hostile(hostile, call, f"{method} {path}", rows=0)
    assert answer.status == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("path", [profile.ROOT_PATH, profile.ISSUING_PATH, profile.CRL_PATH])
def test_head_on_download_paths_is_not_a_5xx(hostile, path):
    answer = Answer.of(requests.head(hostile.url + path, timeout=30))
    assert answer.status < 500, (
        f"BUG mock_issuer/server.py IssuerHandler has no do_HEAD: HEAD {path} answers HTTP {answer.status} "
        "(http.server's 'Unsupported method') although _send() (line 128) skips the body for HEAD and "
        "RFC 9110 9.1 requires HEAD wherever GET is served; expected 200 with the GET headers and no body "
        "(or at least 405 with Allow like the other methods)."
    )
    assert answer.status in (200, 405)


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/nope", 404),
        ("POST", "/nope", 404),
        ("GET", "/", 404),
        ("GET", X509, 404),
        ("POST", X509 + "/", 404),
        ("POST", "/odoo-enterprise/iot/../iot/x509", 404),
        ("POST", "/" + "a" * 5000, 404),
        ("GET", profile.ROOT_PATH + "/../../etc/passwd", 404),
    ],
)
def test_unknown_paths_are_404(hostile, method, path, status):
    def call():
        return raw_exchange(
            hostile.port,
            f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(params_body())}\r\nConnection: close\r\n\r\n".encode()
            + params_body(),
        )

    answer, _added = send_hostile(hostile, call, f"{method} {path[:40]}", rows=0)
    assert answer.status == status
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("path", [X509 + "?a=b", "//" + X509.lstrip("/"), "///" + X509.lstrip("/") + "?"])
def test_query_string_and_doubled_slashes_still_reach_the_service(hostile, path):
    # http.server (3.11.x security fix) reduces a leading "//" to "/"; the query is ignored.
    body = params_body(code="wrong")
    answer, added = send_hostile(
        hostile, lambda: Answer.of(requests.post(hostile.url + path, data=body, timeout=30)), path, rows=1
    )
    assert answer.status == 200 and answer.json() == {"jsonrpc": "2.0", "id": None, "result": False}
    assert added[0][4] == "unknown_credentials"


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        pytest.param("Transfer-Encoding: chunked\r\n", 411, "length_required", id="chunked"),
        pytest.param("Transfer-Encoding: gzip, chunked\r\n", 411, "length_required", id="gzip-chunked"),
        pytest.param("Content-Length: abc\r\n", 400, "invalid_request", id="cl-abc"),
        pytest.param("Content-Length: -1\r\n", 400, "invalid_request", id="cl-minus-1"),
        pytest.param("Content-Length: \r\n", 400, "invalid_request", id="cl-empty"),
        pytest.param("Content-Length: 1e3\r\n", 400, "invalid_request", id="cl-1e3"),
        pytest.param("Content-Length: 0x10\r\n", 400, "invalid_request", id="cl-hex"),
        pytest.param("Content-Length: 100000000\r\n", 413, "body_too_large", id="cl-100MB"),
    ],
)
def test_framing_abuse_is_a_clean_4xx(hostile, headers, status, code):
    body = params_body()
    framed = body
    if "chunked" in headers:
        framed = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"

    def call():
        return raw_exchange(
            hostile.port,
            f"POST {X509} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{headers}\r\n".encode() + framed,
        )

    answer, _added = send_hostile(hostile, call, headers.strip(), rows=0)
    assert answer.status == status, answer.body
    assert answer.json()["error"]["code"] == code
    assert answer.headers.get("connection") == "close"


# === PROPERTY: ARBITRARY JSON BODIES ===

# Lone surrogates are left out: test_lone_surrogate_is_not_a_5xx covers them (a known bug) and
# would make every run of the property fail on the same cause.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(TEXT, children, max_size=4),
    max_leaves=12,
)


def _not_the_code(value):
    return not (isinstance(value, str) and value.strip() == HCODE)


NON_BLANK = TEXT.filter(lambda text: text.strip())
UUID_STRINGS = st.sampled_from([HUUID, f" {HUUID} ", UNKNOWN]) | NON_BLANK
CODE_STRINGS = (st.sampled_from([HCODE.lower(), HCODE + "x", f"{HCODE}\u200b"]) | NON_BLANK).filter(_not_the_code)
GOOD_IDS = st.none() | st.integers() | TEXT.filter(lambda text: len(text) <= 128)
# Well-formed requests with wrong credentials (or a CSR of any kind): refused with a 200.
WELL_SHAPED = st.fixed_dictionaries(
    {"params": st.fixed_dictionaries(
        {"db_uuid": UUID_STRINGS, "enterprise_code": CODE_STRINGS},
        optional={"csr_pem": st.none() | TEXT, "extra": JSON_VALUES},
    )},
    optional={"jsonrpc": st.just("2.0"), "id": GOOD_IDS, "method": JSON_VALUES},
)  # fmt: skip
GARBAGE_CSR = TEXT | st.binary(max_size=300).map(
    lambda raw: (
        "-----BEGIN CERTIFICATE REQUEST-----\n"
        + base64.encodebytes(raw).decode()
        + "-----END CERTIFICATE REQUEST-----\n"
    )
)
# The right credentials always with a CSR string, never a real one: refused, never issued.
RIGHT_CODE_GARBAGE_CSR = st.fixed_dictionaries(
    {"params": st.fixed_dictionaries(
        {"db_uuid": st.just(HUUID), "enterprise_code": st.just(HCODE), "csr_pem": GARBAGE_CSR},
        optional={"extra": JSON_VALUES},
    )},
    optional={"id": GOOD_IDS},
)  # fmt: skip
# Anything in any field: mostly malformed.
ANY_PARAMS = st.fixed_dictionaries(
    {},
    optional={
        "db_uuid": UUID_STRINGS | JSON_VALUES,
        "enterprise_code": CODE_STRINGS | JSON_VALUES.filter(_not_the_code),
        "csr_pem": JSON_VALUES,
        "extra": JSON_VALUES,
    },
)
ANY_ENVELOPE = st.fixed_dictionaries(
    {"params": ANY_PARAMS | JSON_VALUES},
    optional={"jsonrpc": st.just("2.0") | JSON_VALUES, "id": JSON_VALUES, "method": JSON_VALUES},
)
BODIES = st.tuples(WELL_SHAPED | RIGHT_CODE_GARBAGE_CSR | ANY_ENVELOPE | JSON_VALUES, st.booleans()).map(
    lambda value: json.dumps(value[0], ensure_ascii=value[1]).encode("utf-8")
) | st.binary(max_size=300)


def test_property_arbitrary_json_bodies_keep_the_invariants(hostile):
    statuses = Counter()
    refusals = Counter()
    connection = sqlite3.connect(hostile.data_dir / "issuer.sqlite3", timeout=10)
    log_before = hostile.log()
    certificates_before = connection.execute("SELECT COUNT(*) FROM certificates").fetchone()[0]

    def count_requests():
        return connection.execute("SELECT COUNT(*) FROM requests").fetchone()[0]

    @settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES)
    def check(body):
        before = count_requests()
        # A new connection per request, as a box does (keep-alive costs ~40 ms a request here).
        response = requests.post(
            hostile.url + X509, data=body, headers={"Content-Type": "application/json"}, timeout=30
        )
        statuses[response.status_code] += 1
        assert response.status_code < 500, f"BUG HTTP {response.status_code} for body {body[:200]!r}"
        assert b"Traceback" not in response.content
        if response.status_code == 200:
            payload = response.json()
            assert "result" in payload and payload["result"] is False, payload
            refusals[(payload.get("refusal") or {}).get("code", "unknown_credentials")] += 1
        else:
            assert 400 <= response.status_code < 500 and response.json()["error"]["message"]
        assert connection.execute("SELECT COUNT(*) FROM certificates").fetchone()[0] == certificates_before
        assert count_requests() - before == (0 if response.status_code == 413 else 1)

    try:
        check()
    finally:
        connection.close()
    assert "Traceback" not in hostile.log()[len(log_before) :]
    assert sum(statuses.values()) >= 100
    print(f"\nproperty: {sum(statuses.values())} bodies, statuses {dict(statuses)}, refusals {dict(refusals)}")


# === BRUTE FORCE AND RATE LIMITS ===


def test_uuid_bucket_stops_guessing_one_database_only(tmp_path, start_issuer):
    data_dir = init(tmp_path / "issuer", "--uuid-rate-limit", "5/3600", "--client-rate-limit", "1000/1")
    register(data_dir, UUID, CODE)
    register(data_dir, UUID2, CODE2)
    issuer = start_issuer(data_dir)

    unknown = issuer.post(params_body(UNKNOWN, CODE))
    wrong = [issuer.post(params_body(UUID, f"M24GUESS{i}")) for i in range(5)]
    for answer in [unknown, *wrong]:
        assert answer.status_code == 200 and answer.json() == {"jsonrpc": "2.0", "id": None, "result": False}
    # Unknown UUID and wrong code: byte-identical answers (status, headers but Date, body).
    headers = [{k: v for k, v in a.headers.items() if k.lower() != "date"} for a in (unknown, wrong[0])]
    assert (unknown.status_code, headers[0], unknown.content) == (wrong[0].status_code, headers[1], wrong[0].content)

    limited = issuer.post(params_body(UUID, CODE))  # the RIGHT code, too late
    assert limited.status_code == 429, limited.text
    assert 0 < retry_after_seconds(limited.headers) <= 3600
    assert limited.json()["error"]["code"] == "rate_limited"
    assert "result" not in limited.json()
    assert "Traceback" not in limited.text

    other = issuer.post(params_body(UUID2, CODE2))
    assert other.status_code == 200 and other.json()["result"]["subject_cn"], "another database is not affected"

    state_dir = tmp_path / "box"
    configured = box(state_dir, "configure", "--pairing", f"{issuer.url}|tok|{UUID}|{CODE}", "--ip", "10.0.0.5")
    assert configured.returncode == 0, configured.stdout + configured.stderr
    checked = box(state_dir, "check")
    lines = checked.stdout.splitlines()
    assert checked.returncode == 1 and "Traceback" not in checked.stdout + checked.stderr
    assert lines[0] == "ERR_IOT_HTTPS_LOAD_REQUEST_STATUS 429", lines
    retry_lines = [line for line in lines if re.fullmatch(r"retry after \d+ s", line)]
    assert retry_lines and 0 < int(retry_lines[0].split()[2]) <= 3600, lines

    assert decisions(data_dir) == ["unknown_credentials"] * 6 + ["rate_limited", "issued", "rate_limited"]
    assert len(certificate_states(data_dir)) == 1


@pytest.mark.parametrize("failure", ["wrong_credentials", "malformed_bodies"])
def test_client_bucket_stops_spraying_across_databases(tmp_path, start_issuer, failure):
    data_dir = init(tmp_path / "issuer", "--client-rate-limit", "4/3600", "--uuid-rate-limit", "1000/1")
    register(data_dir, UUID, CODE)
    issuer = start_issuer(data_dir)
    if failure == "wrong_credentials":
        bodies = [params_body(f"{UNKNOWN[:-1]}{i}", CODE) for i in range(3)] + [params_body(UUID, "M24WRONG")]
        expected = 200
    else:
        bodies = [b"not json", b"[]", b'{"params": null}', params_body(db_uuid=1)]
        expected = 400
    for body in bodies:
        assert issuer.post(body).status_code == expected

    for body in (params_body(UUID, CODE), params_body(UUID2, CODE2), b"not json"):
        limited = issuer.post(body)
        assert limited.status_code == 429, limited.text
        assert 0 < retry_after_seconds(limited.headers) <= 3600
        assert limited.json()["error"]["code"] == "rate_limited"
    assert decisions(data_dir)[-3:] == ["rate_limited"] * 3
    assert certificate_states(data_dir) == []


# === LEGITIMATE BOXES ARE NOT STARVED ===


def test_fifty_boxes_at_once_all_get_certificates(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    count = 50
    barrier = threading.Barrier(count)
    results = [None] * count

    def ask(index):
        try:
            barrier.wait(timeout=30)
            started = time.monotonic()
            response = requests.post(
                issuer.url + X509,
                json={"params": {"db_uuid": UUID, "enterprise_code": CODE}},
                timeout=120,
            )
            results[index] = (response, time.monotonic() - started)
        except Exception as exc:  # reported by the assertion below
            results[index] = (exc, None)

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(count)]
    wall = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    wall = time.monotonic() - wall
    failures = [r for r in results if r is None or not isinstance(r[0], requests.Response) or r[0].status_code != 200]
    assert not failures, failures[:3]
    payloads = [response.json()["result"] for response, _elapsed in results]
    assert all(p and p["private_key_pem"] and p["x509_pem"] for p in payloads)
    assert len({leaf_serial(p) for p in payloads}) == count
    assert [state for _serial, state in certificate_states(issuer_data)] == ["valid"] * count
    latencies = sorted(elapsed for _response, elapsed in results)
    print(
        f"\nburst of {count} legacy boxes: wall {wall:.2f} s, p50 {statistics.median(latencies):.2f} s, "
        f"max {latencies[-1]:.2f} s"
    )


# === FAULTS ===


def post_with_timer(issuer, timeout=20):
    started = time.monotonic()
    response = requests.post(
        issuer.url + X509, json={"params": {"db_uuid": UUID, "enterprise_code": CODE}}, timeout=timeout
    )
    return response, time.monotonic() - started


def test_locked_registry_answers_503_then_the_same_process_issues_again(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    answers = []
    locker = sqlite3.connect(issuer_data / "issuer.sqlite3", isolation_level=None, timeout=10)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        threads = [threading.Thread(target=lambda: answers.append(post_with_timer(issuer))) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        locker.execute("ROLLBACK")
    assert len(answers) == 2
    for response, elapsed in answers:
        assert response.status_code == 503, response.text
        assert retry_after_seconds(response.headers) > 0
        assert "Traceback" not in response.text and "x509_pem" not in response.text
        assert response.json()["error"]["code"] == "unavailable"
        assert elapsed < 20, "the wait must be bounded by the busy timeout"
    waits = [elapsed for _response, elapsed in answers]

    # A lock shorter than the busy timeout is invisible: the request waits, then is issued.
    short = []
    try:
        locker.execute("BEGIN EXCLUSIVE")
        thread = threading.Thread(target=lambda: short.append(post_with_timer(issuer)))
        thread.start()
        time.sleep(1.0)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    thread.join(30)
    assert short and short[0][0].status_code == 200 and short[0][0].json()["result"]

    recovered, recovery = post_with_timer(issuer)
    assert recovered.status_code == 200 and recovered.json()["result"]["x509_pem"]
    assert issuer.process.poll() is None, "the same server process, no restart"
    assert [state for _serial, state in certificate_states(issuer_data)] == ["valid", "valid"]
    print(
        f"\nlocked registry: 503 after {min(waits):.2f}-{max(waits):.2f} s; a 1 s lock: issued in "
        f"{short[0][1]:.2f} s; after release: issued in {recovery:.2f} s"
    )


def test_crash_between_signing_and_recording_leaks_no_certificate(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    with sqlite3.connect(issuer_data / "issuer.sqlite3") as connection:
        connection.execute(
            "CREATE TRIGGER test_crash_after_signing BEFORE UPDATE OF state ON certificates "
            "BEGIN SELECT RAISE(ABORT, 'injected crash between signing and recording'); END"
        )
    connection.close()
    crashed, _elapsed = post_with_timer(issuer)
    assert crashed.status_code >= 500, crashed.text[:300]
    for secret in ("x509_pem", "BEGIN CERTIFICATE", "PRIVATE KEY", "Traceback"):
        assert secret not in crashed.text
    rows = certificate_states(issuer_data)
    assert len(rows) == 1 and rows[0][1] == "reserved" and int(rows[0][0], 16) > 0, rows
    reserved_serial = rows[0][0]

    with sqlite3.connect(issuer_data / "issuer.sqlite3") as connection:
        connection.execute("DROP TRIGGER test_crash_after_signing")
    connection.close()
    issued, _elapsed = post_with_timer(issuer)
    assert issued.status_code == 200, issued.text[:300]
    serial = f"{leaf_serial(issued.json()['result']):x}"
    assert serial != reserved_serial
    assert sorted(certificate_states(issuer_data)) == sorted([(reserved_serial, "reserved"), (serial, "valid")])


# === KEY CUSTODY ===


def test_ca_keys_encrypted_private_and_legacy_key_never_stored(tmp_path, start_issuer):
    passphrase = "correct horse battery staple 24"
    env = {"IOT_HTTPS_CA_PASSPHRASE": passphrase}
    data_dir = init(tmp_path / "issuer", env=env)
    ca_dir = data_dir / "ca"
    for name in ("root.key", "issuing.key"):
        content = (ca_dir / name).read_bytes()
        assert content.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n"), name
        assert (ca_dir / name).stat().st_mode & 0o777 == 0o600, name
    assert (ca_dir / "label.key").stat().st_mode & 0o777 == 0o600

    register(data_dir, UUID, CODE)
    issuer = start_issuer(data_dir, env=env)
    result = issuer.request_certificate(UUID, CODE).json()["result"]
    key_pem = result["private_key_pem"]
    assert "PRIVATE KEY" in key_pem
    b64_lines = [line for line in key_pem.strip().splitlines() if not line.startswith("-----")]
    needles = [
        "".join(b64_lines).encode(),
        base64.b64decode("".join(b64_lines)),
        *[line.encode() for line in b64_lines if len(line) >= 32],
        passphrase.encode(),
    ]

    def assert_nowhere(moment):
        places = [path for path in data_dir.rglob("*") if path.is_file()]
        assert any(path.name.endswith("-wal") for path in places) or moment == "after stop"
        for path in [*places, issuer.log_path]:
            content = path.read_bytes()
            for index, needle in enumerate(needles):
                assert needle not in content, f"{moment}: secret #{index} found in {path}"

    assert_nowhere("while serving")
    assert issuer.stop() == 0
    assert_nowhere("after stop")


# === REVOCATION ===


def crl_serials(issuer):
    crl = x509.load_der_x509_crl(requests.get(issuer.url + profile.CRL_PATH, timeout=10).content)
    return {entry.serial_number for entry in crl}


def test_revoked_box_gets_a_new_certificate_while_eligible_then_a_refusal(issuer_data, issuer):
    register(issuer_data, UUID, CODE)
    first = issuer.request_certificate(UUID, CODE).json()["result"]
    first_serial = leaf_serial(first)

    revoked = mock_issuer(issuer_data, "revoke", "--serial", f"{first_serial:x}")
    assert revoked.returncode == 0, revoked.stderr
    assert first_serial in crl_serials(issuer), "the CRL lists the revoked serial immediately"

    second = issuer.request_certificate(UUID, CODE)
    assert second.status_code == 200 and second.json()["result"], second.text[:300]
    second_serial = leaf_serial(second.json()["result"])
    assert second_serial != first_serial
    assert sorted(certificate_states(issuer_data)) == sorted(
        [(f"{first_serial:x}", "revoked"), (f"{second_serial:x}", "valid")]
    )

    # Closing the subscription revokes the database's valid certificates (register does it).
    closed = register(issuer_data, UUID, CODE, state="closed")
    assert "revoked 1 certificate" in closed.stdout
    refused = issuer.request_certificate(UUID, CODE)
    assert refused.status_code == 200
    assert refused.json()["result"] is False
    assert refused.json()["refusal"]["code"] == "subscription_not_in_progress"
    assert {first_serial, second_serial} <= crl_serials(issuer)
    assert sorted(state for _serial, state in certificate_states(issuer_data)) == ["revoked", "revoked"]
    assert decisions(issuer_data) == ["issued", "issued", "subscription_not_in_progress"]
