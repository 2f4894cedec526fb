"""HR events (the signed webhook): keep the directory current, start, join or cancel runs.

Idempotent by ``event_id`` (a repeat answers with the first one's run) and by person (a second
termination for a person with a live run joins it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from temporalio.client import Client

from config import Settings
from db.models import Person, WebhookEvent, utcnow
from db.session import Db
from services.errors import Conflict
from services.offboardings import live_run, offboarding_input, start_offboarding
from workflows.offboarding import OffboardingWorkflow
from workflows.types import JoinRequest


class Employee(BaseModel):
    model_config = ConfigDict(extra="ignore")
    id: str
    email: str
    name: str = ""
    manager_email: str | None = None
    department: str | None = None


class HrEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    event_id: str
    type: Literal["employee.terminated", "employee.termination_rescinded", "employee.upserted"]
    employee: Employee
    effective_at: datetime | None = None
    reason: str = ""


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


async def handle_hr_event(client: Client, db: Db, settings: Settings, event: HrEvent) -> HrOutcome:
    """Apply one HR event; a repeat of an event already handled changes nothing.

    Raises Conflict ``duplicate_event`` when the same event is being handled concurrently.
    """

    def seen_or_upsert(session: Session) -> tuple[WebhookEvent | None, Person | None]:
        seen = session.get(WebhookEvent, event.event_id)
        if seen is not None:
            return seen, None
        person = _upsert_person(session, event)
        session.commit()
        return None, person

    seen, person = await db.run(seen_or_upsert)
    if seen is not None:
        return HrOutcome(run_id=seen.run_id, duplicate=True)
    assert person is not None

    run_id: str | None = None
    if event.type == "employee.terminated":
        inp = offboarding_input(
            person,
            reason=event.reason,
            effective_at=event.effective_at,
            trigger="webhook",
            actor="hr-webhook",
        )
        join = JoinRequest(source="hr-webhook", event_id=event.event_id, reason=event.reason)
        run_id, _ = await start_offboarding(client, db, settings, inp, join)
    elif event.type == "employee.termination_rescinded":
        run = await db.run(lambda session: live_run(session, event.employee.id))
        if run is not None:
            handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
            await handle.signal(OffboardingWorkflow.cancel, "termination rescinded by HR")
            run_id = run.run_id

    def remember(session: Session) -> None:
        session.add(
            WebhookEvent(
                event_id=event.event_id,
                type=event.type,
                person_id=event.employee.id,
                run_id=run_id,
            )
        )
        session.commit()

    try:
        await db.run(remember)
    except IntegrityError:
        raise Conflict("duplicate_event", f"event {event.event_id} is being processed") from None
    return HrOutcome(run_id=run_id)
