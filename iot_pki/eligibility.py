"""The eligibility rule, as a pure function over plain data.

A database gets a certificate when it is a production database whose
subscription is In Progress and has at least one IoT box line. Every other
case is a refusal with a reason code from ``codes.REFUSALS``.
"""

import hmac
from dataclasses import dataclass

from . import codes

DATABASE_TYPES = (
    ("production", "Production"),
    ("staging", "Staging"),
    ("development", "Development"),
    ("duplicate", "Duplicate"),
)
SUBSCRIPTION_STATES = (
    ("draft", "Draft"),
    ("in_progress", "In Progress"),
    ("paused", "Paused"),
    ("closed", "Closed"),
)
DATABASE_TYPE_KEYS = tuple(key for key, _label in DATABASE_TYPES)
SUBSCRIPTION_STATE_KEYS = tuple(key for key, _label in SUBSCRIPTION_STATES)


@dataclass(frozen=True)
class DatabaseFacts:
    """What the issuer knows of a registered database."""

    uuid: str
    enterprise_code: str  # the code of its subscription; "" when it has none
    database_type: str
    subscription_state: str = ""  # "" when the database has no subscription
    has_iot_box_line: bool = False


@dataclass(frozen=True)
class Decision:
    eligible: bool
    reason: str = ""  # a key of codes.REFUSALS when not eligible

    @property
    def message(self):
        return codes.REFUSALS[self.reason].meaning if self.reason else "eligible"


ELIGIBLE = Decision(True)


def credentials_match(facts, enterprise_code):
    """True when ``facts`` is a known database and the code is its subscription's.

    The comparison takes the same time whatever the codes, and an unknown
    database costs the same comparison as a known one.
    """
    expected = facts.enterprise_code if facts is not None else ""
    same = hmac.compare_digest(expected.encode("utf-8"), enterprise_code.encode("utf-8"))
    return facts is not None and bool(expected) and same


def evaluate(facts):
    """Decide whether a database may get a certificate.

    :param facts: the database's ``DatabaseFacts`` (credentials already checked)
    :return: a ``Decision``
    """
    if facts.database_type != "production":
        return Decision(False, codes.NOT_PRODUCTION)
    if not facts.subscription_state:
        return Decision(False, codes.NO_SUBSCRIPTION)
    if facts.subscription_state != "in_progress":
        return Decision(False, codes.SUBSCRIPTION_NOT_IN_PROGRESS)
    if not facts.has_iot_box_line:
        return Decision(False, codes.NO_IOT_BOX_LINE)
    return ELIGIBLE


def revokes_certificates(facts):
    """True when the database's valid certificates must be revoked.

    Closing the subscription or leaving production ends the right to the
    certificates already issued. A paused subscription keeps them: it resumes.
    """
    return facts.database_type != "production" or facts.subscription_state == "closed"
