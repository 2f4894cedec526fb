"""Admin offboardings: start (or dry-run), list, read, cancel, approve, retry a step."""

from __future__ import annotations

from typing import Annotated, Any

from annotated_types import Len
from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, StringConstraints, model_validator

from api.deps import AdminDep, CatalogDep, DbDep, SessionDep, SettingsDep, StaffDep, TemporalDep
from api.schemas import (
    MAX_OFFSET,
    DryRun,
    RestoreApproved,
    RestoreView,
    RunApproved,
    RunCancelling,
    RunStarted,
    RunView,
    StepRetrying,
)
from db.models import utcnow
from domain.intake import Email, PersonId, Text, WallTime, in_zone
from domain.status import RunStatus
from services import offboardings as runs
from services import restores
from workflows.types import JoinRequest

router = APIRouter(tags=["offboardings"])


AppId = Annotated[str, StringConstraints(max_length=100)]


class OffboardingCreate(BaseModel):
    """Checked at the trust boundary (``domain.intake``); a date-only or zone-less
    ``effective_at`` is read in ``OFFBOARD_HR_TIME_ZONE``, as for HR events."""

    email: Email | None = None
    employee_id: PersonId | None = None
    reason: Text = ""
    effective_at: WallTime | None = None
    dry_run: bool = False
    apps: (
        Annotated[list[Annotated[str, StringConstraints(max_length=100)]], Len(max_length=500)]
        | None
    ) = None

    @model_validator(mode="after")
    def _one_identity(self) -> OffboardingCreate:
        if not (self.email or self.employee_id):
            raise ValueError("give email or employee_id")
        return self


@router.post("/offboardings", status_code=202, response_model=RunStarted | DryRun)
async def create_offboarding(
    body: OffboardingCreate,
    admin: AdminDep,
    db: DbDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    client: TemporalDep,
    response: Response,
) -> dict[str, Any]:
    """202 ``{run_id, joined}``; a dry run answers 200 with the plan and starts nothing."""
    runs.check_apps(catalog, body.apps)
    person = await db.run(lambda s: runs.resolve_person(s, body.email, body.employee_id))
    if body.dry_run:
        response.status_code = 200
        return await runs.dry_run(client, settings, person, body.apps)
    inp = runs.offboarding_input(
        person,
        reason=body.reason,
        effective_at=in_zone(body.effective_at, settings.hr_time_zone),
        apps=body.apps,
        trigger="api",
        actor=admin.actor,
    )
    join = JoinRequest(source=f"api:{admin.actor}", reason=body.reason)
    run_id, joined = await runs.start_offboarding(client, db, settings, inp, join)
    return {"run_id": run_id, "joined": joined}


@router.get("/offboardings", response_model=list[RunView])
def list_offboardings(
    principal: StaffDep,
    session: SessionDep,
    catalog: CatalogDep,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: int = Query(default=100, ge=1, le=5000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> list[dict[str, Any]]:
    """The runs the caller may see, newest first (app admins: runs of the apps they own)."""
    found = runs.list_runs(session, principal, catalog, status=status, limit=limit, offset=offset)
    return runs.run_views(session, found, catalog)


@router.get("/offboardings/{run_id}", response_model=RunView)
def get_offboarding(
    run_id: str, principal: StaffDep, session: SessionDep, catalog: CatalogDep
) -> dict[str, Any]:
    return runs.run_views(session, [runs.get_run(session, principal, catalog, run_id)], catalog)[0]


@router.post("/offboardings/{run_id}/cancel", status_code=202, response_model=RunCancelling)
async def cancel_offboarding(
    run_id: str, admin: AdminDep, db: DbDep, client: TemporalDep
) -> dict[str, Any]:
    await runs.cancel_run(db, client, admin, run_id)
    return {"run_id": run_id, "status": "cancelling"}


@router.post("/offboardings/{run_id}/approve", status_code=202, response_model=RunApproved)
async def approve_offboarding(
    run_id: str, admin: AdminDep, db: DbDep, client: TemporalDep
) -> dict[str, Any]:
    """Let a run held by the burst guard go ahead."""
    await runs.approve_run(db, client, admin, run_id)
    return {"run_id": run_id, "approved_by": admin.actor, "at": utcnow()}


@router.get("/offboardings/{run_id}/restore", response_model=RestoreView)
def get_restore(run_id: str, admin: AdminDep, session: SessionDep) -> dict[str, Any]:
    """The restore plan offered for a run that took effect (rescind, rehire), and its state."""
    return restores.get_restore(session, admin, run_id)


@router.post(
    "/offboardings/{run_id}/restore/approve", status_code=202, response_model=RestoreApproved
)
async def approve_restore(
    run_id: str, admin: AdminDep, db: DbDep, client: TemporalDep
) -> dict[str, Any]:
    """Approve the offered restore: 404 none offered, 409 already approved or closed."""
    await restores.approve_restore(db, client, admin, run_id)
    return {"run_id": run_id, "approved_by": admin.actor, "status": "restoring"}


@router.post(
    "/offboardings/{run_id}/steps/{app}/retry", status_code=202, response_model=StepRetrying
)
async def retry_step(
    run_id: str, app: str, staff: StaffDep, db: DbDep, catalog: CatalogDep, client: TemporalDep
) -> dict[str, Any]:
    await runs.retry_step(db, client, catalog, staff, run_id, app)
    return {"run_id": run_id, "app": app, "status": "retrying"}
