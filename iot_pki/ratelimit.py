"""Token buckets for failed attempts (wrong credentials, malformed requests).

Pure arithmetic over plain state: each issuer keeps the state where all its
processes see it (PostgreSQL for Odoo, SQLite for the mock issuer) and calls
these functions inside its own lock, so limits hold across workers.

Only failures take tokens: boxes with the right credentials are never slowed
by each other (a shop of 50 boxes restarting at once all get certificates),
while guessing an enterprise code costs one token per guess.
"""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """At most ``burst`` failures at once, then one more every ``period`` seconds."""

    burst: int
    period: float

    def __post_init__(self):
        if isinstance(self.burst, bool) or not isinstance(self.burst, int) or self.burst < 1:
            raise ValueError("a rate limit's burst is a whole number of at least 1")
        if not isinstance(self.period, (int, float)) or isinstance(self.period, bool) or self.period <= 0:
            raise ValueError("a rate limit's period is a positive number of seconds")

    @classmethod
    def parse(cls, text):
        """``"10/60"``: a burst of 10, then one every 60 s."""
        try:
            burst, period = str(text).split("/")
            return cls(int(burst), float(period))
        except ValueError:
            raise ValueError(f"invalid rate limit {text!r}: use BURST/SECONDS, e.g. 10/60") from None


# Per database UUID: slows guessing the enterprise code of one database.
DEFAULT_UUID_LIMIT = Limit(10, 60.0)
# Per client address: slows one client spraying UUIDs and codes.
DEFAULT_CLIENT_LIMIT = Limit(30, 10.0)


@dataclass(frozen=True)
class Bucket:
    tokens: float
    updated: float  # seconds since the epoch


def level(bucket, limit, now):
    """Tokens available at ``now`` (a missing bucket is full)."""
    if bucket is None:
        return float(limit.burst)
    elapsed = max(0.0, now - bucket.updated)
    return min(float(limit.burst), bucket.tokens + elapsed / limit.period)


def retry_after(bucket, limit, now):
    """Whole seconds until one token is available; 0 when one is available now."""
    missing = 1.0 - level(bucket, limit, now)
    return 0 if missing <= 0 else max(1, math.ceil(missing * limit.period))


def take(bucket, limit, now):
    """The bucket after one failure (never below zero)."""
    return Bucket(max(0.0, level(bucket, limit, now) - 1.0), now)


def is_idle(bucket, limit, now):
    """A bucket that has refilled is the same as no bucket: its row can be dropped."""
    return level(bucket, limit, now) >= limit.burst
