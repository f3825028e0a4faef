"""The mock issuer's connections: silent ones hold no thread, a request that arrives whole is
answered at once, one that arrives in pieces (or pipelined, or kept alive) is answered as well,
and an idle kept-alive connection is closed after the handler's timeout.

Real server processes (``python -m mock_issuer serve``) and raw sockets on 127.0.0.1.
"""

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import requests
from conftest import PUBLIC_URL, PUBLIC_ZONE, mock_issuer, register

from iot_pki import ca as ca_module
from iot_pki import profile
from iot_pki.service import IssuanceService, KeyGenerator
from mock_issuer import server as server_module
from mock_issuer import store

UUID = "7c1d2e3f-3333-4a5b-8c9d-0e1f2a3b4c5d"
CODE = "M24CONNECT"


def request_bytes(db_uuid=UUID, code=CODE, connection="close"):
    body = json.dumps({"params": {"db_uuid": db_uuid, "enterprise_code": code}}).encode()
    head = (
        f"POST {profile.X509_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: {connection}\r\n\r\n"
    )
    return head.encode() + body


def read_answer(reader):
    """One HTTP answer from ``reader`` (``connection.makefile("rb")``): (status, JSON body).

    A buffered reader, because two answers may arrive in one segment (pipelined requests):
    what follows this answer stays in the buffer for the next call."""
    status_line = reader.readline()
    assert status_line, "connection closed before an answer"
    length = None
    while (line := reader.readline()) not in (b"\r\n", b""):
        name, _sep, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    assert length is not None, f"no Content-Length in the answer to {status_line!r}"
    body = reader.read(length)
    assert len(body) == length, "connection closed in the middle of an answer"
    return int(status_line.split(b" ", 2)[1]), json.loads(body)


def threads_of(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError(f"no thread count for {pid}")


def issued(answer):
    status, payload = answer
    return status == 200 and bool(payload["result"] and payload["result"]["x509_pem"])


@pytest.fixture
def box_issuer(tmp_path, start_issuer):
    """One worker (its threads are the server's), no key pool, failures not throttled."""
    data_dir = tmp_path / "issuer"
    limits = ("--uuid-rate-limit", "100000/1", "--client-rate-limit", "100000/1")
    result = mock_issuer(data_dir, "init", "--zone", PUBLIC_ZONE, "--public-url", PUBLIC_URL, *limits)
    assert result.returncode == 0, result.stderr
    register(data_dir, UUID, CODE)
    return start_issuer(data_dir, "--key-pool", "0")


def test_request_arriving_whole_is_answered(box_issuer):
    with socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30) as connection:
        connection.sendall(request_bytes())
        assert issued(read_answer(connection.makefile("rb")))
        assert connection.recv(1) == b"", "Connection: close is honoured"


def test_request_arriving_in_pieces_is_answered(box_issuer):
    whole = request_bytes()
    with socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30) as connection:
        for piece in (whole[:10], whole[10:60], whole[60:-5], whole[-5:]):
            connection.sendall(piece)
            time.sleep(0.2)  # each piece arrives alone
        assert issued(read_answer(connection.makefile("rb")))


def test_kept_alive_connection_answers_each_request(box_issuer):
    payload = {"params": {"db_uuid": UUID, "enterprise_code": CODE}}
    with requests.Session() as session:
        answers = [session.post(box_issuer.url + profile.X509_PATH, json=payload, timeout=30) for _ in range(3)]
    assert [answer.status_code for answer in answers] == [200, 200, 200]
    serials = {answer.json()["result"]["x509_pem"] for answer in answers}
    assert len(serials) == 3
    requests_logged = [line for line in box_issuer.log().splitlines() if " x509 " in line and "decision=issued" in line]
    assert len(requests_logged) == 3, box_issuer.log()


def test_pipelined_requests_are_both_answered(box_issuer):
    with socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30) as connection:
        connection.sendall(request_bytes(connection="keep-alive") + request_bytes(code="WRONG", connection="close"))
        reader = connection.makefile("rb")
        first, second = read_answer(reader), read_answer(reader)
    assert issued(first)
    assert second[0] == 200 and second[1]["result"] is False, second  # the wrong code: refused, not lost


def test_silent_connections_hold_no_thread(box_issuer):
    """A hundred connections that say nothing and a hundred idle kept-alive ones: the server
    keeps its few threads, and a box is still answered at once."""
    pid = box_issuer.process.pid
    with socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30) as warm:
        warm.sendall(request_bytes())
        assert issued(read_answer(warm.makefile("rb")))
    before = threads_of(pid)
    silent, idle = [], []
    try:
        for _ in range(100):
            silent.append(socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30))
        for _ in range(100):
            connection = socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30)
            connection.sendall(request_bytes(code="WRONG", connection="keep-alive"))
            status, payload = read_answer(connection.makefile("rb"))
            assert (status, payload["result"]) == (200, False)
            idle.append(connection)
        assert threads_of(pid) <= before + 1, f"{threads_of(pid)} threads, {before} before"
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", box_issuer.port), timeout=30) as box:
            box.sendall(request_bytes())
            assert issued(read_answer(box.makefile("rb")))
        assert time.monotonic() - started < 5
    finally:
        for connection in silent + idle:
            connection.close()


def in_process_server(data_dir):
    """The issuer's server in this process (its module's settings can be patched), not started."""
    settings = store.load_settings(data_dir)
    authority = ca_module.CertificateAuthority.load(data_dir / store.CA_DIR, store.passphrase())
    service = IssuanceService(authority, settings.profile, key_source=KeyGenerator())
    return server_module.IssuerServer(("127.0.0.1", 0), service, store.Registry(data_dir))


def test_shutdown_before_the_loop_starts_still_stops_it(issuer_data):
    server = in_process_server(issuer_data)
    try:
        server.shutdown()  # e.g. a signal right after the worker was forked
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        thread.join(5)
        assert not thread.is_alive(), "the loop ran on after shutdown()"
    finally:
        server.server_close()


def test_idle_kept_alive_connection_is_closed_after_the_timeout(issuer_data, monkeypatch):
    register(issuer_data, UUID, CODE)
    monkeypatch.setattr(server_module.IssuerHandler, "timeout", 1)
    server = in_process_server(issuer_data)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as connection:
            connection.sendall(request_bytes(connection="keep-alive"))
            assert issued(read_answer(connection.makefile("rb")))
            started = time.monotonic()
            assert connection.recv(1) == b"", "the server closes the idle connection"
            assert 0.5 < time.monotonic() - started < 5
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert not thread.is_alive()


def test_write_ahead_log_stays_bounded_under_writes(issuer_data, monkeypatch):
    """The registry checkpoints its log itself once it passes CHECKPOINT_BYTES (SQLite's own
    checkpoint is off): the log starts over instead of growing with every request."""
    monkeypatch.setattr(store, "CHECKPOINT_BYTES", 256 * 1024)
    registry = store.Registry(issuer_data)
    wal = issuer_data / (store.REGISTRY_FILE + "-wal")
    largest = 0
    for index in range(1500):
        registry.register_database(
            store.DatabaseFacts(f"db-{index:05d}", f"CODE{index}", "production", "in_progress", True)
        )
        largest = max(largest, wal.stat().st_size)
    assert largest < 2 * store.CHECKPOINT_BYTES, f"the log grew to {largest} bytes"
    assert registry.find_database("db-01499").enterprise_code == "CODE1499"
