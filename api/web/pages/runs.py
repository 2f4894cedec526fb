"""Runs: the list (by status), a run's page, and the fragment htmx polls while it is live."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from api.deps import CatalogDep, DbDep, SessionDep, TemporalDep
from api.web.render import app_names, render
from api.web.session import Refused, WebPrincipal, check_csrf, page_router
from config import Catalog
from db.models import Person
from domain.status import LIVE_RUNS, RUN_STATUSES, STAFF_ROLES
from services import offboardings, restores, tasks
from services.authz import Principal
from services.errors import Forbidden, NotFound
from services.run_licenses import reclaimed_steps

router = page_router()


def _require_runs_role(principal: Principal) -> None:
    if principal.role not in STAFF_ROLES:
        raise Refused(
            403,
            "Runs need the admin or app-admin role",
            f"You are signed in as {principal.actor} with the {principal.role} role.",
            need="admin or app-admin",
        )


@router.get("/runs")
def runs_page(
    request: Request,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    status: str = Query(default=""),
) -> HTMLResponse:
    _require_runs_role(principal)
    selected = status if status in RUN_STATUSES else ""
    runs = offboardings.list_runs(session, principal, catalog, status=selected or None, limit=200)
    views = offboardings.run_views(session, runs)
    return render(
        request,
        "runs.html",
        runs=runs,
        licenses=catalog.licenses_reclaimed(reclaimed_steps(views)),
        steps={v["run_id"]: v["apps"] for v in views},
        selected=selected,
        statuses=RUN_STATUSES,
        counts=offboardings.run_counts(session, principal, catalog),
        audit_link=principal.role == "admin",
    )


def _run_context(
    session: Session, principal: Principal, catalog: Catalog, run_id: str
) -> dict[str, Any]:
    _require_runs_role(principal)
    try:
        run = offboardings.get_run(session, principal, catalog, run_id)
    except NotFound:
        raise Refused(404, "Run not found", f"There is no offboarding run {run_id}.") from None
    except Forbidden:
        raise Refused(
            403,
            "Not one of your apps",
            "App admins see the runs that involve an app they own; this run involves none.",
            need="admin (or app-admin owning one of this run's apps)",
        ) from None
    names = app_names(catalog)
    [view] = offboardings.run_views(session, [run])
    for app in view["apps"]:
        app["name"] = names.get(app["app"], app["app"])
    # Identity providers first: their steps run first and gate everything else.
    idps = {a.id for a in catalog.apps if a.idp}
    view["apps"].sort(key=lambda a: a["app"] not in idps)
    person = session.get(Person, run.person_id)
    return {
        "run": view,
        "live": run.status in LIVE_RUNS,
        "tasks": tasks.run_tasks(session, run_id),
        "app_names": names,
        "person_name": person.name if person is not None else "",
        "can_approve": principal.role == "admin" and offboardings.awaiting_approval(session, run),
        # The restore plan (rescind after effect, rehire) is an admin's to read and approve.
        "restore": restores.restore_view(session, run_id) if principal.role == "admin" else None,
    }


@router.get("/runs/{run_id}")
def run_page(
    request: Request,
    run_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
) -> HTMLResponse:
    context = _run_context(session, principal, catalog, run_id)
    return render(request, "run.html", audit_link=principal.role == "admin", **context)


@router.post("/runs/{run_id}/approve")
async def approve_form(
    request: Request,
    run_id: str,
    principal: WebPrincipal,
    db: DbDep,
    client: TemporalDep,
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """An admin approves a run the burst guard holds (audited with their name)."""
    check_csrf(request, csrf_token)
    await offboardings.approve_run(db, client, principal, run_id)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.post("/runs/{run_id}/restore/approve")
async def approve_restore_form(
    request: Request,
    run_id: str,
    principal: WebPrincipal,
    db: DbDep,
    client: TemporalDep,
    csrf_token: Annotated[str, Form()] = "",
) -> RedirectResponse:
    """An admin approves the run's restore plan (audited with their name)."""
    check_csrf(request, csrf_token)
    await restores.approve_restore(db, client, principal, run_id)
    return RedirectResponse(f"/runs/{run_id}", status_code=303)


@router.get("/runs/{run_id}/live")
def run_live(
    request: Request,
    run_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
) -> HTMLResponse:
    """The fragment htmx polls; it stops polling itself once the run is finished."""
    context = _run_context(session, principal, catalog, run_id)
    return render(request, "_run_live.html", **context)
