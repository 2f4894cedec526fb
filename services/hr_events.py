"""HR events (the signed webhook): keep the directory current, start, join or cancel runs.

Idempotent by ``event_id`` and by person (a second termination for a person with a live run
joins it). The event id is claimed first, in the same transaction as the directory update and
before anything starts: a repeat answers with the first delivery's run whatever its state, a
copy racing the first gets 409 and changes nothing, and a delivery that finds the claim of a
handler that died mid-way takes it over and finishes its work (finding the run it started by
the run's start token, never starting a second).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from config import Settings
from db.models import Person, WebhookEvent, aware, utcnow
from db.session import Db
from domain.intake import Email, EventId, Name, PersonId, Text, in_zone
from services.errors import Conflict
from services.offboardings import (
    live_run,
    offboarding_input,
    run_started_with,
    start_offboarding,
    workflow_id_for,
)
from services.restores import offer_restore, rehire
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
    # An ``employee.upserted`` with status active for a terminated person is a rehire.
    status: Literal["active", "terminated"] | None = None


class HrEvent(BaseModel):
    """The webhook body, checked at the trust boundary (``domain.intake``); a date-only or
    zone-less ``effective_at`` is read in ``OFFBOARD_HR_TIME_ZONE`` by ``handle_hr_event``."""

    model_config = ConfigDict(extra="ignore")
    event_id: EventId
    type: Literal[
        "employee.terminated",
        "employee.termination_rescinded",
        "employee.upserted",
        "employee.rehired",
    ]
    employee: Employee
    effective_at: datetime | None = None
    reason: Text = ""


class HrOutcome(BaseModel):
    run_id: str | None
    duplicate: bool = False


def _upsert_person(session: Session, event: HrEvent) -> Person:
    e = event.employee
    person = session.get(Person, e.id) or Person(id=e.id, email=e.email)
    person.email, person.name = e.email, e.name
    person.manager_email, person.department = e.manager_email, e.department
    if event.type == "employee.terminated":
        person.status = "terminated"
        person.terminated_at = event.effective_at or utcnow()
    elif event.type == "employee.termination_rescinded":
        person.status, person.terminated_at = "active", None
    person.updated_at = utcnow()
    session.add(person)
    return person


@dataclass(frozen=True)
class Claim:
    """What claiming an event found: ours to handle (``new`` or ``recovered``), ``done`` before
    (with its run), or ``busy`` (another handler holds a live claim)."""

    state: Literal["new", "recovered", "done", "busy"]
    token: str = ""
    run_id: str | None = None


def _claim(session: Session, event: HrEvent, lease_seconds: float) -> Claim:
    """Claim the event id and apply the directory update, in one transaction."""
    now = utcnow()
    for _ in range(3):
        seen = session.get(WebhookEvent, event.event_id)
        if seen is not None:
            return _existing_claim(session, seen, now, lease_seconds)
        token = uuid.uuid4().hex
        try:
            session.add(
                WebhookEvent(
                    event_id=event.event_id,
                    type=event.type,
                    person_id=event.employee.id,
                    status="claimed",
                    start_token=token,
                    claimed_at=now,
                )
            )
            _upsert_person(session, event)
            session.commit()
        except IntegrityError:
            # A concurrent delivery of this event (or of another for this person) won the
            # insert: look again.
            session.rollback()
            continue
        return Claim("new", token)
    return Claim("busy")


def _existing_claim(
    session: Session, seen: WebhookEvent, now: datetime, lease_seconds: float
) -> Claim:
    if seen.status == "done":
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

    Raises Conflict ``duplicate_event`` while another delivery of the same event is being
    handled (nothing is written for this one).
    """
    lease = settings.webhook_claim_lease_seconds
    event = event.model_copy(
        update={"effective_at": in_zone(event.effective_at, settings.hr_time_zone)}
    )
    claim = await db.run(lambda session: _claim(session, event, lease))
    if claim.state == "done":
        return HrOutcome(run_id=claim.run_id, duplicate=True)
    if claim.state == "busy":
        raise Conflict(
            "duplicate_event", f"event {event.event_id} is being processed; deliver it later"
        )
    run_id: str | None = None
    if event.type == "employee.terminated":
        run_id = await _terminate(client, db, settings, event, claim)
    elif event.type == "employee.termination_rescinded":
        run = await db.run(lambda session: live_run(session, event.employee.id))
        if run is not None:
            handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
            await handle.signal(OffboardingWorkflow.cancel, "termination rescinded by HR")
            run_id = run.run_id
    restored = await _after_effect(client, db, settings, event)
    run_id = run_id or restored
    await db.run(_settle(event.event_id, run_id))
    return HrOutcome(run_id=run_id, duplicate=claim.state == "recovered")


async def _after_effect(client: Client, db: Db, settings: Settings, event: HrEvent) -> str | None:
    """A rescind or a rehire after the run took effect: offer to restore what it did (the
    run's id, else None); a rehire also makes the person active and stops a live run."""
    person_id = event.employee.id
    if event.type == "employee.termination_rescinded":
        reason = "termination rescinded by HR"
        return await offer_restore(client, db, settings, person_id, reason, "hr-webhook")
    if event.type == "employee.upserted" and event.employee.status == "active":
        person = await db.run(lambda session: session.get(Person, person_id))
        if person is None or person.status != "terminated":
            return None
    elif event.type != "employee.rehired":
        return None
    return await rehire(client, db, settings, person_id, "hr-webhook")


async def _terminate(
    client: Client, db: Db, settings: Settings, event: HrEvent, claim: Claim
) -> str:
    """Start the person's run (or join the live one) for a claimed termination."""
    join = JoinRequest(source="hr-webhook", event_id=event.event_id, reason=event.reason)
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
        actor="hr-webhook",
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
