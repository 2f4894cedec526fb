"""What crosses the trust boundary: one set of checked types for every intake path.

The HR webhook and the admin API (and the CLI through it) take people, emails, event ids and
times through these types, so a value that could not be addressed later (an id with a slash,
an email with a stray space, a 2,000-character id that overflows a workflow id) is refused
with a 422 naming the field before anything is written or started.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BeforeValidator, EmailStr, StringConstraints

# Person ids become workflow ids (``offboard-<id>``) and URL path segments
# (``/people/{id}/audit``): letters, digits and ``. _ @ + -``, starting with a letter or digit
# (no ``/``, no ``..`` prefix, no spaces). An email fits, so unknown people keep theirs as id.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"
MAX_ID_LENGTH = 128
MAX_EVENT_ID_LENGTH = 200
# RFC 5321's limit on a forward path.
MAX_EMAIL_LENGTH = 254
MAX_TEXT_LENGTH = 2000


def _strip(value: object) -> object:
    return value.strip() if isinstance(value, str) else value


PersonId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_ID_LENGTH, pattern=ID_PATTERN
    ),
]
EventId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_EVENT_ID_LENGTH, pattern=ID_PATTERN
    ),
]
# Trimmed, validated (RFC 5322 syntax, a public-looking domain), then lower-cased: accounts are
# matched by email, so " Dana@Example.com " and "dana@example.com" must be the same person.
Email = Annotated[
    EmailStr,
    BeforeValidator(_strip),
    StringConstraints(max_length=MAX_EMAIL_LENGTH),
    AfterValidator(str.lower),
]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_LENGTH)]
# Times are stored and compared in UTC; a year at the calendar's edge would overflow there.
MIN_YEAR, MAX_YEAR = 1900, 9998


def _within_calendar(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"the year must be between {MIN_YEAR} and {MAX_YEAR}")
    return value


_NUMERIC = re.compile(r"\s*[+-]?\d+(\.\d*)?\s*")
_BASIC_DATE = re.compile(r"\s*(\d{4})(\d{2})(\d{2})\s*")


def _not_a_number(value: object) -> object:
    """pydantic reads a number (or a string of digits) as Unix seconds: "20261222" would be
    a day in 1970, and a termination due in three weeks would run now. An ISO 8601 basic
    date (YYYYMMDD) is read as that date; any other number is refused."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date or time, not a number")
    if isinstance(value, str) and _NUMERIC.fullmatch(value):
        basic = _BASIC_DATE.fullmatch(value)
        if basic is None:
            raise ValueError("expected an ISO 8601 date or time, not a number")
        return "-".join(basic.groups())
    return value


# Every time an intake path takes (``effective_at``, ``occurred_at``): ISO-8601, a date alone
# (also YYYYMMDD) or a zone-less time allowed; ``in_zone`` then reads those in
# ``OFFBOARD_HR_TIME_ZONE``.
WallTime = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_within_calendar)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


def in_zone(value: datetime | None, zone: str) -> datetime | None:
    """A ``WallTime`` from an intake path, zone-aware: a date-only or zone-less value is read
    in ``zone`` (an IANA name, ``OFFBOARD_HR_TIME_ZONE``); an aware one is kept as sent."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=ZoneInfo(zone))


def utc_in_zone(value: datetime | None, zone: str) -> datetime | None:
    """``in_zone``, then in UTC: the form times are stored and compared in."""
    local = in_zone(value, zone)
    return local.astimezone(UTC) if local is not None else None
