"""Per person, the latest HR event wins: which parts of an event still apply when it is late.

HR systems retry and reorder deliveries, so every event carries when it happened
(``occurred_at``, else its receipt time) and the directory remembers, per person, the latest
event it applied. Two things are ordered separately:

- the employee's details (email, name, manager, department): an event older than the latest
  applied one does not overwrite them;
- the status (terminated / active again): only events that change it are ordered against
  each other, so a termination older than a later *detail* update still offboards (losing it
  would leave a leaver's accounts open), while a termination older than a later rescind,
  rehire or reactivation does not. At the same instant an ``active again`` event wins over a
  termination, in either delivery order: a rescind is sent after the termination it cancels.

A rescind with no run to cancel is remembered this way: it moves the person's status time, so
the termination it cancels (``occurred_at`` at or before the rescind's), arriving late, is
ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

TERMINATED = "employee.terminated"


@dataclass(frozen=True)
class Latest:
    """What the directory last took from HR for a person (None: nothing yet)."""

    event_id: str | None
    at: datetime | None
    status_event_id: str | None
    status_at: datetime | None
    active: bool


@dataclass(frozen=True)
class Applies:
    """Which parts of an event apply; ``why`` says why none does (the event is stale)."""

    details: bool
    status: bool
    why: str = ""

    @property
    def stale(self) -> bool:
        return not (self.details or self.status)


def _older(event_id: str | None, at: datetime | None) -> str:
    when = at.isoformat() if at is not None else "an unknown time"
    return f"older than {event_id or 'an earlier event'} of {when}"


def applies(kind: str, occurred_at: datetime, changes_status: bool, latest: Latest) -> Applies:
    """Which parts of an event of ``kind`` that happened at ``occurred_at`` apply now.

    ``changes_status``: the event terminates, or makes the person active again (rescind,
    rehire, an upsert saying ``active``). Times are aware and compared as instants.
    """
    details = latest.at is None or occurred_at >= latest.at
    if not changes_status:
        return Applies(details, False, "" if details else _older(latest.event_id, latest.at))
    last = latest.status_at
    status = (
        last is None
        or occurred_at > last
        or (occurred_at == last and not (kind == TERMINATED and latest.active))
    )
    if not status:
        return Applies(False, False, _older(latest.status_event_id, last))
    return Applies(details, True)
