from contextlib import contextmanager

from odoo import fields, models

from ..iot_pki import ratelimit


class IotRateBucket(models.Model):
    """Failed-attempt token buckets, shared by every worker and server of the database.

    No access rights: only the issuer touches them, as superuser, in its own
    short READ COMMITTED transactions (a burst of failures on one bucket
    queues on its row lock instead of failing with serialization errors).
    """

    _name = "iot.rate.bucket"
    _description = "IoT Rate Limit Bucket"
    _log_access = False

    key = fields.Char(required=True, index=True)
    tokens = fields.Float(required=True)
    updated = fields.Float(required=True, help="Seconds since the epoch.")

    _sql_constraints = [("key_unique", "UNIQUE(key)", "One bucket per key.")]

    @contextmanager
    def _bucket_cursor(self):
        if self.env.registry.in_test_mode():
            # Tests share one transaction: no separate connection there.
            yield self.env.cr
            return
        with self.env.registry.cursor() as cr:
            cr.execute("SET TRANSACTION ISOLATION LEVEL READ COMMITTED")
            yield cr

    def _load_bucket(self, cr, key, lock=False):
        if lock:
            cr.execute("SELECT tokens, updated FROM iot_rate_bucket WHERE key = %s FOR UPDATE", (key,))
        else:
            cr.execute("SELECT tokens, updated FROM iot_rate_bucket WHERE key = %s", (key,))
        row = cr.fetchone()
        return ratelimit.Bucket(*row) if row else None

    def _wait_seconds(self, limits, now):
        """Seconds until every bucket of ``limits`` allows an attempt."""
        with self._bucket_cursor() as cr:
            return max(
                (ratelimit.retry_after(self._load_bucket(cr, key), limit, now) for key, limit in limits), default=0
            )

    def _record_failure(self, limits, now):
        """One token less in each bucket, committed at once (a failure counts even if the request fails later)."""
        with self._bucket_cursor() as cr:
            for key, limit in sorted(limits, key=lambda pair: pair[0]):  # one lock order: no deadlock
                cr.execute(
                    "INSERT INTO iot_rate_bucket (key, tokens, updated) VALUES (%s, %s, %s)"
                    " ON CONFLICT (key) DO NOTHING",
                    (key, float(limit.burst), now),
                )
                bucket = ratelimit.take(self._load_bucket(cr, key, lock=True), limit, now)
                cr.execute(
                    "UPDATE iot_rate_bucket SET tokens = %s, updated = %s WHERE key = %s",
                    (bucket.tokens, bucket.updated, key),
                )
            # Buckets untouched for longer than any refill are full again: drop them.
            oldest = now - max(limit.burst * limit.period for _key, limit in limits)
            cr.execute("DELETE FROM iot_rate_bucket WHERE updated < %s", (oldest,))
