"""Campaign pages for admins (and, scoped to their apps, app admins): the list with progress
and the start form (``/campaigns``), one campaign's progress (``/campaigns/{id}``: counts by
decision and classification, per reviewer, who has not started, notices sent, the population
collected, *Close now* behind a confirmation, the evidence downloads; prints cleanly)."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import Session

from api.deps import CatalogDep, DbDep, SessionDep, SettingsDep, TemporalDep
from api.web.render import app_names, render
from api.web.session import Refused, WebPrincipal, check_csrf, page_router
from config import Catalog
from domain.status import OPEN_CAMPAIGNS, STAFF_ROLES
from services import authz, campaigns, review_views
from services.authz import Principal
from services.campaign_licenses import campaign_licenses
from workflows.campaign_messages import CampaignTemplate

router = page_router()


def _staff(principal: Principal, campaign_id: str | None = None) -> None:
    if principal.role not in STAFF_ROLES:
        mine = f" Your own items are at /campaigns/{campaign_id}/review." if campaign_id else ""
        raise Refused(
            403,
            "Campaigns need the admin or app-admin role",
            f"You are signed in as {principal.actor} with the {principal.role} role.{mine}",
            need="admin or app-admin",
        )


def require_admin_page(principal: Principal) -> None:
    if principal.role != "admin":
        raise Refused(
            403,
            "Only an admin can do this",
            f"You are signed in as {principal.actor} with the {principal.role} role.",
            need="admin",
        )


def template_from_form(
    name: str, apps: list[str] | None, due_in_days: str, reviewer: str, on_no_decision: str
) -> CampaignTemplate | str:
    """The campaign template a start or schedule form describes, or what is wrong with it."""
    try:
        return CampaignTemplate.model_validate(
            {
                "name": name.strip(),
                "apps": apps or None,
                "due_in_days": due_in_days,
                "reviewer": reviewer,
                "on_no_decision": on_no_decision,
            }
        )
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        return problems[:300]


@router.get("/campaigns")
def campaigns_page(
    request: Request,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    error: str = "",
) -> HTMLResponse:
    _staff(principal)
    views = campaigns.list_campaigns(session, principal, catalog)
    reviewable = [a for a in catalog.apps if a.idp_settings is None]
    return render(
        request,
        "campaigns.html",
        campaigns=views,
        apps=reviewable,
        error=error,
        can_start=principal.role == "admin",
    )


@router.post("/campaigns")
async def start_form(
    request: Request,
    principal: WebPrincipal,
    db: DbDep,
    settings: SettingsDep,
    catalog: CatalogDep,
    client: TemporalDep,
    name: Annotated[str, Form()] = "",
    apps: Annotated[list[str] | None, Form()] = None,
    due_in_days: Annotated[str, Form()] = "14",
    reviewer: Annotated[str, Form()] = "manager",
    on_no_decision: Annotated[str, Form()] = "keep",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    require_admin_page(principal)
    template = template_from_form(name, apps, due_in_days, reviewer, on_no_decision)
    if isinstance(template, str):
        return RedirectResponse(f"/campaigns?{urlencode({'error': template})}", status_code=303)
    row = await campaigns.start_campaign(
        client, db, settings, catalog, template, principal.actor, "api"
    )
    return RedirectResponse(f"/campaigns/{row.id}", status_code=303)


def _campaign_context(
    session: Session, principal: Principal, catalog: Catalog, campaign_id: str
) -> dict[str, Any]:
    campaign = campaigns.get_campaign(session, campaign_id)
    scope = authz.campaign_scope(principal, catalog)
    view = campaigns.campaign_view(session, campaign, scope)
    progress = review_views.reviewer_progress(session, campaign_id, scope)
    return {
        "c": view,
        "licenses": campaign_licenses(session, catalog, campaign_id, scope),
        "progress": progress,
        "not_started": [p for p in progress if not p["started"] and p["pending"]],
        "classes": review_views.by_classification(session, campaign_id, scope),
        "notices": review_views.notices(session, campaign_id) if scope is None else [],
        "open": campaign.status in OPEN_CAMPAIGNS,
        "is_admin": principal.role == "admin",
        "app_names": app_names(catalog),
    }


@router.get("/campaigns/{campaign_id}")
def campaign_page(
    request: Request,
    campaign_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    closed: bool = False,
) -> HTMLResponse:
    _staff(principal, campaign_id)
    context = _campaign_context(session, principal, catalog, campaign_id)
    return render(request, "campaign.html", just_closed=closed, **context)


@router.get("/campaigns/{campaign_id}/live")
def campaign_live(
    request: Request,
    campaign_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
) -> HTMLResponse:
    """The progress fragment htmx polls; it stops polling once the campaign has finished."""
    _staff(principal, campaign_id)
    context = _campaign_context(session, principal, catalog, campaign_id)
    return render(request, "_campaign_live.html", **context)


@router.post("/campaigns/{campaign_id}/close")
async def close_form(
    request: Request,
    campaign_id: str,
    principal: WebPrincipal,
    db: DbDep,
    client: TemporalDep,
    reason: Annotated[str, Form()] = "",
    confirm: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    require_admin_page(principal)
    if confirm != "yes":
        return RedirectResponse(f"/campaigns/{campaign_id}", status_code=303)
    await campaigns.close_campaign(db, client, principal, campaign_id, reason.strip()[:500])
    return RedirectResponse(f"/campaigns/{campaign_id}?closed=1", status_code=303)
