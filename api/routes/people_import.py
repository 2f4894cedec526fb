"""POST /api/v1/people:import: the HR directory as CSV, for people no webhook told us about.

``text/csv`` with the header ``id,email,name,manager_email,department,status,terminated_at``
(``id`` and ``email`` required; ``status`` is ``active`` or ``terminated``, empty = active;
``terminated_at`` an ISO-8601 date or date-time). Synchronous and all or nothing: people are
upserted by id and the answer is 200 ``{imported: N}``; a bad row is 422 naming the file line
(header = line 1) and the column, and nothing is imported.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import col, select

from api import campaign_service as svc
from api.deps import AdminDep, SessionDep
from api.errors import ApiError
from db.models import Person

router = APIRouter(tags=["people"])

PEOPLE_COLUMNS = ("id", "email", "name", "manager_email", "department", "status", "terminated_at")
MAX_IMPORT_BYTES = 50 * 1024 * 1024
CHUNK = 500


def parse_people_csv(text: str) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, raw in svc.read_csv(text, PEOPLE_COLUMNS, ("id", "email")):

        def bad(column: str, message: str, line: int = line) -> None:
            problems.append({"line": line, "column": column, "message": message})

        person_id, email = raw.get("id", ""), raw.get("email", "")
        if not person_id:
            bad("id", "required (the HR employee id)")
        elif person_id in seen:
            bad("id", f"duplicate of line {seen[person_id]}")
        else:
            seen[person_id] = line
        if not email or "@" not in email or any(c.isspace() for c in email):
            bad("email", f"not an email address: {email!r}")
        manager = raw.get("manager_email", "")
        if manager and ("@" not in manager or any(c.isspace() for c in manager)):
            bad("manager_email", f"not an email address: {manager!r}")
        status = (raw.get("status", "") or "active").lower()
        if status not in ("active", "terminated"):
            bad("status", f"expected active or terminated, got {raw.get('status')!r}")
        terminated_at: datetime | None = None
        if raw.get("terminated_at"):
            try:
                terminated_at = svc.parse_instant(raw["terminated_at"])
            except ValueError:
                bad("terminated_at", f"not an ISO-8601 date: {raw['terminated_at']!r}")
        people.append(
            {
                "id": person_id,
                "email": email,
                "name": raw.get("name", ""),
                "manager_email": manager or None,
                "department": raw.get("department") or None,
                "status": status,
                "terminated_at": terminated_at,
            }
        )
    if problems:
        raise svc.CsvProblem(problems)
    return people


@router.post("/people:import")
async def import_people(request: Request, _: AdminDep, session: SessionDep) -> dict[str, int]:
    body = await request.body()
    if len(body) > MAX_IMPORT_BYTES:
        raise ApiError(413, "too_large", f"the CSV is over {MAX_IMPORT_BYTES} bytes")
    try:
        people = parse_people_csv(svc.decode_csv(body))
    except svc.CsvProblem as exc:
        raise exc.api_error() from None
    now = datetime.now(UTC)
    for start in range(0, len(people), CHUNK):
        chunk = people[start : start + CHUNK]
        existing = {
            p.id: p
            for p in session.exec(
                select(Person).where(col(Person.id).in_([p["id"] for p in chunk]))
            ).all()
        }
        for fields in chunk:
            person = existing.get(fields["id"]) or Person(id=fields["id"], email=fields["email"])
            for key, value in fields.items():
                setattr(person, key, value)
            person.updated_at = now
            session.add(person)
    session.commit()
    return {"imported": len(people)}
