"""My tasks (the inbox), a task's page, and its completion form (with an evidence file)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from fastapi import File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.deps import CatalogDep, DbDep, SessionDep, SettingsDep, TemporalDep
from api.errors import status_of
from api.web.render import OUTCOMES, app_names, due_badge, render
from api.web.session import Refused, WebPrincipal, check_csrf, page_router
from config import Catalog
from db.models import Person
from domain.status import STAFF_ROLES, Outcome
from services import authz, review_views, tasks
from services.authz import Principal
from services.errors import DomainError, NotFound
from services.evidence import store_evidence

router = page_router()


@router.get("/")
def inbox(
    request: Request, principal: WebPrincipal, session: SessionDep, catalog: CatalogDep
) -> HTMLResponse:
    open_tasks = tasks.list_tasks(session, principal, catalog, status="open")
    closed = tasks.list_tasks(
        session, principal, catalog, status="closed", limit=8, newest_first=True
    )
    overdue = sum(1 for t in open_tasks if (b := due_badge(t.due_at)) and b["cls"] == "overdue")
    return render(
        request,
        "inbox.html",
        tasks=open_tasks,
        closed=closed,
        overdue=overdue,
        reviews=review_views.pending_count(session, principal),
        app_names=app_names(catalog),
    )


def _task_context(
    session: Session, catalog: Catalog, principal: Principal, task_id: str
) -> dict[str, Any]:
    """What task.html shows; Refused (404) for a task the caller may not see."""
    try:
        task = tasks.get_task(session, principal, catalog, task_id)
    except NotFound:
        raise Refused(
            404,
            "Task not found",
            f"There is no task {task_id} for {principal.actor}. Tasks are shown to their "
            "assignees, to the owners of the app (app-admin role) and to admins.",
        ) from None
    owned = authz.owned_apps(principal, catalog)
    person = session.get(Person, task.person_id)
    return {
        "task": task,
        "app_name": app_names(catalog).get(task.app, task.app),
        "person_name": person.name if person is not None else "",
        "run_link": principal.role in STAFF_ROLES and (owned is None or task.app in owned),
        "audit_link": principal.role == "admin",
    }


@router.get("/tasks/{task_id}")
def task_page(
    request: Request,
    task_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    completed: bool = Query(default=False),
) -> HTMLResponse:
    context = _task_context(session, catalog, principal, task_id)
    return render(request, "task.html", just_completed=completed, **context)


@router.post("/tasks/{task_id}/complete")
async def complete_form(
    request: Request,
    task_id: str,
    principal: WebPrincipal,
    db: DbDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    client: TemporalDep,
    outcome: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    evidence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    check_csrf(request, csrf_token)
    await db.run(lambda s: _task_context(s, catalog, principal, task_id))
    form = {"outcome": outcome, "note": note}

    async def again(error: str, status: int) -> HTMLResponse:
        context = await db.run(lambda s: _task_context(s, catalog, principal, task_id))
        return render(request, "task.html", status, error=error, form=form, **context)

    if outcome not in OUTCOMES:
        return await again("Choose an outcome.", 422)
    if not note.strip():
        return await again("A note is required: say what you did (or why you could not).", 422)
    sha256: str | None = None
    if evidence is not None and evidence.filename:
        try:
            folder = settings.data_dir / "evidence"
            sha256 = await run_in_threadpool(store_evidence, evidence.file, folder)
        except DomainError as exc:
            return await again(f"Evidence not accepted: {exc.message}.", 422)
    try:
        chosen = cast("Outcome", outcome)
        await tasks.complete_task(
            db, catalog, client, principal, task_id, chosen, note.strip(), sha256
        )
    except NotFound:
        raise
    except DomainError as exc:
        return await again(exc.message, status_of(exc))
    return RedirectResponse(f"/tasks/{task_id}?completed=1", status_code=303)
