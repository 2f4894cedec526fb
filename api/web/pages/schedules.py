"""The quarterly campaign schedules (admins): see them with their next runs, create or replace
one (the same template fields as a campaign, plus a time zone), delete one. The same Temporal
Schedules as ``offboard campaign schedule``."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from temporalio.service import RPCError

from api.deps import CatalogDep, SettingsDep, TemporalDep
from api.web.pages.campaigns import require_admin_page, template_from_form
from api.web.render import render
from api.web.session import WebPrincipal, check_csrf, page_router
from services import campaign_schedules
from services.errors import DomainError

router = page_router()


def _back(**query: str) -> RedirectResponse:
    return RedirectResponse(f"/campaigns/schedules?{urlencode(query)}", status_code=303)


@router.get("/campaigns/schedules")
async def schedules_page(
    request: Request,
    principal: WebPrincipal,
    catalog: CatalogDep,
    client: TemporalDep,
    saved: str = "",
    error: str = "",
) -> HTMLResponse:
    require_admin_page(principal)
    try:
        schedules = await campaign_schedules.list_schedules(client)
    except RPCError as exc:
        schedules, error = [], f"Temporal did not answer: {exc.message}"
    return render(
        request,
        "schedules.html",
        schedules=schedules,
        apps=[a for a in catalog.apps if a.idp_settings is None],
        saved=saved[:80],
        error=error[:300],
    )


@router.post("/campaigns/schedules")
async def save_schedule(
    request: Request,
    principal: WebPrincipal,
    settings: SettingsDep,
    catalog: CatalogDep,
    client: TemporalDep,
    schedule_name: Annotated[str, Form()] = "quarterly",
    name: Annotated[str, Form()] = "",
    apps: Annotated[list[str] | None, Form()] = None,
    due_in_days: Annotated[str, Form()] = "14",
    reviewer: Annotated[str, Form()] = "manager",
    on_no_decision: Annotated[str, Form()] = "keep",
    time_zone: Annotated[str, Form()] = "UTC",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    require_admin_page(principal)
    template = template_from_form(name, apps, due_in_days, reviewer, on_no_decision)
    if isinstance(template, str):
        return _back(error=template)
    try:
        await campaign_schedules.save_quarterly(
            client, catalog, schedule_name.strip(), template, time_zone.strip(), settings.task_queue
        )
    except DomainError as exc:
        return _back(error=exc.message)
    return _back(saved=schedule_name.strip())


@router.post("/campaigns/schedules/{name}/delete")
async def delete_schedule(
    request: Request,
    name: str,
    principal: WebPrincipal,
    client: TemporalDep,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    check_csrf(request, csrf_token)
    require_admin_page(principal)
    await campaign_schedules.delete_schedule(client, name)
    return RedirectResponse("/campaigns/schedules", status_code=303)
