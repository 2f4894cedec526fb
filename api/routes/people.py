"""A person's audit trail, as JSON with a chain check or as CSV for auditors."""

from __future__ import annotations

import csv
import io
import json
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import AdminDep, SessionDep
from api.errors import ApiError
from db import audit
from domain.audit import Subject

router = APIRouter(tags=["people"])


def audit_csv(events: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=audit.EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for event in events:
        writer.writerow({**event, "detail": json.dumps(event["detail"], sort_keys=True)})
    return out.getvalue()


def trail_response(
    session: SessionDep, subject: Subject, format: Literal["json", "csv"]
) -> dict[str, Any] | Response:
    """A subject's trail as JSON (with the chain check) or CSV; 404 when it has none."""
    events = audit.trail(session, subject)
    if not events:
        raise ApiError(404, "not_found", f"no audit events for {subject.kind} {subject.id!r}")
    if format == "csv":
        return Response(
            audit_csv(events),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="audit-{subject.id}.csv"'},
        )
    return {subject.kind: subject.id, "events": events, "chain_valid": audit.verify(events).valid}


@router.get("/people/{person_id}/audit", response_model=None)
def person_audit(
    person_id: str,
    _: AdminDep,
    session: SessionDep,
    format: Literal["json", "csv"] = Query(default="json"),
) -> dict[str, Any] | Response:
    return trail_response(session, Subject.person(person_id), format)
