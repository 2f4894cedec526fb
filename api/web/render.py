"""Rendering pages: the Jinja2 templates, their filters, security headers, the error page."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from config import Catalog
from db.models import aware
from domain.status import STAFF_ROLES
from services.authz import Principal

HERE = Path(__file__).parent
STATIC_DIR = HERE / "static"
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
OUTCOMES = {
    "done": "Done: account removed",
    "not_applicable": "Not applicable: no account there",
    "could_not_complete": "Could not complete: needs an admin",
}
# The same three outcomes, in the words of what the task asks (the values are the API's).
_DONE_AS = {
    "handover": ("Done: handed over", "Not applicable: nothing to hand over"),
    "restore": ("Done: access restored", "Not applicable: nothing to restore there"),
}
_NOTE_HINTS = {
    "handover": "e.g. Reassigned 12 contracts and 3 workflows to the manager.",
    "restore": "e.g. Re-enabled the account in Control Center, added back to 3 workspaces.",
}
_REMOVAL_HINT = "e.g. Disabled the account in Control Center, removed from 3 workspaces."


def outcomes_for(kind: str) -> dict[str, str]:
    """The outcome labels for a task of ``kind`` (manual_step, exception, handover, restore)."""
    if kind not in _DONE_AS:
        return OUTCOMES
    done, not_applicable = _DONE_AS[kind]
    return {**OUTCOMES, "done": done, "not_applicable": not_applicable}


def note_hint(kind: str) -> str:
    """The note field's example for a task of ``kind``."""
    return _NOTE_HINTS.get(
        kind,
        "What did you do? e.g. Disabled the account in Control Center, removed from 3 workspaces.",
    )


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
    return (
        aware(value)
        .astimezone(UTC)
        .strftime("%Y-%m-%d %H:%M:%S UTC" if seconds else "%Y-%m-%d %H:%M UTC")
    )


def ago(value: datetime | None) -> str:
    if value is None:
        return ""
    delta = (datetime.now(UTC) - aware(value)).total_seconds()
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
    if due_at is None or status != "open":
        return None
    due = aware(due_at)
    left = (due - datetime.now(UTC)).total_seconds()
    if left < 0:
        return {"cls": "overdue", "label": f"overdue {_span(left)}", "title": when(due)}
    cls = "due-soon" if left < 4 * 3600 else "due"
    return {"cls": cls, "label": f"due in {_span(left)}", "title": when(due)}


def app_names(catalog: Catalog) -> dict[str, str]:
    return {a.id: a.name for a in catalog.apps}


TEMPLATES.env.filters["when"] = when
TEMPLATES.env.filters["ago"] = ago
TEMPLATES.env.filters["pretty"] = pretty
TEMPLATES.env.globals["due_badge"] = due_badge
TEMPLATES.env.globals["outcomes_for"] = outcomes_for
TEMPLATES.env.globals["note_hint"] = note_hint


def csrf_token(session_token: str) -> str:
    """The forms' CSRF token: an HMAC of the session token under a fixed label."""
    return hmac.new(session_token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def render(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    token = getattr(request.state, "session_token", None)
    me: Principal | None = getattr(request.state, "principal", None)
    context = {
        "me": me,
        "csrf": csrf_token(token) if token else "",
        "can_runs": me is not None and me.role in STAFF_ROLES,
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
