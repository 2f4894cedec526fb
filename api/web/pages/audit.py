"""A person's audit trail as a timeline, with the hash chain's verdict (admins only)."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from api.deps import SessionDep
from api.web.render import render
from api.web.session import Refused, WebPrincipal, page_router
from db import audit
from db.models import Person

router = page_router()


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
    return render(
        request,
        "audit.html",
        person_id=person_id,
        person=session.get(Person, person_id),
        events=events,
        check=audit.verify(events),
    )
