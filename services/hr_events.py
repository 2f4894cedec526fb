"""HR events (the signed webhook): keep the directory current, start, join or cancel runs.

Idempotent by ``event_id`` and by person (a second termination for a person with a live run
joins it). The event id is claimed first, in the same transaction as the directory update and
before anything starts: a repeat answers with the first delivery's run whatever its state, a
copy racing the first gets 409 and changes nothing, and a delivery that finds the claim of a
handler that died mid-way takes it over and finishes its work (finding the run it started by
the run's start token, never starting a second).

Per person the latest event wins (``domain.hr_order``): the claim's transaction also decides,
with the person's row locked, whether the event is late; a late one is recorded ``stale``
with an ``hr.event_ignored`` audit event and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from db.audit import append_in
from db.models import Person, WebhookEvent, aware, utcnow
from db.session import Db
from domain.audit import AuditEventIn, Subject
from domain.hr_order import TERMINATED, Latest, applies
from domain.intake import Email, EventId, Name, PersonId, Text, WallTime, in_zone, utc_in_zone
from services.errors import Conflict, Invalid
from services.offboardings import (
    offboarding_input,
    run_started_with,
    start_offboarding,
    workflow_id_for,
)
from services.restores import REHIRED, stop_and_offer
from workflows.offboarding import OffboardingWorkflow
from workflows.types import JoinRequest


def _none_if_blank(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class Employee(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: PersonId
    email: Email
    name: Name = ""
    manager_email: Annotated[Email | None, BeforeValidator(_none_if_blank)] = None
    department: Name | None = None
    # HR's own word for the person's state. Only "active" is acted on (an upsert saying so
    # makes a terminated person active again); other values are HR's vocabulary, ignored.
    status: Name | None = None


HrEventType = Literal[
    "employee.terminated",
    "employee.termination_rescinded",
    "employee.upserted",
    "employee.rehired",
]
RESCINDED = "employee.termination_rescinded"
# Events that make a terminated person active again whatever they carry.
REACTIVATING = frozenset({RESCINDED, "employee.rehired"})
ACTOR = "hr-webhook"
# How far ahead of our clock an HR system's occurred_at may be (its clock may run fast).
CLOCK_SKEW = timedelta(minutes=5)


class HrEvent(BaseModel):
    """The webhook body, checked at the trust boundary (``domain.intake``); a date-only or
    zone-less ``effective_at`` / ``occurred_at`` is read in ``OFFBOARD_HR_TIME_ZONE`` by
    ``handle_hr_event``, and a missing ``occurred_at`` is the receipt time."""

    model_config = ConfigDict(extra="ignore")
    event_id: EventId
    type: HrEventType
    employee: Employee
    effective_at: WallTime | None = None
    occurred_at: WallTime | None = None
    reason: Text = ""


class HrOutcome(BaseModel):
    run_id: str | None
    duplicate: bool = False
    # Why the event changed nothing: it is older than what the person's record already took.
    ignored: str | None = None


def _reactivates(event: HrEvent, person: Person, at: datetime) -> bool:
    """An upsert saying ``active`` for a terminated person, sent after the termination took
    effect: HR systems report a leaver active until their last day, which is no rehire."""
    if event.type != "employee.upserted" or person.status != "terminated":
        return False
    if (event.employee.status or "").lower() != "active":
        return False
    return person.terminated_at is None or at >= aware(person.terminated_at)


def _rescinded_before(event: HrEvent, person: Person, zone: str) -> str:
    """Why a termination is the one a rescind delivered before it cancelled ("" if it is not):
    it has no ``occurred_at`` to order it by, and its ``effective_at`` falls on the date the
    rescind named (in HR's time zone). Without either, a termination after a rescind is a
    new one; and the memory holds for one termination (a match spends it, on ``person``),
    so HR can terminate again."""
    if event.type != TERMINATED or event.occurred_at is not None or event.effective_at is None:
        return ""
    cancelled = person.rescinded_effective_at
    if cancelled is None:
        return ""
    day = aware(cancelled).astimezone(ZoneInfo(zone)).date()
    if event.effective_at.astimezone(ZoneInfo(zone)).date() != day:
        return ""
    person.rescinded_effective_at = None
    return f"rescinded by {person.rescinded_by} (termination effective {day})"


def _apply(session: Session, event: HrEvent, at: datetime, zone: str) -> tuple[str, bool]:
    """Apply the event's parts that are not older than the person's record (the person's row
    locked, on PostgreSQL); returns why nothing applied ("" when something did) and whether
    it made a terminated person active again."""
    e = event.employee
    person = session.get(Person, e.id, with_for_update=True) or Person(id=e.id, email=e.email)
    latest = Latest(
        event_id=person.hr_event_id,
        at=aware(person.hr_event_at) if person.hr_event_at else None,
        status_event_id=person.hr_status_event_id,
        status_at=aware(person.hr_status_at) if person.hr_status_at else None,
        active=person.status == "active",
    )
    rescinded = _rescinded_before(event, person, zone)
    if rescinded:
        session.add(person)
        return rescinded, False
    changes_status = event.type in (TERMINATED, *REACTIVATING) or _reactivates(event, person, at)
    verdict = applies(event.type, at, changes_status, latest)
    if verdict.stale:
        return verdict.why, False
    if event.type == RESCINDED and event.effective_at is not None:
        person.rescinded_effective_at = event.effective_at.astimezone(UTC)
        person.rescinded_by = event.event_id
    reactivated = verdict.status and event.type != TERMINATED and person.status == "terminated"
    if verdict.details:
        person.email = e.email
        # A field HR left out is unchanged (an explicit null clears it).
        for field in {"name", "manager_email", "department"} & e.model_fields_set:
            setattr(person, field, getattr(e, field))
        person.hr_event_id, person.hr_event_type = event.event_id, event.type
        person.hr_event_at = at
    if verdict.status:
        if event.type == TERMINATED:
            person.status, person.terminated_at = "terminated", event.effective_at or at
        else:
            person.status, person.terminated_at = "active", None
        person.hr_status_event_id, person.hr_status_at = event.event_id, at
    person.updated_at = utcnow()
    session.add(person)
    return "", reactivated


def _termination_in_flight(session: Session, event: HrEvent, now: datetime, lease: float) -> bool:
    """A termination of this person still being handled (its run may be about to start): an
    event making the person active again waits for it, else it could not cancel that run."""
    if event.type not in REACTIVATING:
        return False
    found = session.exec(
        select(WebhookEvent.event_id)
        .where(
            col(WebhookEvent.person_id) == event.employee.id,
            col(WebhookEvent.type) == TERMINATED,
            col(WebhookEvent.status) == "claimed",
            col(WebhookEvent.claimed_at) >= now - timedelta(seconds=lease),
        )
        .limit(1)
    ).first()
    return found is not None


def _hr_event(kind: str, event: HrEvent, at: datetime, now: datetime, **more: str) -> AuditEventIn:
    """The person's trail entry for an HR event: ``hr.event_ignored`` (with ``why``) or
    ``hr.status_changed`` (a rescind or rehire that applied; terminations show as runs)."""
    person_id = event.employee.id
    return AuditEventIn(
        subject=Subject.person(person_id),
        workflow_id=workflow_id_for(person_id),
        step_id=f"hr-event:{event.event_id}",
        kind=kind,
        at=now.isoformat(),
        actor=ACTOR,
        detail={"event_id": event.event_id, "type": event.type, "occurred_at": at.isoformat()}
        | more,
    )


@dataclass(frozen=True)
class Claim:
    """What claiming an event found: ours to handle (``new`` or ``recovered``), ``done`` before
    (with its run), ``ignored`` (late: recorded stale, ``why``), or ``busy`` (another handler
    holds a live claim on it, or on a termination it must wait for: ``why``)."""

    state: Literal["new", "recovered", "done", "ignored", "busy"]
    token: str = ""
    run_id: str | None = None
    why: str = ""
    # The event made a terminated person active again (a rescind or a rehire).
    reactivated: bool = False


def _claim(
    session: Session, event: HrEvent, at: datetime, lease_seconds: float, zone: str
) -> Claim:
    """Claim the event id and apply the directory update (or record the event as stale), in
    one transaction; ``at`` is when the event happened (UTC), ``zone`` HR's time zone."""
    now = utcnow()
    for _ in range(3):
        seen = session.get(WebhookEvent, event.event_id)
        if seen is not None:
            return _existing_claim(session, seen, now, lease_seconds)
        token = uuid.uuid4().hex
        claim = WebhookEvent(
            event_id=event.event_id,
            type=event.type,
            person_id=event.employee.id,
            status="claimed",
            start_token=token,
            claimed_at=now,
            occurred_at=at,
        )
        try:
            # The claim first: a concurrent copy now waits on it (or fails) before deciding.
            session.add(claim)
            session.flush()
            if _termination_in_flight(session, event, now, lease_seconds):
                session.rollback()
                return Claim("busy", why="a termination of this person is being processed")
            why, reactivated = _apply(session, event, at, zone)
            if why:
                claim.status, claim.detail = "stale", why
                append_in(session, [_hr_event("hr.event_ignored", event, at, now, why=why)])
            elif reactivated:
                change = _hr_event("hr.status_changed", event, at, now, status="active")
                append_in(session, [change])
            session.commit()
        except IntegrityError:
            # A concurrent delivery of this event (or of another for this person) won the
            # insert: look again.
            session.rollback()
            continue
        return Claim("ignored", why=why) if why else Claim("new", token, reactivated=reactivated)
    return Claim("busy")


def _existing_claim(
    session: Session, seen: WebhookEvent, now: datetime, lease_seconds: float
) -> Claim:
    if seen.status != "claimed":  # done, or stale: answered before
        return Claim("done", run_id=seen.run_id)
    claimed_at = aware(seen.claimed_at or seen.received_at)
    if claimed_at > now - timedelta(seconds=lease_seconds):
        return Claim("busy")
    # The handler died: take the claim over, once (the claim time is the compare-and-set).
    taken = session.execute(
        update(WebhookEvent)
        .where(
            col(WebhookEvent.event_id) == seen.event_id,
            col(WebhookEvent.status) == "claimed",
            col(WebhookEvent.claimed_at) == seen.claimed_at,
        )
        .values(claimed_at=now)
    )
    session.commit()
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return Claim("busy")
    return Claim("recovered", seen.start_token or uuid.uuid4().hex, seen.run_id)


def _settle(event_id: str, run_id: str | None, status: str = "done") -> Callable[[Session], None]:
    """Record the event's run (``claimed`` keeps the claim: a join about to be signalled)."""

    def write(session: Session) -> None:
        session.execute(
            update(WebhookEvent)
            .where(col(WebhookEvent.event_id) == event_id)
            .values(run_id=run_id, status=status)
        )
        session.commit()

    return write


async def handle_hr_event(client: Client, db: Db, settings: Settings, event: HrEvent) -> HrOutcome:
    """Apply one HR event exactly once; a repeat answers with the first delivery's run.

    An event older than what the person's record already took is recorded and ignored
    (``HrOutcome.ignored`` says why). Raises Conflict ``duplicate_event`` while another
    delivery of the same event is being handled, and ``termination_in_progress`` to a rescind
    or rehire while a termination of the person is (nothing is written for either). Raises
    Invalid when ``occurred_at`` is in the future.
    """
    lease = settings.webhook_claim_lease_seconds
    zone = settings.hr_time_zone
    # occurred_at stays None when HR sent none (a rescind's memory needs to know); ``at``
    # orders the event either way.
    occurred_at = utc_in_zone(event.occurred_at, zone)
    if occurred_at is not None and occurred_at > utcnow() + CLOCK_SKEW:
        # Latest wins: an event from the future would outrank every real one to come.
        raise Invalid(
            "validation_error",
            f"occurred_at: {occurred_at.isoformat()} is in the future",
            [{"field": "occurred_at", "message": "must not be in the future"}],
        )
    at = occurred_at or utcnow()
    event = event.model_copy(
        update={"effective_at": in_zone(event.effective_at, zone), "occurred_at": occurred_at}
    )
    claim = await db.run(lambda session: _claim(session, event, at, lease, zone))
    if claim.state == "done":
        return HrOutcome(run_id=claim.run_id, duplicate=True)
    if claim.state == "ignored":
        return HrOutcome(run_id=None, ignored=claim.why)
    if claim.state == "busy":
        if claim.why:
            raise Conflict("termination_in_progress", f"{claim.why}; deliver it later")
        raise Conflict(
            "duplicate_event", f"event {event.event_id} is being processed; deliver it later"
        )
    run_id: str | None = None
    if event.type == TERMINATED:
        run_id = await _terminate(client, db, settings, event, claim)
    elif claim.reactivated or event.type in REACTIVATING:
        # Before effect this cancels the run; after it, it also offers to restore what the
        # run did (a rehire, too, stops a live run).
        reason = "termination rescinded by HR" if event.type == RESCINDED else REHIRED
        run_id = await stop_and_offer(client, db, settings, event.employee.id, reason, ACTOR)
    await db.run(_settle(event.event_id, run_id))
    return HrOutcome(run_id=run_id, duplicate=claim.state == "recovered")


async def _terminate(
    client: Client, db: Db, settings: Settings, event: HrEvent, claim: Claim
) -> str:
    """Start the person's run (or join the live one) for a claimed termination."""
    join = JoinRequest(source=ACTOR, event_id=event.event_id, reason=event.reason)
    if claim.state == "recovered":
        # The dead handler may have recorded the run it was joining, or started one.
        if claim.run_id is not None:
            await _rejoin(client, event.employee.id, claim.run_id, join)
            return claim.run_id
        started = await run_started_with(client, event.employee.id, claim.token)
        if started is not None:
            return started
    person = await db.run(lambda session: session.get(Person, event.employee.id))
    assert person is not None  # written with the claim
    inp = offboarding_input(
        person,
        reason=event.reason,
        effective_at=event.effective_at,
        trigger="webhook",
        actor=ACTOR,
    ).model_copy(update={"start_token": claim.token})

    async def remember_join(run_id: str) -> None:
        await db.run(_settle(event.event_id, run_id, status="claimed"))

    run_id, _ = await start_offboarding(client, db, settings, inp, join, remember_join)
    return run_id


async def _rejoin(client: Client, person_id: str, run_id: str, join: JoinRequest) -> None:
    """Deliver a join the dead handler may not have sent (the run keys it by event id, so a
    second copy writes nothing); a run that has finished since needs none."""
    handle = client.get_workflow_handle(workflow_id_for(person_id), run_id=run_id)
    try:
        await handle.signal(OffboardingWorkflow.join, join)
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
