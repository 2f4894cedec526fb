"""The audit trail: append-only, one SHA-256 hash chain per subject (a person or a campaign).

This is the only place that computes hashes. The rule is public so auditors can recompute it:
``hash = sha256_hex(prev_hash + canonical)`` where ``canonical`` is the exported event without
``hash``/``prev_hash``, keys sorted, separators ``,``/``:``, UTF-8; the first ``prev_hash`` is 64
zeros.
Writes are idempotent by (workflow id, step id, kind).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import insert, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session, col, select

from db.models import AuditEvent
from domain.audit import AuditEventIn, Subject
from metrics import AUDIT_DUPLICATES

T = TypeVar("T")
# An event's idempotency key: (workflow id, step id, kind).
Key = tuple[str, str, str]
log = structlog.get_logger()
GENESIS = "0" * 64
EXPORT_FIELDS = ("seq", "at", "kind", "app", "actor", "detail", "hash", "prev_hash")


def canonical(event: dict[str, Any]) -> str:
    body = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, event: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(event)).encode("utf-8")).hexdigest()


def export(row: AuditEvent) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "kind": row.kind,
        "app": row.app,
        "actor": row.actor,
        "detail": row.detail,
        "hash": row.hash,
        "prev_hash": row.prev_hash,
    }


@dataclass(frozen=True)
class ChainCheck:
    valid: bool
    first_bad_seq: int | None = None
    reason: str = ""


def verify(events: Sequence[dict[str, Any]]) -> ChainCheck:
    """Recompute a subject's chain from its exported events (ordered by seq)."""
    prev = GENESIS
    for expected_seq, event in enumerate(events, start=1):
        if event["seq"] != expected_seq:
            return ChainCheck(False, expected_seq, f"event seq {expected_seq} is missing")
        if event["prev_hash"] != prev:
            return ChainCheck(False, event["seq"], "prev_hash does not link to the event before")
        if chain_hash(prev, event) != event["hash"]:
            return ChainCheck(False, event["seq"], "hash does not match the event's content")
        prev = event["hash"]
    return ChainCheck(True)


def _of(subject: Subject) -> tuple[Any, Any]:
    return (
        col(AuditEvent.subject_kind) == subject.kind,
        col(AuditEvent.subject_id) == subject.id,
    )


def trail(session: Session, subject: Subject) -> list[dict[str, Any]]:
    """A subject's exported events, by seq (the form auditors recompute the chain from)."""
    rows = session.exec(select(AuditEvent).where(*_of(subject)).order_by(col(AuditEvent.seq)))
    return [export(r) for r in rows.all()]


def person_events(session: Session, person_id: str) -> list[dict[str, Any]]:
    return trail(session, Subject.person(person_id))


def _append_batch(session: Session, batch: list[AuditEventIn]) -> tuple[int, list[Key]]:
    """Append the events not written yet, each chained to its subject's head; one INSERT.

    Returns (how many were written, the keys of those dropped as already written).
    """
    if not batch:
        return 0, []
    written_keys = {
        tuple(row)
        for row in session.exec(
            select(AuditEvent.workflow_id, AuditEvent.step_id, AuditEvent.kind).where(
                col(AuditEvent.workflow_id).in_({e.workflow_id for e in batch}),
                col(AuditEvent.step_id).in_({e.step_id for e in batch}),
            )
        )
    }
    heads: dict[Subject, tuple[int, str]] = {}
    rows: list[dict[str, Any]] = []
    dropped: list[Key] = []
    for event in batch:
        key: Key = (event.workflow_id, event.step_id, event.kind)
        if key in written_keys:
            dropped.append(key)
            continue
        written_keys.add(key)
        subject = event.subject
        if subject not in heads:
            last = session.exec(
                select(AuditEvent.seq, AuditEvent.hash)
                .where(*_of(subject))
                .order_by(col(AuditEvent.seq).desc())
                .limit(1)
            ).first()
            heads[subject] = (last[0], last[1]) if last else (0, GENESIS)
        seq, prev = heads[subject]
        exported = {
            "seq": seq + 1,
            "at": event.at,
            "kind": event.kind,
            "app": event.app,
            "actor": event.actor,
            "detail": event.detail,
        }
        digest = chain_hash(prev, exported)
        heads[subject] = (seq + 1, digest)
        rows.append(
            {
                **exported,
                "subject_kind": subject.kind,
                "subject_id": subject.id,
                "workflow_id": event.workflow_id,
                "step_id": event.step_id,
                "hash": digest,
                "prev_hash": prev,
            }
        )
    if rows:
        # One bulk INSERT, no ORM unit of work: the trail is written on every step, and
        # building and flushing objects was most of an append's CPU.
        session.execute(insert(AuditEvent), rows)
    return len(rows), dropped


# First key of the two-key advisory lock: namespaces offboard's per-subject chain locks.
CHAIN_LOCK_SPACE = 0x6F666262  # "offb"


def lock_chains(session: Session, subjects: Iterable[Subject]) -> None:
    """Make concurrent appends to one subject's chain take turns, on PostgreSQL.

    Without it, writers that read the same head race on the unique (subject, seq) and all but
    one roll back and retry: correct, but under load most transactions are thrown away and the
    retry budget can run out. A transaction-scoped advisory lock per subject (taken in sorted
    order, so two batches never deadlock) queues them instead; it is released at commit or
    rollback. SQLite already serialises writers (one write lock per file).
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    for key in sorted({str(s) for s in subjects}):
        session.execute(
            text("SELECT pg_advisory_xact_lock(:space, hashtext(:subject))"),
            {"space": CHAIN_LOCK_SPACE, "subject": key},
        )


def with_retry(fn: Callable[[], T], attempts: int = 50) -> T:
    """Run a write transaction, again after a lost race (unique seq) or a locked SQLite file."""
    for attempt in range(attempts):
        try:
            return fn()
        except (IntegrityError, OperationalError):
            if attempt == attempts - 1:
                raise
            time.sleep(min(0.005 * (attempt + 1), 0.1))
    raise AssertionError("unreachable")


def append(
    session_factory: Callable[[], Session],
    events: Iterable[AuditEventIn],
    extra: Callable[[Session], None] | None = None,
) -> int:
    """Append events (and optionally other writes) in one transaction; returns how many were new.

    On PostgreSQL, writers to the same subject queue on a per-subject lock before reading the
    head. The whole batch is still retried on a lost race (SQLite's busy file, a conflict the
    lock does not cover), and the unique (subject, seq) constraint keeps a chain from forking
    whatever happens: the loser re-reads the head. ``extra`` may run more than once: it must
    only write, and anything to do once (metrics) belongs after this returns.
    """
    batch = list(events)

    def attempt() -> tuple[int, list[Key]]:
        with session_factory() as session:
            lock_chains(session, (e.subject for e in batch))
            written, dropped = _append_batch(session, batch)
            if extra is not None:
                extra(session)
            session.commit()
            return written, dropped

    written, dropped = with_retry(attempt)
    if dropped:
        # Expected after a retried write (an activity re-run once its commit had landed); a
        # steady rate points at a key that is not unique enough, which would lose evidence.
        AUDIT_DUPLICATES.inc(len(dropped))
        log.info("audit.duplicates_dropped", count=len(dropped), keys=[list(k) for k in dropped])
    return written


def append_in(session: Session, events: Sequence[AuditEventIn]) -> int:
    """Append events inside the caller's transaction (it commits, and retries a lost race as
    a whole): for an event that must land with the write it records, or not at all."""
    lock_chains(session, (e.subject for e in events))
    written, _ = _append_batch(session, list(events))
    return written


def subjects_with_events(session: Session) -> list[Subject]:
    rows = session.exec(
        select(AuditEvent.subject_kind, AuditEvent.subject_id).group_by(
            col(AuditEvent.subject_kind), col(AuditEvent.subject_id)
        )
    ).all()
    return [Subject(kind=kind, id=subject_id) for kind, subject_id in rows]
