"""docs/openapi.yaml, the description of the public endpoints, against the running mock issuer.

Schemathesis loads the description (a valid OpenAPI 3 document), generates requests for the
operations the mock issuer implements and checks every answer against it: no server error, a
documented status, the documented content type, body schema and headers. Explicit requests then
reach each documented status of the certificate request; each body is validated against the schema
of its status with jsonschema_rs too (a schemathesis dependency). /iot/setup (registerBox) is the
Odoo addon's only: the mock issuer answers 404 there.

Schemathesis is installed with current libraries (requirements-dev.txt), not with Odoo's pins: the
run with Odoo's pins sets IOT_HTTPS_COMPAT=1, which skips this module when schemathesis is missing.
"""

import collections
import importlib.util
import json
import os
import sqlite3
import threading
from pathlib import Path

import pytest
import requests
from conftest import PUBLIC_URL, PUBLIC_ZONE, mock_issuer, register

COMPAT_REASON = "schemathesis runs with current libraries (the suite without Odoo's pins)"
if os.environ.get("IOT_HTTPS_COMPAT") == "1" and importlib.util.find_spec("schemathesis") is None:
    pytest.skip(COMPAT_REASON, allow_module_level=True)

DESCRIPTION = Path(__file__).resolve().parent.parent / "docs" / "openapi.yaml"
UUID = "0d7c4a3e-1111-4b2a-9c8d-0123456789ab"
CODE = "M24OPENAPI"
X509 = "/odoo-enterprise/iot/x509"
# The operations the mock issuer implements; registerBox (/iot/setup) is the Odoo addon's only.
MOCK_OPERATIONS = ["requestCertificate", "getRootCertificate", "getIssuingCertificate", "getRevocationList"]
MAX_EXAMPLES = 50


# === FIXTURES ===


@pytest.fixture(scope="module", autouse=True)
def schemathesis():
    """Imported here, not at the top: the module loads (and skips) without it."""
    try:
        import schemathesis
    except ImportError:
        schemathesis = None
    if schemathesis is None:
        pytest.fail(
            "schemathesis is not installed: it is in requirements-dev.txt (tools/test.sh installs it into .venv). "
            "The run with Odoo's pins sets IOT_HTTPS_COMPAT=1 to skip this module.",
            pytrace=False,
        )
    return schemathesis


@pytest.fixture(scope="module")
def schema(schemathesis):
    return schemathesis.openapi.from_path(DESCRIPTION)


@pytest.fixture(scope="module")
def description():
    import yaml  # a schemathesis dependency

    return yaml.safe_load(DESCRIPTION.read_text())


@pytest.fixture(scope="module")
def checks(schemathesis):
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_headers_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    return [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        response_headers_conformance,
    ]


def init_issuer(data_dir, uuid_limit="100000/1", client_limit="100000/1"):
    result = mock_issuer(
        data_dir, "init", "--zone", PUBLIC_ZONE, "--public-url", PUBLIC_URL,
        "--uuid-rate-limit", uuid_limit, "--client-rate-limit", client_limit,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return data_dir


@pytest.fixture
def live_data(tmp_path):
    """An issuer folder whose rate limits never answer 429, with one eligible database."""
    data_dir = init_issuer(tmp_path / "issuer")
    register(data_dir, UUID, CODE)
    return data_dir


@pytest.fixture
def live_issuer(live_data, start_issuer):
    return start_issuer(live_data)


# === HELPERS ===


def documented(description, path, method, status):
    """(content type, JSON schema) of the answer ``status`` of an operation, as docs/openapi.yaml says."""
    responses = description["paths"][path][method.lower()]["responses"]
    assert str(status) in responses, f"{method} {path}: HTTP {status} is not in docs/openapi.yaml"
    answer = responses[str(status)]
    if "$ref" in answer:
        answer = description["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    ((content_type, media),) = answer["content"].items()
    return content_type, media["schema"]


def validate_body(description, path, method, response):
    """The answer's status, content type and JSON body are the ones documented (jsonschema_rs)."""
    import jsonschema_rs  # a schemathesis dependency

    content_type, schema = documented(description, path, method, response.status_code)
    assert response.headers["Content-Type"] == content_type
    # OpenAPI 3.0 schemas are JSON Schema draft 4 plus keywords (nullable) that draft 4 ignores.
    validator = jsonschema_rs.Draft4Validator({**schema, "components": description["components"]})
    validator.validate(response.json())
    return response.json()


def check_answer(schema, checks, description, response, expect_server_error=False):
    """Schemathesis's checks on an answer to an explicit certificate request, then its body with jsonschema_rs.

    :param expect_server_error: a 5xx provoked on purpose (not_a_server_error is left out)
    """
    try:
        sent = json.loads(response.request.body)
    except (TypeError, ValueError):
        sent = None
    if expect_server_error:
        checks = [check for check in checks if check.__name__ != "not_a_server_error"]
    schema[X509]["POST"].Case(body=sent).validate_response(response, checks=checks)
    return validate_body(description, X509, "POST", response)


def retry_after(response):
    value = response.headers.get("Retry-After", "")
    assert value.isdigit() and int(value) >= 1, f"Retry-After: {value!r}"
    return int(value)


def outcome(response):
    """What one answer to a certificate request was: a run must reach issuance and refusals, not only 400s."""
    if response.status_code != 200:
        return str(response.status_code)
    payload = response.json()
    if payload.get("result"):
        return "issued"
    return "refused:" + payload["refusal"]["code"] if "refusal" in payload else "unknown_credentials"


# === THE DOCUMENT ===


def test_description_is_a_valid_openapi_3_document(schema):
    schema.validate()  # raises on a document that breaks the OpenAPI 3.0 schema
    assert schema.raw_schema["openapi"].startswith("3.")
    operation_ids = {
        operation["operationId"] for item in schema.raw_schema["paths"].values() for operation in item.values()
    }
    assert operation_ids == {*MOCK_OPERATIONS, "registerBox"}, "a new operation: does the mock issuer implement it?"
    for operation_id in operation_ids:
        assert schema.find_operation_by_id(operation_id) is not None


def test_a_broken_description_is_refused(schemathesis, description):
    """The validation has teeth: an operation without its required ``responses`` is refused."""
    import jsonschema_rs  # a schemathesis dependency

    broken = {**description, "paths": {X509: {"post": {"operationId": "requestCertificate"}}}}
    with pytest.raises(jsonschema_rs.ValidationError, match="responses"):
        schemathesis.openapi.from_dict(broken).validate()


def test_the_checks_catch_an_answer_the_description_does_not_allow(schemathesis, schema, checks, description):
    """A 200 without ``result`` (a stock box crashes on it) fails both validations."""
    import jsonschema_rs  # a schemathesis dependency

    answer = requests.Response()
    answer.status_code = 200
    answer.headers["Content-Type"] = "application/json"
    answer._content = b'{"jsonrpc": "2.0", "id": null}'
    answer.request = requests.Request("POST", "http://127.0.0.1" + X509, json={"params": {}}).prepare()
    answer.url = answer.request.url
    with pytest.raises(schemathesis.errors.FailureGroup, match="result"):
        schema[X509]["POST"].Case(body={"params": {}}).validate_response(answer, checks=checks)
    with pytest.raises(jsonschema_rs.ValidationError, match="result"):
        validate_body(description, X509, "POST", answer)


# === GENERATED REQUESTS ===


@pytest.mark.parametrize(
    ("operation_id", "mode"),
    [
        ("requestCertificate", "positive"),
        ("requestCertificate", "negative"),
        ("getRootCertificate", "positive"),
        ("getIssuingCertificate", "positive"),
        ("getRevocationList", "positive"),
    ],
)
def test_generated_requests_get_documented_answers(schemathesis, schema, checks, live_issuer, operation_id, mode):
    """Schema-conforming (positive) and schema-violating (negative) requests: every answer is described.

    In positive mode a share of the requests carry the registered database's credentials, with or
    without the generated CSR, so issuance and refusals with a reason are checked too.
    """
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    operation = schema.find_operation_by_id(operation_id)
    seen = collections.Counter()
    session = requests.Session()

    @given(
        case=operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode)),
        credentials=st.sampled_from(["generated", "known", "known-legacy"]),
    )
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    def run(case, credentials):
        params = case.body.get("params") if isinstance(case.body, dict) else None
        if mode == "positive" and credentials != "generated" and isinstance(params, dict):
            params = {**params, "db_uuid": UUID, "enterprise_code": CODE}
            if credentials == "known-legacy":
                params.pop("csr_pem", None)
            case.body = {**case.body, "params": params}
        response = case.call_and_validate(base_url=live_issuer.url, session=session, checks=checks, timeout=30)
        seen[outcome(response) if operation_id == "requestCertificate" else str(response.status_code)] += 1

    run()
    session.close()
    print(f"\n{operation_id} ({mode}): {dict(seen)}")
    if operation_id != "requestCertificate":
        assert set(seen) == {"200"}, seen
    elif mode == "positive":
        assert {"issued", "unknown_credentials"} <= set(seen), seen
    else:
        assert "400" in seen, seen
    assert "Traceback" not in live_issuer.log()


def test_register_box_is_not_served_by_the_mock_issuer(live_issuer, description):
    """registerBox is described for the Odoo addon; the mock issuer answers 404 (a JSON error) there."""
    assert "post" in description["paths"]["/iot/setup"]
    response = requests.post(
        live_issuer.url + "/iot/setup", json={"params": {"iot_box": {"identifier": "aa:bb"}}}, timeout=10
    )
    assert response.status_code == 404
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "not_found"


# === EXPLICIT ANSWERS, ONE PER DOCUMENTED STATUS ===


def test_issued_answers_in_both_modes(schema, checks, description, live_issuer):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from iot_pki import keys

    legacy = check_answer(schema, checks, description, live_issuer.request_certificate(UUID, CODE))
    assert set(legacy["result"]) == {"x509_pem", "private_key_pem", "subject_cn"}
    csr = keys.make_csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.PEM).decode()
    answer = live_issuer.post({"jsonrpc": "2.0", "method": "call", "id": 7, "params": {
        "db_uuid": UUID, "enterprise_code": CODE, "csr_pem": csr}})  # fmt: skip
    issued = check_answer(schema, checks, description, answer)
    assert set(issued["result"]) == {"x509_pem", "subject_cn"} and issued["id"] == 7


def test_refusals_with_and_without_a_reason(schema, checks, description, live_data, live_issuer):
    register(live_data, "no-line-uuid", "NOLINE", line=False)
    refused = check_answer(schema, checks, description, live_issuer.request_certificate("no-line-uuid", "NOLINE"))
    assert refused["result"] is False and refused["refusal"]["code"] == "no_iot_box_line"
    rejected = check_answer(schema, checks, description, live_issuer.request_certificate(UUID, CODE, csr_pem="x"))
    assert rejected["result"] is False and rejected["refusal"]["code"] == "csr_rejected"
    # Unknown UUID or wrong code: a bare false result, nothing said about the database.
    for db_uuid, code in ((UUID, "wrong"), ("unknown-uuid", CODE)):
        unknown = check_answer(schema, checks, description, live_issuer.request_certificate(db_uuid, code))
        assert unknown == {"jsonrpc": "2.0", "id": None, "result": False}


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"params": {"db_uuid": 1, "enterprise_code": "c"}}', b'{"jsonrpc": "1.0", "params": {}}'],
)
def test_malformed_requests_get_a_documented_400(schema, checks, description, live_issuer, body):
    error = check_answer(schema, checks, description, live_issuer.post(body))
    assert error["error"]["code"] == "invalid_request" and error["error"]["message"]


def test_oversized_body_gets_a_documented_413(schema, checks, description, live_issuer):
    response = live_issuer.request_certificate(UUID, "x" * (64 * 1024))
    assert response.status_code == 413
    assert check_answer(schema, checks, description, response)["error"]["code"] == "body_too_large"


def test_chunked_body_gets_a_documented_411(schema, checks, description, live_issuer):
    response = requests.post(
        live_issuer.url + X509,
        data=iter([b'{"params": {"db_uuid": "u", ', b'"enterprise_code": "c"}}']),  # no length: chunked
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 411
    error = validate_body(description, X509, "POST", response)
    assert error["error"]["code"] == "length_required"
    schema[X509]["POST"].Case(body=None).validate_response(response, checks=checks)


def test_too_many_failed_attempts_get_a_documented_429(schema, checks, description, tmp_path, start_issuer):
    data_dir = init_issuer(tmp_path / "strict", uuid_limit="1/3600")
    register(data_dir, UUID, CODE)
    issuer = start_issuer(data_dir)
    assert issuer.request_certificate(UUID, "wrong").json()["result"] is False  # the one failure allowed
    response = issuer.request_certificate(UUID, CODE)
    assert response.status_code == 429
    assert check_answer(schema, checks, description, response)["error"]["code"] == "rate_limited"
    assert retry_after(response) > 3000


def test_locked_registry_gets_a_documented_503(schema, checks, description, live_data, live_issuer):
    """The registry locked past the issuer's busy timeout (5 s): 503 + Retry-After."""
    locker = sqlite3.connect(live_data / "issuer.sqlite3", isolation_level=None, timeout=10)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        response = live_issuer.request_certificate(UUID, CODE)
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    assert response.status_code == 503
    error = check_answer(schema, checks, description, response, expect_server_error=True)
    assert error["error"]["code"] == "unavailable" and retry_after(response) >= 1


def test_signing_failure_gets_a_documented_500(schema, checks, description, live_data, monkeypatch):
    """The mock issuer's HTTP server, in this process, with a forced lint finding: 500."""
    from iot_pki import ca as ca_module
    from iot_pki import service as service_module
    from mock_issuer import server as server_module
    from mock_issuer import store

    monkeypatch.setattr(service_module, "lint_template", lambda template, ca: ["forced finding"])
    settings = store.load_settings(live_data)
    authority = ca_module.CertificateAuthority.load(live_data / store.CA_DIR, store.passphrase())
    service = service_module.IssuanceService(authority, settings.profile)
    server = server_module.IssuerServer(("127.0.0.1", 0), service, store.Registry(live_data))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        response = requests.post(
            f"http://127.0.0.1:{server.server_address[1]}{X509}",
            json={"params": {"db_uuid": UUID, "enterprise_code": CODE}},
            timeout=30,
        )
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)
    assert response.status_code == 500
    error = check_answer(schema, checks, description, response, expect_server_error=True)
    assert error["error"]["code"] == "internal_error" and "forced" not in response.text
