"""Audit trails for auditors: a subject's events with the chain check, or as CSV."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlmodel import Session

from db import audit
from domain.audit import Subject
from services.errors import NotFound


def trail_events(session: Session, subject: Subject) -> list[dict[str, Any]]:
    """The subject's exported events by seq; NotFound when it has none."""
    events = audit.trail(session, subject)
    if not events:
        raise NotFound(f"no audit events for {subject.kind} {subject.id!r}")
    return events


def trail_view(session: Session, subject: Subject) -> dict[str, Any]:
    """``{person|campaign: id, events: [...], chain_valid}`` (the key names the subject)."""
    events = trail_events(session, subject)
    return {subject.kind: subject.id, "events": events, "chain_valid": audit.verify(events).valid}


def trail_csv(events: list[dict[str, Any]]) -> str:
    """CSV with the columns ``seq,at,kind,app,actor,detail,hash,prev_hash`` (detail as JSON)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=audit.EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for event in events:
        writer.writerow({**event, "detail": json.dumps(event["detail"], sort_keys=True)})
    return out.getvalue()


def verify_trails(
    session: Session, subject: Subject | None = None
) -> list[tuple[Subject, int, audit.ChainCheck]]:
    """Recompute the chain of one subject (or of every subject with events):
    ``(subject, events, check)`` each."""
    subjects = [subject] if subject is not None else audit.subjects_with_events(session)
    checked = []
    for each in subjects:
        events = audit.trail(session, each)
        checked.append((each, len(events), audit.verify(events)))
    return checked
