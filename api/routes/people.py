"""Audit trails (a person's, a campaign's) as JSON with a chain check or as CSV for auditors,
and the HR directory import."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from api.deps import AdminDep, DbDep, SessionDep
from api.errors import ApiError
from api.schemas import CampaignTrail, Imported, PersonTrail
from domain.audit import Subject
from services import people, trails

router = APIRouter(tags=["people"])
MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _trail(session: SessionDep, subject: Subject, format: str) -> dict[str, Any] | Response:
    if format == "csv":
        return Response(
            trails.trail_csv(trails.trail_events(session, subject)),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="audit-{subject.id}.csv"'},
        )
    return trails.trail_view(session, subject)


@router.get(
    "/people/{person_id}/audit",
    response_model=PersonTrail,
    responses={200: {"content": {"text/csv": {}}}},
)
def person_audit(
    person_id: str,
    _: AdminDep,
    session: SessionDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> Any:
    return _trail(session, Subject.person(person_id), format)


@router.get(
    "/campaigns/{campaign_id}/audit",
    response_model=CampaignTrail,
    responses={200: {"content": {"text/csv": {}}}},
    tags=["campaigns"],
)
def campaign_audit(
    campaign_id: str,
    _: AdminDep,
    session: SessionDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> Any:
    """The campaign's own trail (started, collected, notified, closed, finished)."""
    return _trail(session, Subject.campaign(campaign_id), format)


@router.post("/people:import", response_model=Imported)
async def import_people(request: Request, _: AdminDep, db: DbDep) -> dict[str, int]:
    """The HR directory as ``text/csv`` (``id,email,name,manager_email,department,status,
    terminated_at``); all or nothing, upsert by id. A bad row is 422 naming its line (header =
    line 1) and column."""
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", f"the CSV is over {MAX_IMPORT_BYTES} bytes")
    return {"imported": await db.run(lambda session: people.import_people(session, body))}
