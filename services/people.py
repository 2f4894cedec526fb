"""The HR directory from a CSV file, for people no webhook told us about.

``text/csv`` with the header ``id,email,name,manager_email,department,status,terminated_at``
(``id`` and ``email`` required; ``status`` is ``active`` or ``terminated``, empty = active;
``terminated_at`` an ISO-8601 date or date-time). All or nothing: people are upserted by id; a
bad row is ``CsvProblem`` naming the file line (header = line 1) and the column.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from db.models import Person, utcnow
from domain.status import PERSON_STATUSES
from services.csv_import import CsvProblem, decode_csv, parse_instant, read_csv

PEOPLE_COLUMNS = ("id", "email", "name", "manager_email", "department", "status", "terminated_at")
CHUNK = 500


def _is_email(value: str) -> bool:
    return "@" in value and not any(c.isspace() for c in value)


def parse_people_csv(text: str) -> list[dict[str, Any]]:
    people: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for line, raw in read_csv(text, PEOPLE_COLUMNS, ("id", "email")):

        def bad(column: str, message: str, line: int = line) -> None:
            problems.append({"line": line, "column": column, "message": message})

        person_id, email = raw.get("id", ""), raw.get("email", "")
        if not person_id:
            bad("id", "required (the HR employee id)")
        elif person_id in seen:
            bad("id", f"duplicate of line {seen[person_id]}")
        else:
            seen[person_id] = line
        if not email or not _is_email(email):
            bad("email", f"not an email address: {email!r}")
        manager = raw.get("manager_email", "")
        if manager and not _is_email(manager):
            bad("manager_email", f"not an email address: {manager!r}")
        status = (raw.get("status", "") or "active").lower()
        if status not in PERSON_STATUSES:
            bad("status", f"expected active or terminated, got {raw.get('status')!r}")
        terminated_at: datetime | None = None
        if raw.get("terminated_at"):
            try:
                terminated_at = parse_instant(raw["terminated_at"])
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
        raise CsvProblem(problems)
    return people


def import_people(session: Session, body: bytes) -> int:
    """Parse and upsert every person in one transaction; returns how many were imported."""
    people = parse_people_csv(decode_csv(body))
    now = utcnow()
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
    return len(people)
