"""The issuing core (iot_pki): CA, profile, key and CSR policy, eligibility, protocol, service."""

import base64
import datetime
import json
import logging
import os
import re
import stat
import subprocess
import sys
import time

import pytest
from conftest import PUBLIC_URL, PUBLIC_ZONE, ROOT, pem_blocks, pkilint_findings
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iot_pki import codes, keys, profile, ratelimit
from iot_pki.ca import CAError, CertificateAuthority
from iot_pki.eligibility import DATABASE_TYPE_KEYS, SUBSCRIPTION_STATE_KEYS, DatabaseFacts, evaluate
from iot_pki.service import IssuanceService, IssuerStore, KeyPool

UUID = "0b9e3f5c-1111-4a2b-9c3d-123456789abc"
CODE = "M2411ABCDEF"


class MemoryStore(IssuerStore):
    """An in-memory registry recording everything the service hands it."""

    def __init__(self, *facts):
        self.databases = {f.uuid: f for f in facts}
        self.certificates = {}
        self.events = []
        self.buckets = {}

    def find_database(self, db_uuid):
        return self.databases.get(db_uuid)

    def reserve_certificate(self, facts, template, mode):
        if template.serial in self.certificates:
            return False
        self.certificates[template.serial] = {"db": facts.uuid, "mode": mode, "state": "reserved"}
        self.events.append(("reserve", template.serial))
        return True

    def complete_certificate(self, template, certificate):
        self.certificates[template.serial].update(
            state="valid", fingerprint=keys.fingerprint_sha256(certificate), pem=keys.certificate_pem(certificate)
        )
        self.events.append(("complete", template.serial))

    def discard_certificate(self, template):
        del self.certificates[template.serial]
        self.events.append(("discard", template.serial))

    def rate_limit_wait(self, limits, now):
        return max(ratelimit.retry_after(self.buckets.get(key), limit, now) for key, limit in limits)

    def record_failure(self, limits, now):
        for key, limit in limits:
            self.buckets[key] = ratelimit.take(self.buckets.get(key), limit, now)


def eligible_facts(uuid=UUID, code=CODE):
    return DatabaseFacts(uuid, code, "production", "in_progress", True)


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return CertificateAuthority.load_or_create(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def public_settings():
    return profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL)


@pytest.fixture
def service(ca, public_settings):
    return IssuanceService(ca, public_settings)


def request_body(uuid=UUID, code=CODE, envelope=False, **params):
    body = {"params": {"db_uuid": uuid, "enterprise_code": code, **params}}
    if envelope:
        body.update(jsonrpc="2.0", method="call", id=7)
    return json.dumps(body).encode()


def csr_pem(private_key, common_name="evil.example.org"):
    return keys.make_csr(private_key, common_name).public_bytes(serialization.Encoding.PEM).decode()


def issue(service, store=None, **params):
    store = store or MemoryStore(eligible_facts())
    answer, outcome = service.handle(request_body(**params), store)
    return answer, json.loads(answer.body), outcome, store


def leaf_of(payload):
    return x509.load_pem_x509_certificate(payload["result"]["x509_pem"].encode())


# === FRAMEWORK-FREE ===


def test_core_imports_no_odoo():
    code = "import sys, iot_pki, iot_pki.service; assert 'odoo' not in sys.modules; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "ok", result.stderr


# === CERTIFICATE AUTHORITY ===


def test_ca_is_two_tiers_with_private_files(tmp_path):
    authority = CertificateAuthority.load_or_create(tmp_path / "ca")
    root, issuing = authority.root_cert, authority.issuing_cert
    assert root.subject == root.issuer
    assert issuing.issuer == root.subject
    root.public_key().verify(issuing.signature, issuing.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))
    constraints = issuing.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca and constraints.path_length == 0
    for name in ("root.key", "issuing.key", "label.key"):
        assert stat.S_IMODE(os.stat(tmp_path / "ca" / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "ca").st_mode) == 0o700


def test_ca_is_never_overwritten(tmp_path):
    first = CertificateAuthority.load_or_create(tmp_path / "ca")
    before = {p.name: p.read_bytes() for p in (tmp_path / "ca").iterdir()}
    second = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert second.root_pem == first.root_pem
    assert {p.name: p.read_bytes() for p in (tmp_path / "ca").iterdir()} == before


def test_partial_ca_is_refused_not_recreated(tmp_path):
    CertificateAuthority.load_or_create(tmp_path / "ca")
    (tmp_path / "ca" / "issuing.key").unlink()
    root_before = (tmp_path / "ca" / "root.crt").read_bytes()
    with pytest.raises(CAError, match=r"incomplete CA.*issuing.key missing"):
        CertificateAuthority.load_or_create(tmp_path / "ca")
    assert (tmp_path / "ca" / "root.crt").read_bytes() == root_before
    assert not (tmp_path / "ca" / "issuing.key").exists()


def test_ca_keys_encrypted_with_passphrase(tmp_path):
    CertificateAuthority.load_or_create(tmp_path / "ca", passphrase="correct horse")
    for name in ("root.key", "issuing.key"):
        assert b"ENCRYPTED" in (tmp_path / "ca" / name).read_bytes()
    assert CertificateAuthority.load(tmp_path / "ca", "correct horse").issuing_key is not None
    with pytest.raises(CAError, match="passphrase is required"):
        CertificateAuthority.load(tmp_path / "ca")
    with pytest.raises(CAError, match="wrong passphrase"):
        CertificateAuthority.load(tmp_path / "ca", "wrong")


# === PROFILE ===


@pytest.mark.parametrize("mode", ["rsa2048", "p256", "csr-rsa3072", "csr-p384"])
def test_issued_leaf_passes_pkilint(ca, tmp_path, mode):
    settings_ = profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL, legacy_key_type=mode if "csr" not in mode else "p256")
    params = {}
    if mode == "csr-rsa3072":
        params["csr_pem"] = csr_pem(rsa.generate_private_key(65537, 3072))
    elif mode == "csr-p384":
        params["csr_pem"] = csr_pem(ec.generate_private_key(ec.SECP384R1()))
    _answer, payload, outcome, _store = issue(IssuanceService(ca, settings_), **params)
    assert outcome.issued
    findings, returncode = pkilint_findings(payload["result"]["x509_pem"], tmp_path)
    assert findings == [] and returncode == 0


def test_leaf_profile(service, ca):
    _answer, payload, _outcome, _store = issue(service)
    leaf = leaf_of(payload)
    subject = payload["result"]["subject_cn"]
    label = subject.split(".")[1]
    assert subject == f"*.{label}.{PUBLIC_ZONE}"
    assert keys.common_name(leaf) == subject
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [subject]
    assert UUID not in subject and UUID.replace("-", "") not in subject
    assert leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage(
        [ExtendedKeyUsageOID.SERVER_AUTH]
    )
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.key_encipherment  # RSA key (legacy default)
    aia = leaf.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [PUBLIC_URL + profile.ISSUING_PATH]
    crl = leaf.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for n in crl[0].full_name] == [PUBLIC_URL + profile.CRL_PATH]
    policies = leaf.extensions.get_extension_for_class(x509.CertificatePolicies).value
    assert [p.policy_identifier.dotted_string for p in policies] == ["2.23.140.1.2.1"]
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.issuing_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest


def test_chain_is_leaf_then_intermediate_never_root(service, ca):
    _answer, payload, _outcome, _store = issue(service)
    blocks = pem_blocks(payload["result"]["x509_pem"])
    assert len(blocks) == 2
    assert blocks[1] == ca.issuing_pem
    assert ca.root_pem not in payload["result"]["x509_pem"]
    leaf = x509.load_pem_x509_certificate(blocks[0].encode())
    ca.issuing_cert.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))


def test_label_is_stable_per_database_and_distinct(service):
    subjects = {issue(service)[1]["result"]["subject_cn"] for _ in range(3)}
    assert len(subjects) == 1
    other = issue(service, MemoryStore(eligible_facts("other-uuid")), uuid="other-uuid")[1]
    assert other["result"]["subject_cn"] not in subjects


def test_validity_default_backdating_and_cap(service, ca):
    before = keys.utcnow()
    leaf = leaf_of(issue(service)[1])
    not_before, not_after = keys.not_valid_before(leaf), keys.not_valid_after(leaf)
    assert before - datetime.timedelta(hours=1) <= not_before <= before
    assert not_after - not_before == datetime.timedelta(days=90)
    short = IssuanceService(ca, profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL, validity_days=30))
    leaf = leaf_of(issue(short)[1])
    assert keys.not_valid_after(leaf) - keys.not_valid_before(leaf) == datetime.timedelta(days=30)
    for days in (0, 201, 365, "90", True):
        with pytest.raises(profile.ProfileError, match="validity"):
            profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL, validity_days=days)


def test_serials_random_large_and_unique(service):
    store = MemoryStore(eligible_facts())
    serials = [issue(service, store, csr_pem=CSR_P256)[2].serial for _ in range(200)]
    assert len(set(serials)) == 200
    assert all((1 << 64) <= s < (1 << 159) for s in serials)
    # 127 random bits: the top half of the range is hit about half the time.
    assert 50 < sum(s >> 126 for s in serials) < 150


def test_serial_collision_draws_again(service, monkeypatch):
    from iot_pki import service as service_module

    draws = iter([(1 << 100) + 1, (1 << 100) + 1, (1 << 100) + 2])
    monkeypatch.setattr(service_module, "new_serial", lambda: next(draws))
    store = MemoryStore(eligible_facts())
    assert issue(service, store, csr_pem=CSR_P256)[2].serial == (1 << 100) + 1
    assert issue(service, store, csr_pem=CSR_P256)[2].serial == (1 << 100) + 2


@pytest.mark.parametrize(
    ("zone", "url"),
    [
        ("localhost", PUBLIC_URL),
        ("iot..example.com", PUBLIC_URL),
        ("-bad.example.com", PUBLIC_URL),
        ("10.0.0.1", PUBLIC_URL),
        ("a" * 250 + ".com", PUBLIC_URL),
        (PUBLIC_ZONE, "ftp://pki.example.com"),
        (PUBLIC_ZONE, "pki.example.com"),
        (PUBLIC_ZONE, "http://user:pw@pki.example.com"),
    ],
)
def test_settings_refuse_bad_zone_or_url(zone, url):
    with pytest.raises(profile.ProfileError):
        profile.ProfileSettings(zone, url)


def test_lint_catches_what_breaks_the_profile(service, ca, public_settings):
    now = keys.utcnow()
    good = profile.make_template(
        public_settings, ca, UUID, ec.generate_private_key(ec.SECP256R1()).public_key(), 1 << 100
    )
    assert profile.lint_template(good, ca) == []
    cases = {
        "serial": good.__class__(**{**good.__dict__, "serial": 12345}),
        "future": good.__class__(**{**good.__dict__, "not_before": now + datetime.timedelta(hours=1)}),
        "backdated": good.__class__(**{**good.__dict__, "not_before": now - datetime.timedelta(hours=2)}),
        "validity": good.__class__(**{**good.__dict__, "not_after": good.not_before + datetime.timedelta(days=201)}),
        "outlive": good.__class__(
            **{**good.__dict__, "not_after": keys.not_valid_after(ca.issuing_cert) + datetime.timedelta(days=1)}
        ),
        "name": good.__class__(**{**good.__dict__, "subject_cn": "*.example.com"}),
        "key": good.__class__(**{**good.__dict__, "public_key": rsa.generate_private_key(65537, 1024).public_key()}),
    }
    for case, template in cases.items():
        assert profile.lint_template(template, ca), f"lint missed: {case}"


def test_lint_finding_refuses_and_discards_reservation(ca, monkeypatch):
    from iot_pki import service as service_module

    monkeypatch.setattr(service_module, "lint_template", lambda template, ca: ["forced finding"])
    store = MemoryStore(eligible_facts())
    answer, outcome = IssuanceService(ca, profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL)).handle(
        request_body(csr_pem=CSR_P256), store
    )
    assert answer.status == 500 and b"forced" not in answer.body
    assert outcome.decision == "internal_error"
    assert store.certificates == {}
    assert [event for event, _serial in store.events] == ["reserve", "discard"]


def test_reserved_and_recorded_before_the_answer(service):
    _answer, payload, outcome, store = issue(service)
    assert [event for event, _serial in store.events] == ["reserve", "complete"]
    record = store.certificates[outcome.serial]
    assert record["state"] == "valid"
    assert record["fingerprint"] == keys.fingerprint_sha256(leaf_of(payload))


# === LEGACY MODE ===


@pytest.mark.parametrize(
    ("key_type", "key_class"), [("rsa2048", rsa.RSAPrivateKey), ("p256", ec.EllipticCurvePrivateKey)]
)
def test_legacy_mode_returns_a_matching_key_never_stored_or_logged(ca, key_type, key_class, caplog):
    caplog.set_level(logging.DEBUG)
    svc = IssuanceService(ca, profile.ProfileSettings(PUBLIC_ZONE, PUBLIC_URL, legacy_key_type=key_type))
    _answer, payload, outcome, store = issue(svc)
    result = payload["result"]
    assert set(result) == {"x509_pem", "private_key_pem", "subject_cn"}
    private_key = keys.load_private_key_pem(result["private_key_pem"])
    assert isinstance(private_key, key_class)
    if key_type == "rsa2048":
        assert private_key.key_size == 2048
    leaf = leaf_of(payload)
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(serialization.Encoding.DER, spki) == private_key.public_key().public_bytes(
        serialization.Encoding.DER, spki
    )
    key_body = result["private_key_pem"].splitlines()[1]
    assert key_body not in repr(store.certificates) and key_body not in repr(outcome)
    assert key_body not in caplog.text and key_body not in outcome.log_line("127.0.0.1")


# === CSR MODE ===

CSR_P256 = csr_pem(ec.generate_private_key(ec.SECP256R1()))


@pytest.mark.parametrize(
    "make_key",
    [
        lambda: rsa.generate_private_key(65537, 2048),
        lambda: rsa.generate_private_key(65537, 3072),
        lambda: rsa.generate_private_key(65537, 4096),
        lambda: ec.generate_private_key(ec.SECP256R1()),
        lambda: ec.generate_private_key(ec.SECP384R1()),
    ],
    ids=["rsa2048", "rsa3072", "rsa4096", "p256", "p384"],
)
def test_csr_mode_accepts_policy_keys_and_ignores_csr_names(service, make_key):
    private_key = make_key()
    _answer, payload, outcome, _store = issue(service, csr_pem=csr_pem(private_key, "evil.example.org"))
    assert outcome.issued and outcome.mode == "csr"
    assert set(payload["result"]) == {"x509_pem", "subject_cn"}
    leaf = leaf_of(payload)
    assert keys.common_name(leaf).endswith("." + PUBLIC_ZONE) and "evil" not in payload["result"]["x509_pem"]
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    assert leaf.public_key().public_bytes(der, spki) == private_key.public_key().public_bytes(der, spki)
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment == isinstance(private_key, rsa.RSAPrivateKey)


def _tampered_csr():
    pem = CSR_P256.encode()
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    body = bytearray(der)
    body[-5] ^= 0x01  # flip a bit of the signature
    lines = base64.encodebytes(bytes(body)).decode().replace("\n", "")
    chunks = "\n".join(lines[i : i + 64] for i in range(0, len(lines), 64))
    return f"-----BEGIN CERTIFICATE REQUEST-----\n{chunks}\n-----END CERTIFICATE REQUEST-----\n"


def _ed25519_csr():
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "box")])
    )
    return builder.sign(ed25519.Ed25519PrivateKey.generate(), None).public_bytes(serialization.Encoding.PEM).decode()


def _csr_with_exponent_3():
    return csr_pem(rsa.generate_private_key(3, 2048))


@pytest.mark.parametrize(
    ("make_csr", "message"),
    [
        (lambda: csr_pem(rsa.generate_private_key(65537, 1024)), "1024 bits refused"),
        (lambda: csr_pem(rsa.generate_private_key(65537, 2056)), "2056 bits refused"),
        (_csr_with_exponent_3, "exponent 3 refused"),
        (lambda: csr_pem(ec.generate_private_key(ec.SECP521R1())), "secp521r1 refused"),
        (_ed25519_csr, "refused"),
        (lambda: csr_pem(dsa.generate_private_key(2048)), "refused"),
        (_tampered_csr, "signature does not verify|not a valid"),
        (lambda: "not a csr", "not a valid PEM"),
        (lambda: "", "non-empty"),
        (lambda: "é" * 100, "non-ASCII"),
        (lambda: "A" * 20000, "longer than"),
    ],
    ids=["rsa1024", "rsa2056", "e3", "p521", "ed25519", "dsa", "bad-signature", "garbage", "empty", "unicode", "huge"],
)
def test_csr_mode_refuses_with_a_clear_reason(service, make_csr, message):
    answer, payload, outcome, store = issue(service, csr_pem=make_csr())
    assert answer.status == 200 and payload["result"] is False
    assert payload["refusal"]["code"] == codes.CSR_REJECTED
    assert outcome.decision == codes.CSR_REJECTED
    assert re.search(message, payload["refusal"]["message"]), payload["refusal"]["message"]
    assert store.certificates == {}


def test_csr_refusal_reveals_nothing_without_credentials(service):
    _answer, payload, outcome, _store = issue(service, code="wrong", csr_pem="garbage")
    assert payload == {"jsonrpc": "2.0", "id": None, "result": False}
    assert outcome.decision == codes.UNKNOWN_CREDENTIALS


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=3000), st.binary(max_size=2000).map(lambda b: b.decode("latin-1"))))
def test_csr_policy_never_raises_anything_else(data):
    with pytest.raises(keys.KeyPolicyError):
        keys.load_csr(data)


# === ELIGIBILITY ===


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (DatabaseFacts(UUID, CODE, "production", "in_progress", True), ""),
        (DatabaseFacts(UUID, CODE, "staging", "in_progress", True), codes.NOT_PRODUCTION),
        (DatabaseFacts(UUID, CODE, "development", "in_progress", True), codes.NOT_PRODUCTION),
        (DatabaseFacts(UUID, CODE, "duplicate", "in_progress", True), codes.NOT_PRODUCTION),
        (DatabaseFacts(UUID, CODE, "production", "", True), codes.NO_SUBSCRIPTION),
        (DatabaseFacts(UUID, CODE, "production", "draft", True), codes.SUBSCRIPTION_NOT_IN_PROGRESS),
        (DatabaseFacts(UUID, CODE, "production", "paused", True), codes.SUBSCRIPTION_NOT_IN_PROGRESS),
        (DatabaseFacts(UUID, CODE, "production", "closed", True), codes.SUBSCRIPTION_NOT_IN_PROGRESS),
        (DatabaseFacts(UUID, CODE, "production", "in_progress", False), codes.NO_IOT_BOX_LINE),
    ],
)
def test_eligibility_reasons(facts, reason):
    decision = evaluate(facts)
    assert decision.eligible == (reason == "")
    assert decision.reason == reason
    assert decision.message == (codes.REFUSALS[reason].meaning if reason else "eligible")


@given(
    st.sampled_from(DATABASE_TYPE_KEYS),
    st.sampled_from((*SUBSCRIPTION_STATE_KEYS, "")),
    st.booleans(),
)
def test_eligible_exactly_when_all_three_hold(database_type, state, line):
    decision = evaluate(DatabaseFacts(UUID, CODE, database_type, state, line))
    assert decision.eligible == (database_type == "production" and state == "in_progress" and line)
    assert decision.eligible or decision.reason in codes.REFUSALS


@pytest.mark.parametrize(
    ("facts", "reason"),
    [
        (DatabaseFacts(UUID, CODE, "staging", "in_progress", True), codes.NOT_PRODUCTION),
        (DatabaseFacts(UUID, CODE, "production", "paused", True), codes.SUBSCRIPTION_NOT_IN_PROGRESS),
        (DatabaseFacts(UUID, CODE, "production", "in_progress", False), codes.NO_IOT_BOX_LINE),
    ],
)
def test_refusal_with_known_credentials_gives_the_reason(service, facts, reason):
    answer, payload, outcome, store = issue(service, MemoryStore(facts))
    assert answer.status == 200 and payload["result"] is False
    assert payload["refusal"]["code"] == reason
    assert payload["refusal"]["message"] == codes.REFUSALS[reason].meaning
    assert outcome.decision == reason and outcome.db_uuid == UUID
    assert store.certificates == {}


def test_unknown_uuid_and_wrong_code_get_the_same_answer(service):
    unknown = issue(service, uuid="no-such-uuid")
    wrong = issue(service, code="WRONG")
    empty_code = issue(service, MemoryStore(DatabaseFacts(UUID, "", "production", "in_progress", True)), code="x")
    for answer, _payload, outcome, _store in (unknown, wrong, empty_code):
        assert answer.status == 200
        assert answer.body == b'{"jsonrpc": "2.0", "id": null, "result": false}'
        assert outcome.decision == codes.UNKNOWN_CREDENTIALS and outcome.db_uuid == ""


def test_disabled_issuer_refuses_eligible_databases(ca, public_settings):
    svc = IssuanceService(ca, public_settings, enabled=False)
    _answer, payload, _outcome, store = issue(svc)
    assert payload["result"] is False and payload["refusal"]["code"] == codes.ISSUANCE_DISABLED
    assert store.certificates == {}


# === PROTOCOL ===


def test_both_envelopes_are_answered_with_the_request_id(service):
    plain = issue(service)[1]
    assert plain["id"] is None and plain["result"]["subject_cn"]
    full = issue(service, envelope=True)[1]
    assert full["jsonrpc"] == "2.0" and full["id"] == 7 and full["result"]["subject_cn"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[]", "JSON object"),
        (b'"params"', "JSON object"),
        (b"null", "JSON object"),
        (b'{"params": null}', "params must be"),
        (b'{"params": [1, 2]}', "params must be"),
        (b'{"params": {}}', "db_uuid is missing"),
        (b'{"params": {"db_uuid": 5, "enterprise_code": "c"}}', "db_uuid is a int"),
        (b'{"params": {"db_uuid": "u", "enterprise_code": ["c"]}}', "enterprise_code is a list"),
        (b'{"params": {"db_uuid": "u", "enterprise_code": {}}}', "enterprise_code is a dict"),
        (b'{"params": {"db_uuid": " ", "enterprise_code": "c"}}', "db_uuid is empty"),
        (b'{"params": {"db_uuid": "u\\u0000", "enterprise_code": "c"}}', "null character"),
        (b'{"params": {"db_uuid": "u", "enterprise_code": "\\ud800"}}', "not valid Unicode"),
        (b'{"params": {"db_uuid": "u", "enterprise_code": "c", "csr_pem": 1}}', "csr_pem is a int"),
        (b'{"jsonrpc": "1.0", "params": {"db_uuid": "u", "enterprise_code": "c"}}', "jsonrpc"),
        (b'{"id": [], "params": {"db_uuid": "u", "enterprise_code": "c"}}', "id must be"),
        (json.dumps({"params": {"db_uuid": "u" * 100_000, "enterprise_code": "c"}}).encode(), "larger than"),
        (json.dumps({"params": {"db_uuid": "u" * 1000, "enterprise_code": "c"}}).encode(), "longer than"),
    ],
)
def test_malformed_requests_get_a_clear_400(service, body, message):
    store = MemoryStore(eligible_facts())
    answer, outcome = service.handle(body, store)
    payload = json.loads(answer.body)
    assert answer.status == 400
    assert payload["error"]["code"] == "invalid_request"
    assert message in payload["error"]["message"]
    assert "Traceback" not in answer.body.decode()
    assert outcome.decision == "invalid_request" and store.certificates == {}


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.binary(max_size=300),
        JSON_VALUES.map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries({"params": JSON_VALUES}).map(lambda v: json.dumps(v).encode()),
        st.fixed_dictionaries(
            {"params": st.fixed_dictionaries({"db_uuid": JSON_VALUES, "enterprise_code": JSON_VALUES})}
        ).map(lambda v: json.dumps(v).encode()),
    )
)
def test_any_body_gets_a_result_or_a_4xx(service, body):
    answer, _outcome = service.handle(body, MemoryStore(eligible_facts()))
    payload = json.loads(answer.body)
    assert answer.status in (200, 400)
    if answer.status == 200:
        assert "result" in payload
    assert "Traceback" not in answer.body.decode()


# === CRL ===


def test_crl_lists_revoked_serials(ca):
    when = keys.utcnow()
    crl = x509.load_der_x509_crl(ca.build_crl([((1 << 100) + 5, when)]))
    assert crl.issuer == ca.issuing_cert.subject
    assert crl.is_signature_valid(ca.issuing_cert.public_key())
    assert crl.get_revoked_certificate_by_serial_number((1 << 100) + 5) is not None
    assert crl.get_revoked_certificate_by_serial_number((1 << 100) + 6) is None


def test_root_is_served_as_pem_issuing_as_der(service, ca):
    root = service.root_answer()
    assert root.status == 200 and x509.load_pem_x509_certificate(root.body).subject == ca.root_cert.subject
    issuing = service.issuing_answer()
    assert x509.load_der_x509_certificate(issuing.body).subject.get_attributes_for_oid(NameOID.COMMON_NAME)


@pytest.mark.parametrize(
    ("host", "subject"),
    [
        ("10-0-0-5.abc.iot.example.com", "*.abc.iot.example.com"),
        ("192-168-1-20.k3f.zone.tld.", "*.k3f.zone.tld"),
        ("10.0.0.5", None),
        ("999-0-0-5.abc.iot.example.com", None),
        ("10-0-0-5.single", None),
        ("box.abc.iot.example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_subject_of_box_host(host, subject):
    assert profile.subject_of_box_host(host) == subject
    if subject:
        assert profile.box_hostname(host.split(".")[0].replace("-", "."), subject) == host.rstrip(".")


@pytest.mark.parametrize(
    ("database_type", "state", "revoke"),
    [
        ("production", "in_progress", False),
        ("production", "paused", False),
        ("production", "draft", False),
        ("production", "closed", True),
        ("staging", "in_progress", True),
        ("development", "in_progress", True),
        ("duplicate", "in_progress", True),
    ],
)
def test_which_changes_revoke_certificates(database_type, state, revoke):
    from iot_pki.eligibility import revokes_certificates

    assert revokes_certificates(DatabaseFacts(UUID, CODE, database_type, state, True)) is revoke


@pytest.mark.parametrize(
    ("text", "burst", "period"),
    [("10/60", 10, 60.0), ("1/0.5", 1, 0.5)],
)
def test_rate_limit_parsing(text, burst, period):
    assert ratelimit.Limit.parse(text) == ratelimit.Limit(burst, period)


@pytest.mark.parametrize("text", ["", "10", "0/60", "10/0", "a/b", "10/-1", "1/2/3"])
def test_rate_limit_parsing_refuses_nonsense(text):
    with pytest.raises(ValueError, match="rate limit"):
        ratelimit.Limit.parse(text)


def test_token_bucket_allows_a_burst_then_one_per_period():
    limit = ratelimit.Limit(3, 60.0)
    bucket = None
    for second in range(3):
        assert ratelimit.retry_after(bucket, limit, 1000.0 + second) == 0
        bucket = ratelimit.take(bucket, limit, 1000.0 + second)
    assert ratelimit.retry_after(bucket, limit, 1003.0) == 58  # one token back at 1062
    assert ratelimit.retry_after(bucket, limit, 1062.0) == 0
    assert ratelimit.is_idle(bucket, limit, 1002.0 + 180.0)
    assert ratelimit.take(ratelimit.take(bucket, limit, 1003.0), limit, 1003.0).tokens == 0.0


def test_wrong_credentials_are_rate_limited_then_answered_429(ca, public_settings):
    svc = IssuanceService(ca, public_settings, uuid_limit=ratelimit.Limit(2, 3600.0))
    store = MemoryStore(eligible_facts())
    for _attempt in range(2):
        assert issue(svc, store, code="WRONG")[2].decision == codes.UNKNOWN_CREDENTIALS
    answer, payload, outcome, _store = issue(svc, store)  # the right code, but locked
    assert answer.status == 429 and int(answer.headers["Retry-After"]) > 3000
    assert payload["error"]["code"] == "rate_limited" and outcome.decision == "rate_limited"
    other = issue(svc, MemoryStore(eligible_facts("other")), uuid="other")
    assert other[2].issued


def test_key_pool_serves_ready_keys_and_other_types_on_demand():
    pool = KeyPool("p256", size=4)
    deadline = time.monotonic() + 10
    while pool.ready() < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool.ready() == 4  # bounded: the refill stops at the size
    keys_taken = [pool.take("p256") for _ in range(6)]  # 4 from the pool, 2 made on demand
    assert all(isinstance(key, ec.EllipticCurvePrivateKey) for key in keys_taken)
    assert len({key.private_numbers().private_value for key in keys_taken}) == 6
    assert isinstance(pool.take("rsa2048"), rsa.RSAPrivateKey)
