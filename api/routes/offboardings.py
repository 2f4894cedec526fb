"""Admin offboardings: start (or dry-run), list, read, cancel, approve, retry a step."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, model_validator
from sqlmodel import col, select
from temporalio.client import WorkflowUpdateFailedError

from api.deps import (
    AdminDep,
    CatalogDep,
    DbDep,
    Principal,
    SessionDep,
    SettingsDep,
    StaffDep,
    TemporalDep,
    check_apps,
    owned_apps,
)
from api.errors import ApiError
from api.offboarding_service import (
    LIVE,
    resolve_person,
    run_view,
    run_views,
    start_offboarding,
)
from db.models import OffboardingRun
from workflows.offboarding import OffboardingWorkflow
from workflows.plan import PlanWorkflow
from workflows.types import JoinRequest, OffboardingInput, PlanInput, RetryRequest

router = APIRouter(tags=["offboardings"])


class OffboardingCreate(BaseModel):
    email: str | None = None
    employee_id: str | None = None
    reason: str = ""
    effective_at: datetime | None = None
    dry_run: bool = False
    apps: list[str] | None = None

    @model_validator(mode="after")
    def _one_identity(self) -> OffboardingCreate:
        if not (self.email or self.employee_id):
            raise ValueError("give email or employee_id")
        if self.effective_at is not None and self.effective_at.tzinfo is None:
            raise ValueError("effective_at needs a time zone (e.g. 2026-12-01T17:00:00Z)")
        return self


@router.post("/offboardings", status_code=202)
async def create_offboarding(
    body: OffboardingCreate,
    admin: AdminDep,
    db: DbDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> JSONResponse:
    check_apps(catalog, body.apps)
    person = await db.run(lambda session: resolve_person(session, body.email, body.employee_id))
    if body.dry_run:
        plan = await client.execute_workflow(
            PlanWorkflow.run,
            PlanInput(person_id=person.id, email=person.email, apps=body.apps),
            id=f"plan-{uuid.uuid4().hex}",
            task_queue=settings.task_queue,
        )
        apps = [p.model_dump(include={"app", "action", "account", "reason"}) for p in plan.apps]
        return JSONResponse(
            {"dry_run": True, "person": {"id": person.id, "email": person.email}, "apps": apps},
            200,
        )
    inp = OffboardingInput(
        person_id=person.id,
        email=person.email,
        name=person.name,
        reason=body.reason,
        effective_at=body.effective_at,
        apps=body.apps,
        trigger="api",
        actor=admin.actor,
    )
    join = JoinRequest(source=f"api:{admin.actor}", reason=body.reason)
    run_id, joined = await start_offboarding(client, db, settings, inp, join)
    return JSONResponse({"run_id": run_id, "joined": joined}, 202)


def _visible(run: dict[str, Any], principal: Principal, catalog: CatalogDep) -> bool:
    owned = owned_apps(principal, catalog)
    return owned is None or any(step["app"] in owned for step in run["apps"])


@router.get("/offboardings")
def list_offboardings(
    principal: StaffDep,
    session: SessionDep,
    catalog: CatalogDep,
    status: str | None = Query(default=None),
    limit: int = Query(default=100, ge=1, le=5000),
    offset: int = Query(default=0, ge=0),
) -> list[dict[str, Any]]:
    query = select(OffboardingRun).order_by(col(OffboardingRun.created_at).desc())
    if status:
        query = query.where(OffboardingRun.status == status)
    runs = list(session.exec(query.offset(offset).limit(limit)).all())
    return [v for v in run_views(session, runs) if _visible(v, principal, catalog)]


def _run(session: SessionDep, run_id: str) -> OffboardingRun:
    run = session.get(OffboardingRun, run_id)
    if run is None:
        raise ApiError(404, "not_found", f"no offboarding run {run_id!r}")
    return run


@router.get("/offboardings/{run_id}")
def get_offboarding(
    run_id: str, principal: StaffDep, session: SessionDep, catalog: CatalogDep
) -> dict[str, Any]:
    view = run_view(session, _run(session, run_id))
    if not _visible(view, principal, catalog):
        raise ApiError(403, "forbidden", "this run involves none of the apps you own")
    return view


async def _live_handle(db: DbDep, client: TemporalDep, run_id: str) -> Any:
    run = await db.run(lambda session: _run(session, run_id))
    if run.status not in LIVE:
        raise ApiError(409, "run_finished", f"run {run_id} is already {run.status}")
    return client.get_workflow_handle(run.workflow_id, run_id=run.run_id)


@router.post("/offboardings/{run_id}/cancel", status_code=202)
async def cancel_offboarding(
    run_id: str, admin: AdminDep, db: DbDep, client: TemporalDep
) -> dict[str, Any]:
    handle = await _live_handle(db, client, run_id)
    await handle.signal(OffboardingWorkflow.cancel, f"cancelled by {admin.actor}")
    return {"run_id": run_id, "status": "cancelling"}


@router.post("/offboardings/{run_id}/approve", status_code=202)
async def approve_offboarding(
    run_id: str, admin: AdminDep, db: DbDep, client: TemporalDep
) -> dict[str, Any]:
    handle = await _live_handle(db, client, run_id)
    await handle.signal(OffboardingWorkflow.approve, admin.actor)
    return {"run_id": run_id, "approved_by": admin.actor, "at": datetime.now(UTC)}


@router.post("/offboardings/{run_id}/steps/{app}/retry", status_code=202)
async def retry_step(
    run_id: str,
    app: str,
    admin: StaffDep,
    db: DbDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> dict[str, Any]:
    owned = owned_apps(admin, catalog)
    if owned is not None and app not in owned:
        raise ApiError(403, "forbidden", f"retrying {app} needs admin or an owner of {app}")
    handle = await _live_handle(db, client, run_id)
    try:
        await handle.execute_update(
            OffboardingWorkflow.retry_step, RetryRequest(app=app, actor=admin.actor)
        )
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause)
        raise ApiError(409, "cannot_retry", message) from None
    return {"run_id": run_id, "app": app, "status": "retrying"}
