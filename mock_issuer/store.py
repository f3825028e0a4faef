"""The mock issuer's storage: settings in JSON, registry in SQLite, CA in a folder.

SQLite (WAL) lets ``register`` run while ``serve`` answers: the next request
sees the change, with no restart.
"""

import datetime
import fcntl
import json
import logging
import os
import queue
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from iot_pki import keys, profile, ratelimit
from iot_pki.eligibility import DatabaseFacts, revokes_certificates
from iot_pki.service import IssuerStore

_logger = logging.getLogger("mock_issuer")

SETTINGS_FILE = "settings.json"
REGISTRY_FILE = "issuer.sqlite3"
CA_DIR = "ca"
# Seconds a request waits for a locked registry before the server answers 503.
BUSY_TIMEOUT = 5
WRITE_LOCK_SPIN = 0.002  # seconds a writer retries the writers' lock before it sleeps on it
CHECKPOINT_BYTES = 16 * 1024 * 1024  # a checkpoint costs two disk syncs (~10 ms here): rarely
PASSPHRASE_ENV = "IOT_HTTPS_CA_PASSPHRASE"  # noqa: S105 - the variable's name, not a secret

SCHEMA = """
CREATE TABLE IF NOT EXISTS databases (
    uuid TEXT PRIMARY KEY,
    enterprise_code TEXT NOT NULL,
    database_type TEXT NOT NULL,
    subscription_state TEXT NOT NULL,
    has_iot_box_line INTEGER NOT NULL,
    updated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE IF NOT EXISTS certificates (
    serial TEXT PRIMARY KEY,          -- hex: serials exceed SQLite's 64-bit integers
    db_uuid TEXT NOT NULL,
    subject_cn TEXT NOT NULL,
    not_before TEXT NOT NULL,
    not_after TEXT NOT NULL,
    mode TEXT NOT NULL,
    state TEXT NOT NULL,              -- reserved, valid, revoked
    fingerprint TEXT,
    revoked_at TEXT
);
CREATE INDEX IF NOT EXISTS certificates_db_uuid ON certificates (db_uuid);
CREATE TABLE IF NOT EXISTS rate_buckets (
    key TEXT PRIMARY KEY,             -- "uuid:<db_uuid>" or "client:<address>"
    tokens REAL NOT NULL,
    updated REAL NOT NULL             -- seconds since the epoch
);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
    client TEXT,
    db_uuid TEXT,
    mode TEXT,
    decision TEXT NOT NULL,
    detail TEXT
);
"""


class SetupError(Exception):
    """The data folder is not usable; the message says what to run."""


@dataclass(frozen=True)
class IssuerSettings:
    """settings.json: the certificate profile and the failed-attempt limits."""

    profile: profile.ProfileSettings
    uuid_limit: ratelimit.Limit = ratelimit.DEFAULT_UUID_LIMIT
    client_limit: ratelimit.Limit = ratelimit.DEFAULT_CLIENT_LIMIT

    def to_json(self):
        return {
            "zone": self.profile.zone,
            "public_url": self.profile.public_url,
            "validity_days": self.profile.validity_days,
            "legacy_key_type": self.profile.legacy_key_type,
            "uuid_rate_limit": f"{self.uuid_limit.burst}/{self.uuid_limit.period:g}",
            "client_rate_limit": f"{self.client_limit.burst}/{self.client_limit.period:g}",
        }

    @classmethod
    def from_json(cls, raw):
        raw = dict(raw)
        uuid_limit = ratelimit.Limit.parse(raw.pop("uuid_rate_limit", "10/60"))
        client_limit = ratelimit.Limit.parse(raw.pop("client_rate_limit", "30/10"))
        return cls(profile.ProfileSettings(**raw), uuid_limit, client_limit)


def load_settings(data_dir):
    path = Path(data_dir) / SETTINGS_FILE
    if not path.exists():
        raise SetupError(f"{data_dir} is not initialized: run `python -m mock_issuer --data {data_dir} init` first")
    try:
        return IssuerSettings.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError) as exc:
        raise SetupError(f"{path} is not valid: {exc}") from None


def write_settings(data_dir, settings):
    """Write settings.json once; an existing file is never changed."""
    path = Path(data_dir) / SETTINGS_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w") as handle:
        json.dump(settings.to_json(), handle, indent=2)


def passphrase():
    return os.environ.get(PASSPHRASE_ENV) or None


class Registry(IssuerStore):
    """The SQLite registry: databases, certificates, requests.

    Connections are pooled (threads of the server may write too). Writers of
    this process queue on a lock and processes on an flock, so the next writer
    goes as soon as the previous one commits instead of polling SQLite's busy
    handler; ``register`` while serving is waited for up to BUSY_TIMEOUT. Reads
    take no lock (WAL). The log is checkpointed by the registry, after a write,
    outside the writers' lock (``_checkpoint_if_due``).
    """

    def __init__(self, data_dir):
        self.path = Path(data_dir) / REGISTRY_FILE
        self._wal_path = self.path.with_name(REGISTRY_FILE + "-wal")
        self._pool = queue.LifoQueue()
        self._write_lock = threading.Lock()  # this process's writers
        # Other processes' writers (workers, `register`): an flock wakes the next at once,
        # where SQLite's busy handler would poll.
        self._lock_file = open(self.path.with_name(".registry.lock"), "a")
        self._checkpoint_lock_file = open(self.path.with_name(".checkpoint.lock"), "a")
        self._pending = threading.local()  # a certificate completion waiting for its request's record
        connection = self._open()
        connection.executescript(SCHEMA)
        self._pool.put(connection)

    def _open(self):
        connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute("PRAGMA cache_size=-1024")  # KiB per connection: memory stays bounded
        # Checkpoints are run by _checkpoint_if_due, after the writers' lock is released: SQLite's
        # own run inside the committing write, and its disk sync held up every other writer.
        connection.execute("PRAGMA wal_autocheckpoint=0")
        # The log is cut back when it starts over, so its size tells what is left to checkpoint.
        connection.execute("PRAGMA journal_size_limit=0")
        return connection

    def _checkpoint_if_due(self, connection):
        """Copy the write-ahead log into the database once it passes CHECKPOINT_BYTES (PASSIVE:
        other writers go on meanwhile; the next write starts the log over)."""
        try:
            if self._wal_path.stat().st_size < CHECKPOINT_BYTES:
                return
        except OSError:  # no log yet
            return
        try:
            # One checkpoint at a time, across workers: the others go on answering.
            fcntl.flock(self._checkpoint_lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # the next write tries again; this one is recorded
            _logger.warning("registry checkpoint failed: %s", exc)
        finally:
            fcntl.flock(self._checkpoint_lock_file, fcntl.LOCK_UN)

    def _lock_writers(self):
        """Take the writers' flock. A write holds it for tens of microseconds: a worker that
        finds it taken tries again for up to WRITE_LOCK_SPIN before sleeping, because a sleeping
        worker wakes late (up to milliseconds on a virtual machine) and meanwhile the holder,
        answering its next request, takes it again."""
        deadline = time.perf_counter() + WRITE_LOCK_SPIN
        while time.perf_counter() < deadline:
            try:
                fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                continue
        fcntl.flock(self._lock_file, fcntl.LOCK_EX)

    @contextmanager
    def _connect(self, write=True):
        """A pooled connection in a transaction: BEGIN IMMEDIATE for writes, a plain read otherwise."""
        try:
            connection = self._pool.get_nowait()
        except queue.Empty:
            connection = self._open()
        try:
            if write:
                with self._write_lock:
                    self._lock_writers()
                    try:
                        with _Transaction(connection, "BEGIN IMMEDIATE"):
                            yield connection
                    finally:
                        fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._checkpoint_if_due(connection)
            else:
                with _Transaction(connection, "BEGIN"):
                    yield connection
        finally:
            self._pool.put(connection)

    # === DATABASES ===

    def register_database(self, facts):
        """Add or update a database; revoke its certificates when it is no longer entitled to them.

        :return: the number of certificates revoked
        """
        with self._connect() as connection:
            connection.execute(
                """INSERT INTO databases (uuid, enterprise_code, database_type, subscription_state, has_iot_box_line)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (uuid) DO UPDATE SET enterprise_code = excluded.enterprise_code,
                       database_type = excluded.database_type, subscription_state = excluded.subscription_state,
                       has_iot_box_line = excluded.has_iot_box_line, updated_at = CURRENT_TIMESTAMP""",
                (
                    facts.uuid,
                    facts.enterprise_code,
                    facts.database_type,
                    facts.subscription_state,
                    int(facts.has_iot_box_line),
                ),
            )
            if not revokes_certificates(facts):
                return 0
            cursor = connection.execute(
                "UPDATE certificates SET state = 'revoked', revoked_at = ? WHERE db_uuid = ? AND state = 'valid'",
                (keys.utcnow().isoformat(), facts.uuid),
            )
            return cursor.rowcount

    def find_database(self, db_uuid):
        with self._connect(write=False) as connection:
            row = connection.execute(
                "SELECT uuid, enterprise_code, database_type, subscription_state, has_iot_box_line"
                " FROM databases WHERE uuid = ?",
                (db_uuid,),
            ).fetchone()
        if row is None:
            return None
        return DatabaseFacts(row[0], row[1], row[2], row[3], bool(row[4]))

    # === CERTIFICATES ===

    def reserve_certificate(self, facts, template, mode):
        try:
            with self._connect() as connection:
                connection.execute(
                    "INSERT INTO certificates (serial, db_uuid, subject_cn, not_before, not_after, mode, state)"
                    " VALUES (?, ?, ?, ?, ?, ?, 'reserved')",
                    (
                        f"{template.serial:x}",
                        facts.uuid,
                        template.subject_cn,
                        template.not_before.isoformat(),
                        template.not_after.isoformat(),
                        mode,
                    ),
                )
        except sqlite3.IntegrityError:
            return False
        return True

    def complete_certificate(self, template, certificate):
        # Written with the request's log row, in one transaction, before the answer
        # leaves (record_request): one write less per issuance.
        self._pending.completion = (keys.fingerprint_sha256(certificate), f"{template.serial:x}")

    def discard_certificate(self, template):
        with self._connect() as connection:
            connection.execute(
                "DELETE FROM certificates WHERE serial = ? AND state = 'reserved'", (f"{template.serial:x}",)
            )

    def revoke(self, serial_hex):
        """Revoke a valid certificate. :return: True when one was revoked"""
        with self._connect() as connection:
            cursor = connection.execute(
                "UPDATE certificates SET state = 'revoked', revoked_at = ? WHERE serial = ? AND state = 'valid'",
                (keys.utcnow().isoformat(), serial_hex.lower().lstrip("0") or "0"),
            )
        return cursor.rowcount == 1

    def revoked(self):
        """(serial, revocation time) of every revoked certificate still within its validity."""
        with self._connect(write=False) as connection:
            rows = connection.execute(
                "SELECT serial, revoked_at FROM certificates WHERE state = 'revoked' AND not_after > ?",
                (keys.utcnow().isoformat(),),
            ).fetchall()
        return [(int(serial, 16), datetime.datetime.fromisoformat(at)) for serial, at in rows]

    def certificates(self):
        with self._connect(write=False) as connection:
            return connection.execute(
                "SELECT serial, db_uuid, subject_cn, not_before, not_after, mode, state, fingerprint"
                " FROM certificates ORDER BY not_before"
            ).fetchall()

    # === RATE LIMITS ===

    def rate_limit_wait(self, limits, now):
        with self._connect(write=False) as connection:
            waits = [ratelimit.retry_after(self._bucket(connection, key), limit, now) for key, limit in limits]
        return max(waits, default=0)

    def record_failure(self, limits, now):
        # BEGIN IMMEDIATE: one writer at a time, across threads and processes.
        with self._connect() as connection:
            for key, limit in limits:
                bucket = ratelimit.take(self._bucket(connection, key), limit, now)
                connection.execute(
                    "INSERT INTO rate_buckets (key, tokens, updated) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated = excluded.updated",
                    (key, bucket.tokens, bucket.updated),
                )
            # Buckets untouched for longer than any refill are full: drop them.
            oldest = now - max(limit.burst * limit.period for _key, limit in limits)
            connection.execute("DELETE FROM rate_buckets WHERE updated < ?", (oldest,))

    @staticmethod
    def _bucket(connection, key):
        row = connection.execute("SELECT tokens, updated FROM rate_buckets WHERE key = ?", (key,)).fetchone()
        return ratelimit.Bucket(*row) if row else None

    # === REQUESTS ===

    def record_request(self, outcome, client):
        """Record a request, and the completion of the certificate it was issued, at once."""
        completion, self._pending.completion = getattr(self._pending, "completion", None), None
        with self._connect() as connection:
            if completion:
                connection.execute(
                    "UPDATE certificates SET state = 'valid', fingerprint = ? WHERE serial = ?", completion
                )
            connection.execute(
                "INSERT INTO requests (client, db_uuid, mode, decision, detail) VALUES (?, ?, ?, ?, ?)",
                (client, outcome.db_uuid or None, outcome.mode or None, outcome.decision, outcome.detail or None),
            )

    def requests(self):
        with self._connect(write=False) as connection:
            return connection.execute(
                "SELECT at, client, db_uuid, mode, decision, detail FROM requests ORDER BY id"
            ).fetchall()


class _Transaction:
    """``with``: BEGIN ... COMMIT, or ROLLBACK on error."""

    def __init__(self, connection, begin):
        self.connection = connection
        self.begin = begin

    def __enter__(self):
        self.connection.execute(self.begin)
        return self.connection

    def __exit__(self, exc_type, exc, tb):
        self.connection.execute("ROLLBACK" if exc_type else "COMMIT")
        return False
