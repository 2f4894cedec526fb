"""Access-review campaigns: start, read, review (one by one or in bulk), upload a manual app's
accounts, close, and the evidence report.

Who sees what (``services.authz``): admins everything; a reviewer only their own items
(``?reviewer=me``; asking for someone else's is 403); an app admin the items of the apps they
own. Decisions belong to the item's reviewer (or an admin), never to the account's holder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

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
from api.schemas import (
    MAX_OFFSET,
    BulkDecided,
    CampaignClosed,
    CampaignReport,
    CampaignView,
    ItemView,
    Reassigned,
    UploadAccepted,
)
from db.session import open_session
from domain.status import Classification, Decision, ReviewerMode, Verdict
from services import authz, campaign_reports, campaign_uploads, campaigns, review_assignments
from services.campaign_licenses import campaign_licenses
from workflows.campaign_messages import CampaignTemplate

router = APIRouter(tags=["campaigns"])
MAX_UPLOAD_BYTES = 50 * 1024 * 1024


class CampaignCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    apps: list[str] | None = None
    due_in_days: float = Field(default=14, gt=0, le=365)
    reviewer: ReviewerMode = "manager"
    on_no_decision: Verdict = "keep"


class DecisionBody(BaseModel):
    decision: Verdict
    justification: str = Field(default="", max_length=2000)


class BulkDecisionBody(DecisionBody):
    items: list[int] = Field(min_length=1, max_length=campaigns.MAX_BULK)


class ReassignBody(BaseModel):
    items: list[int] = Field(min_length=1, max_length=campaigns.MAX_BULK)
    reviewer: str = Field(min_length=3, max_length=320)
    reason: str = Field(min_length=1, max_length=500)


class CloseBody(BaseModel):
    reason: str = Field(default="", max_length=500)


@router.post("/campaigns", status_code=202, response_model=CampaignView)
async def create_campaign(
    body: CampaignCreate,
    admin: AdminDep,
    db: DbDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> dict[str, Any]:
    template = CampaignTemplate(**body.model_dump())
    row = await campaigns.start_campaign(client, db, settings, catalog, template, admin.actor)
    return await db.run(lambda session: campaigns.campaign_view(session, row))


@router.get("/campaigns", response_model=list[CampaignView])
def list_campaigns(
    principal: PrincipalDep,
    session: SessionDep,
    catalog: CatalogDep,
    status: str | None = Query(default=None),
) -> list[dict[str, Any]]:
    return campaigns.list_campaigns(session, principal, catalog, status)


@router.get("/campaigns/{campaign_id}", response_model=CampaignView)
def get_campaign(
    campaign_id: str, principal: PrincipalDep, session: SessionDep, catalog: CatalogDep
) -> dict[str, Any]:
    """The campaign, with the licences its revocations reclaimed; for non-admins the counts
    and licences cover only the items they may see."""
    campaign = campaigns.get_campaign(session, campaign_id)
    scope = authz.campaign_scope(principal, catalog)
    licenses = campaign_licenses(session, catalog, campaign_id, scope)
    return campaigns.campaign_view(session, campaign, scope) | {"licenses": licenses}


@router.get("/campaigns/{campaign_id}/items", response_model=list[ItemView])
def list_items(
    campaign_id: str,
    principal: PrincipalDep,
    session: SessionDep,
    catalog: CatalogDep,
    reviewer: str | None = Query(default=None),
    decision: Annotated[Decision | None, Query()] = None,
    classification: Annotated[Classification | None, Query()] = None,
    app: str | None = Query(default=None),
    limit: int = Query(default=500, ge=1, le=5000),
    offset: int = Query(default=0, ge=0, le=MAX_OFFSET),
) -> list[dict[str, Any]]:
    """Items riskiest first: terminated but active, orphans, service accounts, the rest."""
    campaigns.get_campaign(session, campaign_id)
    items = campaigns.list_items(
        session,
        campaign_id,
        authz.visible_items(principal, catalog, reviewer),
        decision=decision,
        classification=classification,
        app=app,
        limit=limit,
        offset=offset,
    )
    return [campaigns.item_view(i) for i in items]


@router.post("/campaigns/{campaign_id}/items/{item_id}/decision", response_model=ItemView)
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
    [item] = campaigns.decide(
        settings,
        session,
        catalog,
        principal,
        campaign_id,
        [item_id],
        body.decision,
        body.justification,
    )
    return campaigns.item_view(item)


@router.post("/campaigns/{campaign_id}/decisions", response_model=BulkDecided)
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
    items = campaigns.decide(
        settings,
        session,
        catalog,
        principal,
        campaign_id,
        body.items,
        body.decision,
        body.justification,
    )
    return {"decided": len(items), "items": [campaigns.item_view(i) for i in items]}


@router.post("/campaigns/{campaign_id}/reassign", response_model=Reassigned)
def reassign_items(
    campaign_id: str,
    body: ReassignBody,
    admin: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
) -> dict[str, Any]:
    """Give pending items to another reviewer (admin; ``{items, reviewer, reason}``, reason
    required), all or nothing; audited on the campaign's trail as ``review.reassigned``."""
    items = review_assignments.reassign(
        settings, session, admin, campaign_id, body.items, body.reviewer, body.reason
    )
    return {"reassigned": len(items), "items": [campaigns.item_view(i) for i in items]}


@router.post("/campaigns/{campaign_id}/close", response_model=CampaignClosed)
async def close_campaign(
    campaign_id: str,
    admin: AdminDep,
    db: DbDep,
    client: TemporalDep,
    body: Annotated[CloseBody | None, Body()] = None,
) -> dict[str, Any]:
    """End the review now: on_no_decision for what is pending, then the revocations start."""
    reason = body.reason if body else ""
    result = await campaigns.close_campaign(db, client, admin, campaign_id, reason)
    view = await db.run(
        lambda s: campaigns.campaign_view(s, campaigns.get_campaign(s, campaign_id))
    )
    return {**view, "closed": result.model_dump()}


@router.post(
    "/campaigns/{campaign_id}/apps/{app}/accounts", status_code=202, response_model=UploadAccepted
)
async def upload_accounts(
    campaign_id: str,
    app: str,
    request: Request,
    principal: PrincipalDep,
    db: DbDep,
    catalog: CatalogDep,
    client: TemporalDep,
) -> dict[str, Any]:
    """A manual app's accounts as CSV (``text/csv``; header ``account,email,display_name,
    last_sign_in,account_id,active``, only ``account`` required). All or nothing: a bad row is
    422 naming its line (header = line 1) and column. Completes the owner's upload task."""
    body = await request.body()
    if len(body) > MAX_UPLOAD_BYTES:
        raise ApiError(413, "too_large", f"the CSV is over {MAX_UPLOAD_BYTES} bytes")
    return await campaign_uploads.upload_accounts(
        db, catalog, client, principal, campaign_id, app, body
    )


@router.get(
    "/campaigns/{campaign_id}/report",
    response_model=CampaignReport,
    responses={200: {"content": {"text/csv": {}}}},
)
def campaign_report(
    campaign_id: str,
    _: AdminDep,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> Any:
    """Evidence: one row per account (decision, who, why, when, revocation and its read-back);
    the JSON form adds a summary (counts by decision and classification, time to complete)."""
    campaign = campaigns.get_campaign(session, campaign_id)
    if format == "json":
        return campaign_reports.report_json(session, campaign, catalog)

    def rows() -> Iterator[str]:
        # Its own session: the request's may be closed while the response streams.
        with open_session(settings.effective_database_url) as own:
            yield from campaign_reports.report_csv(own, campaign_id)

    return StreamingResponse(
        rows(),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="access-review-{campaign_id}.csv"'},
    )
