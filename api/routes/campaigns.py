"""Access-review campaigns: start, read, review (one by one or in bulk), upload a manual app's
accounts, close, and the evidence report.

Who sees what: admins everything; a reviewer only their own items (``?reviewer=me``; asking for
someone else's is 403); an app admin the items of the apps they own. Decisions belong to the
item's reviewer (or an admin), never to the account's holder.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from sqlmodel import Session, col, select
from temporalio.client import WorkflowUpdateFailedError

from api import campaign_service as svc
from api.deps import (
    AdminDep,
    CatalogDep,
    DbDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    TemporalDep,
)
from api.errors import ApiError
from api.routes.people import trail_response
from api.routes.tasks import can_see, complete
from db.models import Campaign, CampaignItem, HumanTask
from db.session import get_engine
from domain.audit import Subject
from domain.status import ReviewerMode
from domain.status import Verdict as NoDecision
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.campaign_messages import CampaignTemplate, CloseRequest

router = APIRouter(tags=["campaigns"])
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class CampaignCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    apps: list[str] | None = None
    due_in_days: float = Field(default=14, gt=0, le=365)
    reviewer: ReviewerMode = "manager"
    on_no_decision: NoDecision = "keep"


class DecisionBody(BaseModel):
    decision: Literal["keep", "revoke"]
    justification: str = Field(default="", max_length=2000)


class BulkDecisionBody(DecisionBody):
    items: list[int] = Field(min_length=1, max_length=svc.MAX_BULK)


class CloseBody(BaseModel):
    reason: str = Field(default="", max_length=500)


@router.post("/campaigns", status_code=202)
async def create_campaign(
    body: CampaignCreate,
    admin: AdminDep,
    db: DbDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> JSONResponse:
    template = CampaignTemplate(**body.model_dump())
    campaign = await svc.start_campaign(client, db, settings, catalog, template, admin.actor)
    view = await db.run(lambda session: svc.campaign_view(session, campaign))
    return JSONResponse(jsonable_encoder(view), 202)


@router.get("/campaigns")
def list_campaigns(
    principal: PrincipalDep,
    session: SessionDep,
    catalog: CatalogDep,
    status: str | None = Query(default=None),
) -> list[dict[str, Any]]:
    query = select(Campaign).order_by(col(Campaign.created_at).desc()).limit(500)
    if status:
        query = query.where(col(Campaign.status) == status)
    views = []
    for campaign in session.exec(query).all():
        if principal.role == "admin":
            views.append(svc.campaign_view(session, campaign))
            continue
        scope = svc.item_scope(principal, catalog, None)
        view = svc.campaign_view(session, campaign, scope)
        if view["counts"]["items"]:
            views.append(view)
    return views


@router.get("/campaigns/{campaign_id}")
def get_campaign(
    campaign_id: str, principal: PrincipalDep, session: SessionDep, catalog: CatalogDep
) -> dict[str, Any]:
    """The campaign; for non-admins the counts cover only the items they may see."""
    campaign = svc.get_campaign(session, campaign_id)
    scope = None if principal.role == "admin" else svc.item_scope(principal, catalog, None)
    return svc.campaign_view(session, campaign, scope)


@router.get("/campaigns/{campaign_id}/items")
def list_items(
    campaign_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    catalog: CatalogDep,
    reviewer: str | None = Query(default=None),
    decision: Literal["pending", "keep", "revoke"] | None = Query(default=None),
    classification: str | None = Query(default=None),
    app: str | None = Query(default=None),
    limit: int = Query(default=500, ge=1, le=5000),
    offset: int = Query(default=0, ge=0),
) -> list[dict[str, Any]]:
    svc.get_campaign(session, campaign_id)
    scope = svc.item_scope(principal, catalog, reviewer)
    items = svc.list_items(
        session,
        campaign_id,
        scope,
        decision=decision,
        classification=classification,
        app=app,
        limit=limit,
        offset=offset,
    )
    return [svc.item_view(i) for i in items]


def _items(session: SessionDep, campaign_id: str, ids: list[int]) -> list[CampaignItem]:
    rows = session.exec(
        select(CampaignItem).where(
            col(CampaignItem.campaign_id) == campaign_id, col(CampaignItem.id).in_(ids)
        )
    ).all()
    found = {r.id: r for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ApiError(
            404, "not_found", f"no item(s) {', '.join(map(str, missing))} in {campaign_id}"
        )
    return [found[i] for i in dict.fromkeys(ids)]


def _decide(
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    principal: PrincipalDep,
    campaign_id: str,
    ids: list[int],
    body: DecisionBody,
) -> list[dict[str, Any]]:
    campaign = svc.get_campaign(session, campaign_id)
    if campaign.status not in svc.OPEN:
        raise ApiError(409, "review_closed", f"campaign {campaign_id} is {campaign.status}")
    items = _items(session, campaign_id, ids)
    for item in items:
        svc.check_decision(principal, catalog, item, body.decision, body.justification)
    svc.apply_decisions(
        settings, campaign, items, body.decision, body.justification.strip(), principal.actor
    )
    for item in items:
        session.refresh(item)
    return [svc.item_view(i) for i in items]


@router.post("/campaigns/{campaign_id}/items/{item_id}/decision")
def decide_item(
    campaign_id: str,
    item_id: int,
    body: DecisionBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
) -> dict[str, Any]:
    """keep | revoke one item; a justification is required to keep a terminated or orphan one."""
    [view] = _decide(session, settings, catalog, principal, campaign_id, [item_id], body)
    return view


@router.post("/campaigns/{campaign_id}/decisions")
def decide_bulk(
    campaign_id: str,
    body: BulkDecisionBody,
    principal: PrincipalDep,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
) -> dict[str, Any]:
    """One decision for many items (``{items: [ids], decision, justification}``), all or
    nothing: one item that is not yours, or needs a justification, and none is decided."""
    views = _decide(session, settings, catalog, principal, campaign_id, body.items, body)
    return {"decided": len(views), "items": views}


@router.post("/campaigns/{campaign_id}/close")
async def close_campaign(
    campaign_id: str,
    admin: AdminDep,
    db: DbDep,
    client: TemporalDep,
    body: Annotated[CloseBody | None, Body()] = None,
) -> dict[str, Any]:
    """End the review now: on_no_decision for what is pending, then the revocations start."""
    campaign = await db.run(lambda session: svc.get_campaign(session, campaign_id))
    if campaign.status not in svc.OPEN:
        raise ApiError(409, "review_closed", f"campaign {campaign_id} is {campaign.status}")
    handle = client.get_workflow_handle(campaign.workflow_id)
    request = CloseRequest(actor=admin.actor, reason=body.reason if body else "")
    try:
        result = await handle.execute_update(AccessReviewCampaignWorkflow.close, request)
    except WorkflowUpdateFailedError as exc:
        message = getattr(exc.cause, "message", None) or str(exc.cause)
        raise ApiError(409, "review_closed", message) from None
    view = await db.run(
        lambda session: svc.campaign_view(session, svc.get_campaign(session, campaign_id))
    )
    return {**view, "closed": result.model_dump()}


@router.post("/campaigns/{campaign_id}/apps/{app}/accounts", status_code=202)
async def upload_accounts(
    campaign_id: str,
    app: str,
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> JSONResponse:
    """A manual app's accounts as CSV (``text/csv``; header ``account,email,display_name,
    last_sign_in,account_id,active``, only ``account`` required). All or nothing: a bad row is
    422 naming its line (header = line 1) and column. Completes the owner's upload task."""
    campaign = await db.run(lambda session: svc.get_campaign(session, campaign_id))
    if app not in campaign.apps:
        raise ApiError(404, "not_found", f"app {app!r} is not part of campaign {campaign_id}")
    if app not in {a.id for a in catalog.apps} or catalog.app(app).connector != "manual":
        raise ApiError(409, "not_manual", f"{app} is not a manual app: its accounts are collected")
    task = await db.run(lambda session: session.get(HumanTask, f"{campaign_id}-{app}-upload"))
    if task is None or task.kind != "csv_upload":
        raise ApiError(409, "no_upload_task", f"no upload is expected for {app} (yet)")
    if not can_see(principal, task, catalog):
        raise ApiError(403, "forbidden", f"only {app}'s owners or an admin may upload")
    if task.status != "open":
        raise ApiError(409, "task_closed", f"the upload task for {app} is already {task.status}")
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "too_large", f"the CSV is over {MAX_UPLOAD_BYTES} bytes")
    try:
        parsed = svc.parse_accounts_csv(svc.decode_csv(body))
    except svc.CsvProblem as exc:
        raise exc.api_error() from None
    digest = hashlib.sha256(body).hexdigest()
    await db.run(lambda session: svc.replace_uploaded_accounts(session, campaign_id, app, parsed))
    note = f"uploaded {len(parsed.rows)} account(s) (sha256 {digest[:16]})"
    try:
        await complete(db, catalog, client, principal, task.id, "done", note, digest)
    except ApiError:
        # The task closed meanwhile (the review ended): the upload does not count.
        await db.run(lambda session: svc.drop_unclassified(session, campaign_id, app))
        raise
    return JSONResponse(
        {
            "campaign": campaign_id,
            "app": app,
            "accepted": len(parsed.rows),
            "skipped_inactive": parsed.skipped_inactive,
            "sha256": digest,
            "task_id": task.id,
        },
        202,
    )


@router.get("/campaigns/{campaign_id}/report", response_model=None)
def campaign_report(
    campaign_id: str,
    _: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> dict[str, Any] | StreamingResponse:
    """Evidence: one row per account (decision, who, why, when, revocation and its read-back);
    the JSON form adds a summary (counts by decision and classification, time to complete)."""
    campaign = svc.get_campaign(session, campaign_id)
    if format == "csv":

        def rows() -> Iterator[str]:
            # Its own session: the request's may be closed while the response streams.
            with Session(get_engine(settings.effective_database_url)) as own:
                yield from svc.report_csv(own, campaign_id)

        return StreamingResponse(
            rows(),
            media_type="text/csv",
            headers={
                "Content-Disposition": f'attachment; filename="access-review-{campaign_id}.csv"'
            },
        )
    return svc.report_json(session, campaign)


@router.get("/campaigns/{campaign_id}/audit", response_model=None)
def campaign_audit(
    campaign_id: str,
    _: AdminDep,
    session: SessionDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> dict[str, Any] | Response:
    """The campaign's own trail (started, collected, notified, closed, finished)."""
    return trail_response(session, Subject.campaign(campaign_id), format)
