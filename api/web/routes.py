"""HTML pages: sign-in, my tasks, a task's completion form, runs (live), a person's audit trail.

The pages follow the JSON API's rules (``api.routes.tasks.can_see``, admin-only audit) and share
its code paths (``api.routes.tasks.complete``). The session cookie holds the API token itself;
``api.deps.get_principal`` accepts it too. Every form carries a CSRF token: an HMAC of the
session token under a fixed label, so only a page that was rendered for this session knows it
(and it stays valid across API replicas and restarts without a shared server secret).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from sqlalchemy import func
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from api.deps import (
    CatalogDep,
    Db,
    Principal,
    SessionDep,
    SettingsDep,
    TemporalDep,
    owned_apps,
)
from api.errors import ApiError
from api.offboarding_service import LIVE, run_view
from api.routes.tasks import can_see, complete
from api.tokens import lookup
from config import Catalog, Settings
from db import audit
from db.models import HumanTask, OffboardingRun, Person, Step
from workflows.types import Outcome

SESSION_COOKIE = "offboard_session"
LOGIN_CSRF_COOKIE = "offboard_login_csrf"
SESSION_MAX_AGE = 12 * 3600
MAX_EVIDENCE_BYTES = 25 * 1024 * 1024
OUTCOMES = {
    "done": "Done: account removed",
    "not_applicable": "Not applicable: no account there",
    "could_not_complete": "Could not complete: needs an admin",
}
STAFF = ("admin", "app-admin")  # who may see runs (app admins: runs of the apps they own)
RUN_STATUSES = ("scheduled", "running", "waiting_human", "completed", "failed", "cancelled")
HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
_CSRF_LABEL = b"offboard web form v1"
_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class NeedLogin(Exception):
    """No (valid) session: the page redirects to /login and comes back afterwards."""


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str, need: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.need = need


def _next_target(request: Request) -> str:
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    return target


class WebRoute(APIRoute):
    """Errors on a page become pages: 401 → /login, 403 → which role is needed, else a message."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except NeedLogin:
                login = "/login?next=" + quote(_next_target(request), safe="/")
                if request.headers.get("HX-Request"):
                    return Response(status_code=401, headers={"HX-Redirect": login})
                return RedirectResponse(login, status_code=303)
            except Refused as exc:
                return error_page(request, exc.status, exc.title, exc.message, exc.need)
            except ApiError as exc:
                if exc.status == 401:
                    return RedirectResponse("/login", status_code=303)
                title = _TITLES.get(exc.status, "Error")
                return error_page(request, exc.status, title, exc.message)

        return route


_TITLES = {403: "Not allowed", 404: "Not found", 409: "Conflict", 503: "Unavailable"}
router = APIRouter(route_class=WebRoute, include_in_schema=False)


# ----- sessions and CSRF ---------------------------------------------------------------------


def csrf_token(session_token: str) -> str:
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, given: str) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session_token), given)


def web_principal(request: Request, session: SessionDep) -> Principal:
    token = request.cookies.get(SESSION_COOKIE, "")
    row = lookup(session, token) if token else None
    if row is None:
        raise NeedLogin()
    principal = Principal(name=row.name, role=row.role, email=row.email)  # type: ignore[arg-type]
    request.state.principal = principal
    request.state.session_token = token
    return principal


WebPrincipal = Annotated[Principal, Depends(web_principal)]


def _check_csrf(request: Request, given: str) -> None:
    if not csrf_ok(request.state.session_token, given):
        raise Refused(
            403,
            "Form expired",
            "This form's security token is missing or wrong. Reload the page and try again.",
        )


def _secure_cookie(settings: Settings) -> bool:
    return settings.effective_public_url.lower().startswith("https://")


def _safe_next(target: str) -> str:
    """Only same-site paths: never //host or /\\host (open redirects)."""
    if target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


# ----- rendering helpers ---------------------------------------------------------------------


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _span(seconds: float) -> str:
    seconds = abs(seconds)
    if seconds < 60:
        return "<1m"
    if seconds < 3600:
        return f"{int(seconds // 60)}m"
    if seconds < 48 * 3600:
        return f"{int(seconds // 3600)}h"
    return f"{int(seconds // 86400)}d"


def when(value: datetime | str | None, seconds: bool = False) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    aware = _aware(value)
    assert aware is not None
    return aware.astimezone(UTC).strftime(
        "%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC"
    )


def ago(value: datetime | None) -> str:
    aware = _aware(value)
    if aware is None:
        return ""
    delta = (datetime.now(UTC) - aware).total_seconds()
    if abs(delta) < 60:
        return "just now"
    return f"{_span(delta)} ago" if delta >= 0 else f"in {_span(delta)}"


def pretty(value: Any) -> str:
    """An audit detail value for people: lists joined, records on their own lines."""
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        if all(not isinstance(v, dict | list) for v in value):
            return ", ".join(str(v) for v in value) or "—"
        return "\n".join(pretty(v) for v in value)
    if isinstance(value, dict):
        return " · ".join(f"{k} {pretty(v)}" for k, v in value.items())
    return str(value)


def due_badge(due_at: datetime | None, status: str = "open") -> dict[str, str] | None:
    """A due badge for an open task: overdue (red), due within 4 h (amber), else neutral."""
    due = _aware(due_at)
    if due is None or status != "open":
        return None
    left = (due - datetime.now(UTC)).total_seconds()
    if left < 0:
        return {"cls": "overdue", "label": f"overdue {_span(left)}", "title": when(due)}
    cls = "due-soon" if left < 4 * 3600 else "due"
    return {"cls": cls, "label": f"due in {_span(left)}", "title": when(due)}


def app_name(catalog: Catalog, app_id: str) -> str:
    try:
        return catalog.app(app_id).name
    except KeyError:
        return app_id


TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["ago"] = ago
TEMPLATES.env.filters["pretty"] = pretty
TEMPLATES.env.globals["due_badge"] = due_badge
TEMPLATES.env.globals["OUTCOMES"] = OUTCOMES


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    token = getattr(request.state, "session_token", None)
    me: Principal | None = getattr(request.state, "principal", None)
    context = {
        "me": me,
        "csrf": csrf_token(token) if token else "",
        "can_runs": me is not None and me.role in STAFF,
        **context,
    }
    response = TEMPLATES.TemplateResponse(request, name, context, status_code=status_code)
    response.headers.update(_SECURITY_HEADERS)
    return response


def error_page(
    request: Request, status: int, title: str, message: str, need: str | None = None
) -> HTMLResponse:
    return render(
        request, "error.html", status, code=status, title=title, message=message, need=need
    )


# ----- visibility (the JSON API's rules) -----------------------------------------------------


def _require_runs_role(principal: Principal) -> None:
    if principal.role not in STAFF:
        raise Refused(
            403,
            "Runs need the admin or app-admin role",
            f"You are signed in as {principal.actor} with the {principal.role} role.",
            need="admin or app-admin",
        )


def _visible_run(
    session: Session, principal: Principal, catalog: Catalog, run_id: str
) -> OffboardingRun:
    _require_runs_role(principal)
    run = session.get(OffboardingRun, run_id)
    if run is None:
        raise Refused(404, "Run not found", f"There is no offboarding run {run_id}.")
    owned = owned_apps(principal, catalog)
    if owned is None:
        return run
    apps = set(session.exec(select(Step.app).where(Step.run_id == run_id)).all())
    if not apps & owned:
        raise Refused(
            403,
            "Not one of your apps",
            "App admins see the runs that involve an app they own; this run involves none.",
            need="admin (or app-admin owning one of this run's apps)",
        )
    return run


def _person_name(session: Session, person_id: str) -> str:
    person = session.get(Person, person_id)
    return person.name if person is not None else ""


# ----- sign-in -------------------------------------------------------------------------------


def _login_page(
    request: Request, target: str, status: int = 200, error: str | None = None
) -> HTMLResponse:
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request, "login.html", status, next=_safe_next(target), login_csrf=nonce, error=error
    )
    # Double-submit token against login CSRF (signing a victim in as someone else).
    response.set_cookie(
        LOGIN_CSRF_COOKIE, nonce, max_age=3600, httponly=True, samesite="strict", path="/login"
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str = Query(default="/")) -> HTMLResponse:
    return _login_page(request, next)


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    target = _safe_next(next)
    nonce = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not nonce or not hmac.compare_digest(nonce, csrf_token):
        return _login_page(request, target, 403, "The sign-in form expired. Please try again.")
    token = token.strip()
    row = lookup(session, token) if token else None
    if row is None:
        return _login_page(request, target, 401, "That token is unknown or revoked.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=_secure_cookie(settings),
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.api_route("/logout", methods=["GET", "POST"])
def logout(settings: SettingsDep) -> Response:
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(
        SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure_cookie(settings)
    )
    return response


# ----- my tasks ------------------------------------------------------------------------------


@router.get("/")
def inbox(
    request: Request, principal: WebPrincipal, session: SessionDep, catalog: CatalogDep
) -> HTMLResponse:
    open_query = select(HumanTask).where(HumanTask.status == "open").order_by(col(HumanTask.due_at))
    tasks = [t for t in session.exec(open_query).all() if can_see(principal, t, catalog)]
    closed_query = (
        select(HumanTask)
        .where(HumanTask.status != "open")
        .order_by(col(HumanTask.completed_at).desc(), col(HumanTask.created_at).desc())
        .limit(200)
    )
    closed = [t for t in session.exec(closed_query).all() if can_see(principal, t, catalog)][:8]
    overdue = sum(1 for t in tasks if (b := due_badge(t.due_at)) and b["cls"] == "overdue")
    names = {a.id: a.name for a in catalog.apps}
    return render(
        request, "inbox.html", tasks=tasks, closed=closed, overdue=overdue, app_names=names
    )


def _task_page(
    request: Request,
    session: Session,
    catalog: Catalog,
    principal: Principal,
    task: HumanTask,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    owned = owned_apps(principal, catalog)
    run_link = principal.role in STAFF and (owned is None or task.app in owned)
    return render(
        request,
        "task.html",
        status,
        task=task,
        app_name=app_name(catalog, task.app),
        person_name=_person_name(session, task.person_id),
        run_link=run_link,
        audit_link=principal.role == "admin",
        **context,
    )


def _visible_task(
    session: Session, principal: Principal, catalog: Catalog, task_id: str
) -> HumanTask:
    task = session.get(HumanTask, task_id)
    if task is None or not can_see(principal, task, catalog):
        raise Refused(
            404,
            "Task not found",
            f"There is no task {task_id} for {principal.actor}. Tasks are shown to their "
            "assignees, to the owners of the app (app-admin role) and to admins.",
        )
    return task


@router.get("/tasks/{task_id}")
def task_page(
    request: Request,
    task_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    completed: bool = Query(default=False),
) -> HTMLResponse:
    task = _visible_task(session, principal, catalog, task_id)
    return _task_page(request, session, catalog, principal, task, just_completed=completed)


def _store_evidence(source: IO[bytes], folder: Path) -> str:
    """Copy an upload to ``folder/<sha256>`` (content-addressed, written atomically)."""
    folder.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    fd, temp = tempfile.mkstemp(dir=folder, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                size += len(chunk)
                if size > MAX_EVIDENCE_BYTES:
                    limit = MAX_EVIDENCE_BYTES >> 20
                    raise ValueError(f"evidence files are limited to {limit} MiB")
                digest.update(chunk)
                out.write(chunk)
        if size == 0:
            raise ValueError("the evidence file is empty")
        os.replace(temp, folder / digest.hexdigest())
    finally:
        if os.path.exists(temp):
            os.unlink(temp)
    return digest.hexdigest()


@router.post("/tasks/{task_id}/complete")
async def complete_form(
    request: Request,
    task_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    settings: SettingsDep,
    client: TemporalDep,
    outcome: Annotated[str, Form()] = "",
    note: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    evidence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    _check_csrf(request, csrf_token)
    task = _visible_task(session, principal, catalog, task_id)
    form = {"outcome": outcome, "note": note}

    def again(error: str, status: int) -> HTMLResponse:
        return _task_page(
            request, session, catalog, principal, task, status, error=error, form=form
        )

    if outcome not in OUTCOMES:
        return again("Choose an outcome.", 422)
    if not note.strip():
        return again("A note is required: say what you did (or why you could not).", 422)
    sha256: str | None = None
    if evidence is not None and evidence.filename:
        try:
            sha256 = await run_in_threadpool(
                _store_evidence, evidence.file, settings.data_dir / "evidence"
            )
        except ValueError as exc:
            return again(f"Evidence not accepted: {exc}.", 422)
    try:
        chosen = cast("Outcome", outcome)
        db = Db(settings.effective_database_url)
        await complete(db, catalog, client, principal, task_id, chosen, note.strip(), sha256)
    except ApiError as exc:
        if exc.status == 404:
            raise
        session.refresh(task)
        return again(exc.message, exc.status)
    return RedirectResponse(f"/tasks/{task_id}?completed=1", status_code=303)


# ----- runs ----------------------------------------------------------------------------------


@router.get("/runs")
def runs_page(
    request: Request,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
    status: str = Query(default=""),
) -> HTMLResponse:
    _require_runs_role(principal)
    query = select(OffboardingRun).order_by(col(OffboardingRun.created_at).desc()).limit(200)
    counting = select(OffboardingRun.status, func.count()).group_by(OffboardingRun.status)
    owned = owned_apps(principal, catalog)
    if owned is not None:
        mine = col(OffboardingRun.run_id).in_(select(Step.run_id).where(col(Step.app).in_(owned)))
        query = query.where(mine)
        counting = counting.where(mine)
    if status in RUN_STATUSES:
        query = query.where(OffboardingRun.status == status)
    else:
        status = ""
    counts = {row[0]: row[1] for row in session.exec(counting).all()}
    runs = session.exec(query).all()
    steps: dict[str, list[Step]] = {}
    if runs:
        rows = session.exec(select(Step).where(col(Step.run_id).in_([r.run_id for r in runs])))
        for step in rows.all():
            steps.setdefault(step.run_id, []).append(step)
    return render(
        request,
        "runs.html",
        runs=runs,
        steps=steps,
        selected=status,
        statuses=RUN_STATUSES,
        counts=counts,
        audit_link=principal.role == "admin",
    )


def _run_context(session: Session, catalog: Catalog, run: OffboardingRun) -> dict[str, Any]:
    view = run_view(session, run)
    for app in view["apps"]:
        app["name"] = app_name(catalog, app["app"])
    # Identity providers first: their steps run first and gate everything else.
    idps = {a.id for a in catalog.apps if a.idp}
    view["apps"].sort(key=lambda a: a["app"] not in idps)
    tasks = session.exec(
        select(HumanTask).where(HumanTask.run_id == run.run_id).order_by(col(HumanTask.created_at))
    ).all()
    names = {a.id: a.name for a in catalog.apps}
    return {"run": view, "live": run.status in LIVE, "tasks": tasks, "app_names": names}


@router.get("/runs/{run_id}")
def run_page(
    request: Request,
    run_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
) -> HTMLResponse:
    run = _visible_run(session, principal, catalog, run_id)
    return render(
        request,
        "run.html",
        person_name=_person_name(session, run.person_id),
        audit_link=principal.role == "admin",
        **_run_context(session, catalog, run),
    )


@router.get("/runs/{run_id}/live")
def run_live(
    request: Request,
    run_id: str,
    principal: WebPrincipal,
    session: SessionDep,
    catalog: CatalogDep,
) -> HTMLResponse:
    """The fragment htmx polls; it stops polling itself once the run is finished."""
    run = _visible_run(session, principal, catalog, run_id)
    return render(request, "_run_live.html", **_run_context(session, catalog, run))


# ----- audit ---------------------------------------------------------------------------------


@router.get("/people/{person_id}/audit")
def audit_page(
    request: Request, person_id: str, principal: WebPrincipal, session: SessionDep
) -> HTMLResponse:
    if principal.role != "admin":
        raise Refused(
            403,
            "Audit trails need the admin role",
            f"You are signed in as {principal.actor} with the {principal.role} role.",
            need="admin",
        )
    events = audit.person_events(session, person_id)
    if not events:
        raise Refused(404, "No audit trail", f"There are no audit events for {person_id}.")
    person = session.get(Person, person_id)
    return render(
        request,
        "audit.html",
        person_id=person_id,
        person=person,
        events=events,
        check=audit.verify(events),
    )
