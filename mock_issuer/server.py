"""The mock issuer's HTTP server: the stock protocol over the core's service.

Standard library only (http.server, selectors, threads): bounded bodies, one
log line per request, clean stop on SIGTERM/SIGINT.

Connections: the accept loop watches each connection until bytes arrive, so a
silent connection holds no thread. A certificate request that is then there
whole (a box's request is one small packet) is answered by the loop itself,
from memory: a burst of boxes is answered in arrival order, where a thread per
connection would share the interpreter lock between all of them and finish
them all late together (on 2 cores, half the burst is answered in about half
the time). Anything else (a request still arriving, another route, TLS) gets a
thread of its own, which keeps its connection.
"""

import contextlib
import io
import logging
import os
import selectors
import signal
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from iot_pki import profile, protocol
from iot_pki.service import IssuanceService, KeyPool

_logger = logging.getLogger("mock_issuer")

GET_ROUTES = {
    profile.ROOT_PATH: "root",
    profile.ISSUING_PATH: "issuing",
    profile.CRL_PATH: "crl",
}


class IssuerHandler(BaseHTTPRequestHandler):
    server_version = "iot_https-mock-issuer"
    protocol_version = "HTTP/1.1"
    timeout = 30  # seconds a client may stay silent: a slow client cannot hold a thread forever
    # Headers and body go out as separate writes: without TCP_NODELAY a kept-alive
    # client waits ~40 ms for a delayed acknowledgement on each answer.
    disable_nagle_algorithm = True

    # === ROUTES ===

    def do_POST(self):
        if self.path.split("?", 1)[0] != profile.X509_PATH:
            return self._not_found()
        body = self._read_body()
        if body is None:
            return None
        client = self.client_address[0]
        try:
            answer, outcome = self.server.service.handle(body, self.server.registry, client)
            self.server.registry.record_request(outcome, client)
        except Exception:
            # Storage failure (disk full, locked database...): the box retries later.
            _logger.exception("x509 request failed")
            answer = protocol.error(503, "unavailable", "the issuer is unavailable, retry later", {"Retry-After": "30"})
            return self._send(answer, "decision=unavailable client=" + client)
        return self._send(answer, "x509 " + outcome.log_line(client))

    def do_GET(self):
        route = GET_ROUTES.get(self.path.split("?", 1)[0])
        if route == "root":
            answer = self.server.service.root_answer()
        elif route == "issuing":
            answer = self.server.service.issuing_answer()
        elif route == "crl":
            answer = self.server.service.crl_answer(self.server.registry.revoked())
        else:
            return self._not_found()
        return self._send(answer, f"GET {self.path} served={route}")

    def _method_not_allowed(self):
        self._drain()
        answer = protocol.error(
            405, "method_not_allowed", f"{self.command} is not allowed here", {"Allow": "GET, POST"}
        )
        self._send(answer, f"{self.command} {self.path} refused=method_not_allowed")

    do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_TRACE = do_CONNECT = _method_not_allowed

    def do_HEAD(self):
        # GET's answer without its body (_send skips the body for HEAD).
        self.do_GET()

    # === PLUMBING ===

    def _not_found(self):
        self._drain()
        answer = protocol.error(404, "not_found", f"nothing at {self.path[:200]}")
        self._send(answer, f"{self.command} {self.path[:200]} refused=not_found")

    def _content_length(self):
        values = self.headers.get_all("Content-Length") or ["0"]
        if len(set(values)) != 1:  # conflicting lengths: a request smuggling attempt, refused
            return None
        try:
            length = int(values[0])
        except ValueError:
            return None
        return length if length >= 0 else None

    def _drain(self):
        """Read a small body so the connection can be reused; drop the connection otherwise."""
        length = self._content_length()
        if length and length <= protocol.MAX_BODY_BYTES:
            self.rfile.read(length)
        elif length:
            self.close_connection = True

    def _read_body(self):
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._send(
                protocol.error(411, "length_required", "send the body with a Content-Length"),
                "x509 refused=length_required",
            )
            return None
        length = self._content_length()
        if length is None:
            self.close_connection = True
            self._send(
                protocol.error(400, "invalid_request", "invalid Content-Length"), "x509 refused=invalid_content_length"
            )
            return None
        if length > protocol.MAX_BODY_BYTES:
            # Refused before reading a byte of it.
            self.close_connection = True
            self._send(
                protocol.error(413, "body_too_large", f"request body larger than {protocol.MAX_BODY_BYTES} bytes"),
                f"x509 refused=body_too_large length={length}",
            )
            return None
        return self.rfile.read(length)

    def _send(self, answer, log_line):
        # Logged before the answer leaves: whoever reads the answer finds its log line.
        _logger.info("%s status=%s", log_line, answer.status)
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        self.send_header("Content-Length", str(len(answer.body)))
        for name, value in answer.headers.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(answer.body)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        # Requests are logged once, with their decision, by _send; keep protocol errors.
        if not args or not str(args[0]).isdigit():
            _logger.info("%s %s", self.client_address[0], format % args)

    def log_request(self, code="-", size="-"):
        pass


class _WholeRequestHandler(IssuerHandler):
    """The fast path's handler: one request, already read whole from the socket, answered from memory."""

    def __init__(self, request_bytes, *args):
        self._request_bytes = request_bytes
        super().__init__(*args)

    def setup(self):
        super().setup()
        self.rfile.close()
        self.rfile = io.BytesIO(self._request_bytes)

    def handle(self):
        self.handle_one_request()  # only this one: the loop watches a kept-alive connection for its next


# A certificate request, the only route worth the fast path: its answer (a few KiB)
# fits in the socket's send buffer, so answering it never waits for the client.
_FAST_PATH_START = f"POST {profile.X509_PATH} ".encode()
_FAST_PATH_MAX = 16 * 1024
_CLOSED = b""
_NOTHING_YET = object()


def _whole_request(connection):
    """What a connection holds: the bytes of one whole certificate request (read from the
    socket), ``_NOTHING_YET``, ``_CLOSED`` when the client closed it, or None for anything else
    (part of a request, more than one, another route, a body without one plain Content-Length):
    a thread reads that."""
    try:
        data = connection.recv(_FAST_PATH_MAX, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return _NOTHING_YET
    except OSError:  # reset by the client
        return _CLOSED
    if not data:
        return _CLOSED
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0 or not data.startswith(_FAST_PATH_START):
        return None
    fields = [line.split(b":", 1) for line in data[:head_end].split(b"\r\n")[1:]]
    names = [field[0].strip().lower() for field in fields]
    lengths = [
        field[1].strip() for field in fields if len(field) == 2 and field[0].strip().lower() == b"content-length"
    ]
    if b"transfer-encoding" in names or len(lengths) != 1 or not lengths[0].isdigit():
        return None
    size = head_end + 4 + int(lengths[0])
    if len(data) != size:
        return None
    return connection.recv(size)  # already received: returns at once, all of it


class IssuerServer(ThreadingHTTPServer):
    """The accept loop also watches accepted connections until their first bytes arrive, so a
    connection costs no thread while it is silent (kept-alive ones between requests too); it
    then answers a whole certificate request itself (the fast path) or hands the connection
    to a thread. A connection silent for longer than ``IssuerHandler.timeout`` is closed."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, service, registry, tls_context=None):
        super().__init__(address, IssuerHandler)
        self.service = service
        self.registry = registry
        self.tls_context = tls_context
        self._stop_serving = threading.Event()
        self._stopped = threading.Event()
        self._stopped.set()
        if hasattr(socket, "TCP_DEFER_ACCEPT"):  # Linux: accept() wakes once the request's first bytes are in
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, IssuerHandler.timeout)

    # === THE LOOP ===

    def serve_forever(self, poll_interval=0.5):
        # The stop flag is cleared on the way out, not here: a shutdown() that comes before
        # the loop starts still stops it (as socketserver does).
        self._stopped.clear()
        silent = {}  # connection -> (client address, monotonic time it was last active)
        next_sweep = time.monotonic() + 1
        try:
            with selectors.DefaultSelector() as selector:
                selector.register(self.socket, selectors.EVENT_READ)
                while not self._stop_serving.is_set():
                    ready = [key.fileobj for key, _events in selector.select(poll_interval)]
                    # Answer before accepting more, one connection a round: a busy worker leaves
                    # the next connections of a burst to an idle one.
                    for connection in ready:
                        if connection is self.socket:
                            continue
                        selector.unregister(connection)
                        client_address, _since = silent.pop(connection)
                        self._answer(selector, silent, connection, client_address)
                    if self.socket in ready:
                        self._accept(selector, silent)
                    if time.monotonic() >= next_sweep:
                        next_sweep = time.monotonic() + 1
                        self._close_silent(selector, silent)
        finally:
            for connection in silent:
                self.shutdown_request(connection)
            self._stop_serving.clear()
            self._stopped.set()

    def shutdown(self):
        self._stop_serving.set()
        self._stopped.wait()

    def _accept(self, selector, silent):
        try:
            connection, client_address = self.socket.accept()
        except OSError:  # another worker took it, or the client is already gone
            return
        if self.tls_context is not None:  # the handshake needs a thread
            self.process_request(connection, client_address)
            return
        # With TCP_DEFER_ACCEPT the request is usually there already: answered at once.
        self._answer(selector, silent, connection, client_address)

    def _answer(self, selector, silent, connection, client_address):
        """Answer what a connection holds, or watch it until it holds something."""
        whole = _whole_request(connection)
        if whole is _NOTHING_YET:
            selector.register(connection, selectors.EVENT_READ)
            silent[connection] = (client_address, time.monotonic())
            return
        if whole is _CLOSED:
            self.shutdown_request(connection)
            return
        if whole is None:
            self.process_request(connection, client_address)  # a thread of its own, as before
            return
        try:
            handler = _WholeRequestHandler(whole, connection, client_address, self)
        except Exception:  # as the threaded path: logged, the connection dropped, the server goes on
            self.handle_error(connection, client_address)
            self.shutdown_request(connection)
            return
        if handler.close_connection:
            self.shutdown_request(connection)
            return
        selector.register(connection, selectors.EVENT_READ)  # kept alive: watched until its next request
        silent[connection] = (client_address, time.monotonic())

    def _close_silent(self, selector, silent):
        too_old = time.monotonic() - IssuerHandler.timeout
        for connection, (client_address, since) in list(silent.items()):
            if since < too_old:
                selector.unregister(connection)
                del silent[connection]
                self.shutdown_request(connection)
                _logger.info("%s closed: silent for %s s", client_address[0], IssuerHandler.timeout)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, never in the accept loop.
        if self.tls_context is not None:
            request.settimeout(30)
            try:
                request = self.tls_context.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                _logger.info("%s TLS handshake failed: %s", client_address[0], exc)
                return
        super().finish_request(request, client_address)


def serve(ca, settings, open_registry, host, port, tls_cert=None, tls_key=None, key_pool=32, workers=1):
    """Serve until SIGTERM or SIGINT.

    :param open_registry: makes the process's ``Registry`` (each worker opens its own after fork)
    :param key_pool: legacy-mode keys made ahead of time, per worker (0: make each on demand)
    :param workers: processes answering on the same socket (Python runs one thread at a time
        per process: two workers use two cores)
    """
    tls_context = None
    if tls_cert:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(tls_cert, tls_key)
    server = IssuerServer((host, port), None, None, tls_context)
    bound_host, bound_port = server.server_address[:2]
    scheme = "https" if tls_context else "http"
    _logger.info("serving %s://%s:%s%s with %s worker(s)", scheme, bound_host, bound_port, profile.X509_PATH, workers)
    if workers <= 1:
        _run_worker(server, ca, settings, open_registry, key_pool)
        _logger.info("stopped")
        return
    children = []
    for _index in range(workers):
        pid = os.fork()
        if pid == 0:  # a worker: serve until told to stop, never return into the parent's code
            code = 1
            try:
                _run_worker(server, ca, settings, open_registry, key_pool)
                code = 0
            finally:
                os._exit(code)
        children.append(pid)
    server.socket.close()  # the workers hold the listening socket
    _wait_for_signal()
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    for pid in children:
        os.waitpid(pid, 0)
    _logger.info("stopped")


def _wait_for_signal():
    stop = threading.Event()

    def request_stop(signum, _frame):
        _logger.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    stop.wait()


def _run_worker(server, ca, settings, open_registry, key_pool):
    key_source = None
    if key_pool > 0:
        key_source = KeyPool(settings.profile.legacy_key_type, key_pool)
        key_source.ready()  # start filling now, not at the first stock box
    server.service = IssuanceService(
        ca,
        settings.profile,
        key_source=key_source,
        uuid_limit=settings.uuid_limit,
        client_limit=settings.client_limit,
    )
    server.registry = open_registry()
    # Workers share the listening socket: all wake on a connection, one accepts it,
    # the others must not block in accept().
    server.socket.setblocking(False)
    # Threads hand the GIL over every 0.5 ms rather than 5 ms: a thread back from
    # SQLite or the socket (often holding the registry's write lock) waits less.
    sys.setswitchinterval(0.0005)
    worker = threading.Thread(target=server.serve_forever, name="mock-issuer", daemon=True)
    worker.start()
    _wait_for_signal()
    server.shutdown()
    server.server_close()
    if key_source is not None:
        key_source.close()
