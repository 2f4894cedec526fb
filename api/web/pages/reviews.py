"""Reviewer pages: my pending review items across open campaigns (``/reviews``), my items in
one campaign (``/campaigns/{id}/review``, the link every review notice carries), and the one
form both post to: keep / revoke per item or for the selected ones (one justification), undo
until the campaign closes."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session

from api.deps import CatalogDep, SessionDep, SettingsDep
from api.errors import status_of
from api.web.render import app_names, render
from api.web.session import WebPrincipal, check_csrf, page_router, safe_next
from config import Catalog, Settings
from domain.review import JUSTIFY_KEEP
from domain.status import OPEN_CAMPAIGNS, Verdict
from services import campaigns, review_views
from services.authz import Principal
from services.errors import DomainError, Invalid

router = page_router()


@router.get("/reviews")
def reviews_page(
    request: Request,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    done: str = Query(default=""),
) -> HTMLResponse:
    groups = review_views.my_open_reviews(session, principal)
    return render(
        request,
        "reviews.html",
        groups=groups,
        total=sum(len(rows) for _, rows in groups),
        app_names=app_names(catalog),
        justify_keep=JUSTIFY_KEEP,
        notice=done[:200],
    )


def _review_context(
    session: Session, catalog: Catalog, principal: Principal, campaign_id: str
) -> dict[str, Any]:
    campaign = campaigns.get_campaign(session, campaign_id)
    rows = review_views.review_items(session, principal, campaign_id)
    pending = sum(1 for r in rows if r.item.decision == "pending")
    return {
        "campaign": campaign,
        "rows": rows,
        "pending": pending,
        "decided": len(rows) - pending,
        "open": campaign.status in OPEN_CAMPAIGNS,
        "app_names": app_names(catalog),
        "justify_keep": JUSTIFY_KEEP,
    }


@router.get("/campaigns/{campaign_id}/review")
def review_page(
    request: Request,
    campaign_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    done: str = Query(default=""),
) -> HTMLResponse:
    context = _review_context(session, catalog, principal, campaign_id)
    return render(request, "review.html", notice=done[:200], **context)


def _ids(values: list[Any]) -> list[int]:
    try:
        return [int(v) for v in values]
    except ValueError:
        raise Invalid("bad_item", "an item id is not a number") from None


def _act(
    settings: Settings,
    session: Session,
    catalog: Catalog,
    principal: Principal,
    campaign_id: str,
    form: Any,
) -> str:
    """Apply the button pressed; returns what happened, in words."""
    action, _, one = str(form.get("action", "")).partition(":")
    if action == "undo":
        undone = campaigns.undo(settings, session, principal, campaign_id, _ids([one]))
        return f"{len(undone)} decision undone"
    verdicts: dict[str, Verdict] = {"keep": "keep", "revoke": "revoke"}
    if action not in verdicts:
        raise Invalid("bad_action", "choose keep, revoke or undo")
    if one:
        ids = _ids([one])
        justification = str(form.get(f"justification-{one}", "")).strip()
    else:
        ids = _ids(form.getlist("items"))
        justification = str(form.get("justification", "")).strip()
        if not ids:
            raise Invalid("nothing_selected", "select the items to decide first")
    decided = campaigns.decide(
        settings, session, catalog, principal, campaign_id, ids, verdicts[action], justification
    )
    word = "kept" if action == "keep" else "marked for revocation"
    return f"{len(decided)} {'account' if len(decided) == 1 else 'accounts'} {word}"


@router.post("/campaigns/{campaign_id}/review")
async def review_form(
    request: Request,
    campaign_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    settings: SettingsDep,
    catalog: CatalogDep,
) -> Response:
    form = await request.form()
    check_csrf(request, str(form.get("csrf_token", "")))
    back = safe_next(str(form.get("back", "")) or f"/campaigns/{campaign_id}/review")
    try:
        said = _act(settings, session, catalog, principal, campaign_id, form)
    except DomainError as exc:
        context = _review_context(session, catalog, principal, campaign_id)
        return render(request, "review.html", status_of(exc), error=exc.message, **context)
    return RedirectResponse(f"{back.split('?')[0]}?{urlencode({'done': said})}", status_code=303)
