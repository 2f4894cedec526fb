"""POST /api/v1/webhooks/hr: signed HR events start, join or cancel offboardings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api import signature
from api.deps import DbDep, SettingsDep, TemporalDep
from api.errors import ApiError, error_body, field_errors
from api.offboarding_service import live_run, start_offboarding
from db.models import Person, WebhookEvent
from metrics import WEBHOOK_EVENTS
from workflows.offboarding import OffboardingWorkflow
from workflows.types import JoinRequest, OffboardingInput

router = APIRouter(tags=["webhooks"])
log = structlog.get_logger()


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


def _reject(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    log.warning("webhook.rejected", status=status, code=code, message=message)
    WEBHOOK_EVENTS.labels(code).inc()
    return JSONResponse(error_body(code, message, details), status)


def _upsert_person(session: Session, event: HrEvent) -> None:
    e = event.employee
    person = session.get(Person, e.id) or Person(id=e.id, email=e.email)
    person.email, person.name = e.email, e.name
    person.manager_email, person.department = e.manager_email, e.department
    if event.type == "employee.terminated":
        person.status = "terminated"
        person.terminated_at = event.effective_at or datetime.now(UTC)
    elif event.type == "employee.termination_rescinded":
        person.status, person.terminated_at = "active", None
    person.updated_at = datetime.now(UTC)
    session.add(person)


@router.post("/webhooks/hr", status_code=202)
async def hr_webhook(
    request: Request, db: DbDep, settings: SettingsDep, client: TemporalDep
) -> JSONResponse:
    body = await request.body()
    secrets = [s.get_secret_value() for s in settings.webhook_secrets]
    try:
        signature.verify(
            request.headers.get("X-Offboard-Signature"),
            body,
            secrets,
            settings.webhook_tolerance_seconds,
        )
    except signature.SignatureError as exc:
        return _reject(401, "bad_signature", str(exc))
    try:
        event = HrEvent.model_validate_json(body)
    except ValidationError as exc:
        details = field_errors(exc.errors())
        summary = "; ".join(f"{d['field']}: {d['message']}" for d in details)
        return _reject(422, "validation_error", summary, details)

    def seen_or_upsert(session: Session) -> WebhookEvent | None:
        seen = session.get(WebhookEvent, event.event_id)
        if seen is None:
            _upsert_person(session, event)
            session.commit()
        return seen

    seen = await db.run(seen_or_upsert)
    if seen is not None:
        WEBHOOK_EVENTS.labels("duplicate").inc()
        return JSONResponse({"run_id": seen.run_id, "duplicate": True}, 200)

    run_id: str | None = None
    if event.type == "employee.terminated":
        inp = OffboardingInput(
            person_id=event.employee.id,
            email=event.employee.email,
            name=event.employee.name,
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
        raise ApiError(
            409, "duplicate_event", f"event {event.event_id} is being processed"
        ) from None
    WEBHOOK_EVENTS.labels("accepted").inc()
    log.info("webhook.accepted", event_id=event.event_id, type=event.type, run_id=run_id)
    return JSONResponse({"run_id": run_id, "event_id": event.event_id}, 202)
