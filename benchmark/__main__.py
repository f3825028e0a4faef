"""python -m benchmark: issuance speed against the crypto limit, on this machine, in one run.

1. the limit: key generation (legacy) or CSR verification (CSR mode) and
   building and signing the leaf with cryptography alone, per mode;
2. the core's issuance per mode (profile, serial, lint, sign, record hook);
3. the mock issuer over HTTP, loaded by wrk from another process, at 1, 8 and
   32 connections, CSR and legacy mode; a burst of 20 legacy RSA requests;
4. the Odoo endpoint with 2 workers (when Odoo 17 is installed) with 1,000 and
   100,000 registered databases, and the query plan of the eligibility lookup;
5. the mock issuer's resident memory before and after 10,000 issuances.
Prints the figures and the ratios, and writes them to .build/benchmark.json.
"""

import argparse
import datetime
import json
import os
import re
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from iot_pki import ca as ca_module
from iot_pki import keys, profile, service
from iot_pki.eligibility import DatabaseFacts

ROOT = Path(__file__).resolve().parent.parent
REPORT = ROOT / ".build" / "benchmark.json"
ZONE, PUBLIC_URL = "iot.example.com", "http://pki.example.com"
UUID, CODE = "bench-database-0000000", "BENCH-CODE"
MODES = ("legacy-rsa2048", "legacy-p256", "csr")


# === 1. THE LIMIT: cryptography alone ===


def _plain_leaf(authority, public_key, subject):
    """The same leaf as the profile's, written the plain way with cryptography's builder."""
    now = datetime.datetime.now(datetime.timezone.utc)
    usage = x509.KeyUsage(
        True, False, isinstance(public_key, rsa.RSAPublicKey), False, False, False, False, False, False
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(authority.issuing_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(authority.authority_key_identifier, critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
        .add_extension(
            x509.AuthorityInformationAccess(
                [
                    x509.AccessDescription(
                        x509.AuthorityInformationAccessOID.CA_ISSUERS,
                        x509.UniformResourceIdentifier(PUBLIC_URL + profile.ISSUING_PATH),
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(PUBLIC_URL + profile.CRL_PATH)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
        .add_extension(x509.CertificatePolicies([x509.PolicyInformation(profile.DV_POLICY, None)]), critical=False)
    )
    return builder.sign(authority.issuing_key, hashes.SHA256())


def limit_step(mode, authority, csr_pem):
    subject = f"*.abcdefghijklmnop.{ZONE}"
    if mode == "csr":

        def step():
            csr = x509.load_pem_x509_csr(csr_pem.encode())
            assert csr.is_signature_valid
            _plain_leaf(authority, csr.public_key(), subject)

    else:
        make = (
            (lambda: rsa.generate_private_key(65537, 2048))
            if mode == "legacy-rsa2048"
            else (lambda: ec.generate_private_key(ec.SECP256R1()))
        )

        def step():
            _plain_leaf(authority, make().public_key(), subject)

    return step


# === 2. THE CORE ===


class _NullStore(service.IssuerStore):
    """The core's storage hooks, doing nothing: the core alone is measured."""

    def reserve_certificate(self, facts, template, mode):
        return True

    def complete_certificate(self, template, certificate):
        pass


def core_step(mode, issuer, csr_pem):
    facts = DatabaseFacts(UUID, CODE, "production", "in_progress", True)
    store = _NullStore()
    key_type = "rsa2048" if mode == "legacy-rsa2048" else "p256"
    key_source = service.KeyGenerator()  # steady state: a pool drains and costs the same

    if mode == "csr":

        def step():
            issuer.issue(facts, keys.load_csr(csr_pem), "csr", store)

    else:

        def step():
            issuer.issue(facts, key_source.take(key_type).public_key(), "legacy", store)

    return step


def rate(step, seconds):
    """Operations per second of ``step`` over about ``seconds`` (after a short warm-up)."""
    for _ in range(3):
        step()
    count, started = 0, time.perf_counter()
    while True:
        step()
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and count >= 5:
            return count / elapsed


# === 3. THE MOCK ISSUER OVER HTTP ===

WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = io.open("{body}"):read("*a")
"""


class MockIssuer:
    def __init__(self, work, key_pool=32, workers=2):
        self.data = work / "issuer"
        python = sys.executable
        subprocess.run(
            [python, "-m", "mock_issuer", "--data", str(self.data), "init", "--zone", ZONE, "--public-url",
             PUBLIC_URL, "--uuid-rate-limit", "1000000/1", "--client-rate-limit", "1000000/1"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [python, "-m", "mock_issuer", "--data", str(self.data), "register", "--db-uuid", UUID,
             "--enterprise-code", CODE, "--database-type", "production", "--subscription-state", "in_progress",
             "--iot-box-line"],
            cwd=ROOT, check=True, capture_output=True,
        )  # fmt: skip
        self.log = open(work / "issuer.log", "w")
        self.process = subprocess.Popen(
            [python, "-m", "mock_issuer", "--data", str(self.data), "serve", "--port", "0", "--key-pool", str(key_pool),
             "--workers", str(workers)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            match = re.search(r"serving http://[\d.]+:(\d+)/", (work / "issuer.log").read_text())
            if match:
                self.url = f"http://127.0.0.1:{match.group(1)}"
                return
            time.sleep(0.05)
        raise RuntimeError("the mock issuer did not start")

    def rss_kib(self):
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        return 0

    def issued(self):
        import sqlite3

        with sqlite3.connect(self.data / "issuer.sqlite3") as connection:
            return connection.execute("SELECT count(*) FROM certificates WHERE state = 'valid'").fetchone()[0]

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(30)
        self.log.close()


def wrk(url, body, connections, seconds, work):
    """Run wrk from another process: requests/s, p50 and p99 latency (ms), non-2xx count."""
    body_file = work / f"body-{os.getpid()}-{connections}.json"
    body_file.write_bytes(body)
    script = work / "post.lua"
    script.write_text(WRK_SCRIPT.format(body=body_file))
    threads = max(1, min(connections, 2))
    result = subprocess.run(
        ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s", "--latency",
         "-s", str(script),
         url + profile.X509_PATH],
        capture_output=True, text=True, timeout=seconds + 60,
    )  # fmt: skip
    output = result.stdout
    if result.returncode != 0 or "Requests/sec" not in output:
        raise RuntimeError(f"wrk failed: {result.stderr or output}")
    requests_per_second = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))

    def percentile(name):
        match = re.search(rf"^\s+{name}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    return {
        "requests_per_s": round(requests_per_second, 1),
        "p50_ms": round(percentile("50"), 2),
        "p99_ms": round(percentile("99"), 2),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def burst_latencies(url, body, count):
    """``count`` requests released at the same moment, each on its own connection, as boxes do.

    One event loop (non-blocking sockets, as wrk) opens every connection at once and
    timestamps each answer as its last byte arrives: the boxes are other machines, so no
    client thread competes for the GIL or waits for its turn to read the clock.
    :return: (latencies in ms from the release, HTTP statuses, ms taken to open every connection)
    """
    host, port = url.removeprefix("http://").split(":")
    request = (
        f"POST {profile.X509_PATH} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode() + body
    selector = selectors.DefaultSelector()
    released = time.perf_counter()
    for _ in range(count):
        connection = socket.socket()
        connection.setblocking(False)
        connection.connect_ex((host, int(port)))
        selector.register(connection, selectors.EVENT_WRITE, {"answer": b""})
    opened = (time.perf_counter() - released) * 1000
    latencies, statuses = [], []
    deadline = released + 60
    while len(selector.get_map()) and time.perf_counter() < deadline:
        for key, events in selector.select(timeout=1):
            connection, state = key.fileobj, key.data
            if events & selectors.EVENT_WRITE:
                connection.sendall(request)  # a few hundred bytes: the socket buffer takes them at once
                selector.modify(connection, selectors.EVENT_READ, state)
                continue
            chunk = connection.recv(65536)
            if chunk:
                state["answer"] += chunk
                continue
            latencies.append((time.perf_counter() - released) * 1000)
            statuses.append(int(state["answer"].split(b" ", 2)[1]))
            selector.unregister(connection)
            connection.close()
    for key in list(selector.get_map().values()):  # unanswered within 60 s: counted as missing
        key.fileobj.close()
    selector.close()
    return latencies, statuses, opened


def request_body(csr_pem=None, db_uuid=UUID, code=CODE):
    params = {"db_uuid": db_uuid, "enterprise_code": code}
    if csr_pem:
        params["csr_pem"] = csr_pem
    return json.dumps({"params": params}).encode()


# === 4. THE ODOO ENDPOINT ===


def bench_odoo(seconds, csr_pem, work, report):
    sys.path.insert(0, str(ROOT / "tests_standalone"))
    from conftest import find_odoo

    from benchmark.odoo_harness import DB, OdooServer, PrivatePostgres

    found = find_odoo()
    if found is None:
        report["odoo"] = "not measured: Odoo 17 is not installed"
        print("\n4. Odoo endpoint: not measured (Odoo 17 is not installed)")
        return
    (work / "odoo").mkdir(exist_ok=True)
    pg = PrivatePostgres()
    server = OdooServer(*found, pg, work / "odoo")
    try:
        server.install()
        server.start()
        server.set_param("iot_https.zone", ZONE)
        server.set_param("iot_https.public_url", PUBLIC_URL)
        server.set_param("iot_https.uuid_rate_limit", "1000000/1")
        server.set_param("iot_https.client_rate_limit", "1000000/1")
        product = server.rpc("product.product", "create", {"name": "IoT Box", "iot_box_subscription": True})
        results = {}
        for total in (1_000, 100_000):
            populate(pg, DB, total, product)
            target = f"bench-db-{total // 2:06d}"  # one in the middle of the table
            body = request_body(csr_pem, db_uuid=target, code=f"BENCH-{total // 2:06d}")
            check = requests.post(
                server.url + profile.X509_PATH, data=body, headers={"Content-Type": "application/json"}, timeout=60
            )
            assert check.status_code == 200 and check.json()["result"], check.text[:300]
            results[total] = wrk(server.url, body, 8, seconds, work)
            print(f"   {total:>7,} databases: {fmt_wrk(results[total])}")
        plan = pg.psql(
            "EXPLAIN ANALYZE SELECT id FROM iot_database WHERE uuid = 'bench-db-050000' ORDER BY name, id LIMIT 1",
            DB,
        )
        ratio = results[100_000]["p50_ms"] / results[1_000]["p50_ms"]
        report["odoo"] = {
            "workers": 2,
            "connections": 8,
            "mode": "csr",
            "1k": results[1_000],
            "100k": results[100_000],
            "latency_ratio_100k_over_1k_p50": round(ratio, 3),
            "eligibility_lookup_plan": plan.splitlines(),
        }
        print("   eligibility lookup at 100,000 databases:")
        for line in plan.splitlines():
            print("     " + line)
        print(f"   p50 latency 100k/1k: {ratio:.2f}")
    finally:
        server.stop()
        pg.destroy()


def populate(pg, db, total, product_id):
    """``total`` eligible databases, each with its own In Progress subscription and IoT box line (SQL: fast)."""
    start = int(pg.psql("SELECT count(*) FROM iot_database", db))
    if start >= total:
        return
    pg.psql(
        f"""
        INSERT INTO iot_subscription (code, state, has_iot_box_line, company_id, create_date, write_date)
            SELECT 'BENCH-' || lpad(n::text, 6, '0'), 'in_progress', true, 1, now(), now()
            FROM generate_series({start}, {total - 1}) AS n;
        INSERT INTO iot_subscription_line (subscription_id, product_id, quantity, is_iot_box)
            SELECT s.id, {int(product_id)}, 1, true FROM iot_subscription s
            WHERE s.code LIKE 'BENCH-%'
              AND NOT EXISTS (SELECT 1 FROM iot_subscription_line l WHERE l.subscription_id = s.id);
        INSERT INTO iot_database
            (name, uuid, database_type, subscription_id, company_id, eligible, create_date, write_date)
            SELECT 'bench ' || s.code, 'bench-db-' || substr(s.code, 7), 'production', s.id, 1, true, now(), now()
            FROM iot_subscription s
            WHERE s.code LIKE 'BENCH-%' AND NOT EXISTS (SELECT 1 FROM iot_database d WHERE d.subscription_id = s.id);
        ANALYZE iot_database; ANALYZE iot_subscription;
        """,
        db,
    )


# === REPORT ===


def fmt_wrk(result):
    extra = f", {result['non_2xx']} non-2xx" if result["non_2xx"] else ""
    extra += f", socket errors: {result['socket_errors']}" if result["socket_errors"] else ""
    return (
        f"{result['requests_per_s']:>8.1f} req/s  p50 {result['p50_ms']:>7.2f} ms  "
        f"p99 {result['p99_ms']:>7.2f} ms{extra}"
    )


SECTIONS = ("core", "http", "memory", "odoo")


def bench_core(args, authority, csr_pem, report):
    print("1-2. issuances per second, one core: the limit (cryptography alone) and the core")
    report["limit"], report["core"], report["core_over_limit"] = {}, {}, {}
    for mode in MODES:
        key_type = "p256" if mode == "legacy-p256" else "rsa2048"
        issuer = service.IssuanceService(authority, profile.ProfileSettings(ZONE, PUBLIC_URL, legacy_key_type=key_type))
        seconds = args.seconds * (2 if mode == "legacy-rsa2048" else 1)  # RSA key generation varies a lot
        limit = rate(limit_step(mode, authority, csr_pem), seconds)
        core = rate(core_step(mode, issuer, csr_pem), seconds)
        report["limit"][mode], report["core"][mode] = round(limit, 1), round(core, 1)
        report["core_over_limit"][mode] = round(core / limit, 3)
        print(f"   {mode:<15} limit {limit:>9.1f}/s   core {core:>9.1f}/s   core/limit {core / limit:6.1%}")


def bench_http(args, work, csr_pem, report):
    print("\n3. mock issuer over HTTP (serve --workers 2; wrk in another process)")
    issuer = MockIssuer(work)
    report["http"] = {}
    try:
        bodies = {"csr": request_body(csr_pem), "legacy": request_body()}
        for mode, body in bodies.items():
            for connections in (1, 8, 32):
                result = wrk(issuer.url, body, connections, args.seconds, work)
                report["http"][f"{mode}-{connections}"] = result
                print(f"   {mode:<6} {connections:>2} connections: {fmt_wrk(result)}")
        # A burst of 20 stock boxes (legacy RSA-2048) once the key pools are full again.
        deadline = time.monotonic() + 60
        time.sleep(1)
        while time.monotonic() < deadline and _pool_refilling(issuer):
            time.sleep(0.5)
        latencies, statuses, opened = burst_latencies(issuer.url, bodies["legacy"], 20)
        report["legacy_burst_20"] = {
            "median_ms": round(statistics.median(latencies), 1),
            "max_ms": round(max(latencies), 1),
            "answered": len(latencies),
            "statuses": sorted(set(statuses)),
            "connections_opened_in_ms": round(opened, 2),
        }
        print(f"   burst of 20 legacy RSA-2048 requests at once: median {statistics.median(latencies):.1f} ms, "
              f"max {max(latencies):.1f} ms ({len(latencies)} answered, statuses {sorted(set(statuses))})")  # fmt: skip
    finally:
        issuer.stop()


def bench_memory(args, work, csr_pem, report):
    print(f"\n5. mock issuer resident memory across {args.issuances:,} issuances (CSR mode)")
    (work / "memory").mkdir()
    issuer = MockIssuer(work / "memory", key_pool=0, workers=1)  # one process: its RSS is the issuer's
    try:
        session = requests.Session()
        body = request_body(csr_pem)

        def post():
            session.post(
                issuer.url + profile.X509_PATH, data=body, headers={"Content-Type": "application/json"}, timeout=60
            )

        # Warm-up: SQLite's page caches, the log's index (the log starts over every ~800
        # issuances) and Python's allocator reach their working size, in about 3,000 issuances.
        for _ in range(max(200, args.issuances // 2)):
            post()
        before = issuer.rss_kib()
        for _ in range(args.issuances):
            post()
        after = issuer.rss_kib()
        report["memory_kib"] = {"after_warm_up": before, "after_issuances": after, "growth": after - before,
                                "issuances": args.issuances}  # fmt: skip
        print(f"   after warm-up {before:,} KiB, after {args.issuances:,} more issuances {after:,} KiB "
              f"({after - before:+,} KiB)")  # fmt: skip
    finally:
        issuer.stop()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each measurement (default 5)")
    parser.add_argument("--issuances", type=int, default=10_000, help="issuances of the memory run (default 10000)")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"sections to run, of {','.join(SECTIONS)}")
    parser.add_argument("--quick", action="store_true", help="1 s measurements, 500 issuances, no Odoo: a smoke run")
    args = parser.parse_args(argv)
    sections = set(args.only.split(","))
    if not sections <= set(SECTIONS):
        parser.error(f"--only takes sections among {', '.join(SECTIONS)}")
    if args.quick:
        args.seconds, args.issuances = 1.0, 500
        sections.discard("odoo")
    if sections & {"http", "memory", "odoo"} and not shutil.which("wrk"):
        parser.error("wrk is not installed: apt-get install wrk (tools/bench.sh does it)")

    import cryptography

    work = Path(tempfile.mkdtemp(prefix="iot-https-bench-"))
    report = {
        "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0], "cryptography": cryptography.__version__},
        "seconds": args.seconds,
    }
    authority = ca_module.CertificateAuthority.load_or_create(work / "ca")
    csr_pem = keys.make_csr(ec.generate_private_key(ec.SECP256R1())).public_bytes(serialization.Encoding.PEM).decode()
    print(f"iot_https benchmark: {os.cpu_count()} CPUs, Python {report['machine']['python']}, "
          f"cryptography {cryptography.__version__}, {args.seconds:g} s per measurement\n")  # fmt: skip
    try:
        if "core" in sections:
            bench_core(args, authority, csr_pem, report)
        if "http" in sections:
            bench_http(args, work, csr_pem, report)
        if "memory" in sections:
            bench_memory(args, work, csr_pem, report)
        if "odoo" in sections:
            print("\n4. Odoo endpoint, 2 workers, CSR mode, 8 connections")
            bench_odoo(args.seconds, csr_pem, work, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print("\nratios")
    for mode in report.get("core_over_limit", {}):
        print(f"   core/limit {mode:<15} {report['core_over_limit'][mode]:6.1%}")
    if "core" in report and "http" in report:
        report["http_over_core_csr"] = round(report["http"]["csr-32"]["requests_per_s"] / report["core"]["csr"], 3)
        print(f"   HTTP/core (CSR, 32 connections, 2 workers) {report['http_over_core_csr']:6.1%}")
    if isinstance(report.get("odoo"), dict):
        print(f"   Odoo 100k/1k p50 latency        {report['odoo']['latency_ratio_100k_over_1k_p50']:.2f}")
    REPORT.parent.mkdir(exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2))
    print(f"\nwritten to {REPORT.relative_to(ROOT)}")
    return 0


def _pool_refilling(issuer):
    """The pools have no gauge over HTTP: their refill shows as CPU time of the issuer's processes."""

    def tree(pid):
        pids = [pid]
        for task in Path(f"/proc/{pid}/task").iterdir():
            for child in (task / "children").read_text().split():
                pids.extend(tree(int(child)))
        return pids

    def cpu():
        total = 0
        for pid in tree(issuer.process.pid):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total

    first = cpu()
    time.sleep(0.5)
    return cpu() - first > 5  # more than 50 ms of CPU in 0.5 s: still making keys


if __name__ == "__main__":
    sys.exit(main())
