"""Many workers writing one person's audit trail at once, on PostgreSQL, as production runs it.

Several worker processes (each its own engine and connection pool) append to the SAME person's
hash chain at the same moment, and two of them replay the same batch (an activity retried on
another worker). An auditor must still find one unbroken chain: every event once, seq 1..N with
no gaps or forks, and the hashes verifying.
"""

from __future__ import annotations

import multiprocessing
import traceback
from collections import Counter
from datetime import UTC, datetime
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import func
from sqlmodel import Session, col, select

from db import audit
from db.migrate import upgrade
from db.models import AuditEvent
from db.session import get_engine
from workflows.types import AuditEventIn

if TYPE_CHECKING:  # the worker processes import this module: keep them off conftest's imports
    from devstack.postgres_server import PostgresServer

pytestmark = pytest.mark.slow

PERSON = "E4242"
WRITERS = 4
EVENTS_PER_WRITER = 50
DUPLICATE_BATCH = 20


def event(workflow_id: str, step_id: str) -> AuditEventIn:
    return AuditEventIn(
        person_id=PERSON,
        workflow_id=workflow_id,
        step_id=step_id,
        kind="step.verified",
        at=datetime.now(UTC).isoformat(),
        app="ironclad",
        detail={"writer": workflow_id, "step": step_id, "note": "désactivé ✓"},
    )


def write(url: str, name: str, batches: list[list[AuditEventIn]], start: Any, out: Any) -> None:
    """One worker process: wait for the others, then append its batches one transaction each."""
    engine = get_engine(url)
    try:
        start.wait(timeout=60)
        written = 0
        for batch in batches:
            written += audit.append(lambda: Session(engine, expire_on_commit=False), batch)
        out.put((name, written, None))
    except BaseException:
        out.put((name, 0, traceback.format_exc()))
    finally:
        engine.dispose()


def test_concurrent_writers_keep_one_gapless_verified_chain(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.new_database()
    upgrade(url)
    # Each writer appends its own events one by one (like many activities), all to one person.
    jobs: dict[str, list[list[AuditEventIn]]] = {
        f"writer-{w}": [[event(f"offboard-{w}", f"s{i}")] for i in range(EVENTS_PER_WRITER)]
        for w in range(WRITERS)
    }
    # The same batch (same idempotency keys) from two processes at once: a retried activity.
    duplicate = [event("offboard-dup", f"s{i}") for i in range(DUPLICATE_BATCH)]
    jobs["duplicate-a"] = [duplicate]
    jobs["duplicate-b"] = [duplicate]

    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(len(jobs))
    out = ctx.Queue()
    procs = [
        ctx.Process(target=write, args=(url, name, batches, start, out), name=name)
        for name, batches in jobs.items()
    ]
    for proc in procs:
        proc.start()
    try:
        results = {}
        for _ in procs:
            name, written, error = out.get(timeout=240)
            assert error is None, f"{name} failed:\n{error}"
            results[name] = written
    finally:
        for proc in procs:
            proc.join(timeout=30)
            if proc.is_alive():
                proc.kill()
                proc.join()
    assert all(proc.exitcode == 0 for proc in procs), [(p.name, p.exitcode) for p in procs]

    for w in range(WRITERS):
        assert results[f"writer-{w}"] == EVENTS_PER_WRITER
    # Exactly one of the two replays wrote the batch; the other was a no-op (never half of it).
    assert sorted([results["duplicate-a"], results["duplicate-b"]]) == [0, DUPLICATE_BATCH]

    expected = WRITERS * EVENTS_PER_WRITER + DUPLICATE_BATCH
    engine = get_engine(url)
    with Session(engine) as session:
        events = audit.person_events(session, PERSON)
        rows = session.exec(
            select(AuditEvent).where(AuditEvent.subject_id == PERSON).order_by(col(AuditEvent.seq))
        ).all()
        dup_keys = session.exec(
            select(AuditEvent.workflow_id, AuditEvent.step_id, AuditEvent.kind)
            .group_by(col(AuditEvent.workflow_id), col(AuditEvent.step_id), col(AuditEvent.kind))
            .having(func.count() > 1)
        ).all()
    engine.dispose()

    assert len(events) == expected
    assert [e["seq"] for e in events] == list(range(1, expected + 1))
    check = audit.verify(events)
    assert check.valid, check
    assert dup_keys == []
    keys = Counter((r.workflow_id, r.step_id, r.kind) for r in rows)
    assert len(keys) == expected
    # Each writer's own events keep its order in the chain (one writer never overtakes itself).
    for w in range(WRITERS):
        mine = [r.step_id for r in rows if r.workflow_id == f"offboard-{w}"]
        assert mine == [f"s{i}" for i in range(EVENTS_PER_WRITER)]
    # The writers really overlapped: the chain interleaves them instead of one after another.
    switches = sum(a.workflow_id != b.workflow_id for a, b in pairwise(rows))
    assert switches > WRITERS, f"writers ran one after another ({switches} switches)"
    # The duplicate batch landed in one transaction: its events are contiguous in the chain.
    dup_seqs = [r.seq for r in rows if r.workflow_id == "offboard-dup"]
    assert dup_seqs == list(range(dup_seqs[0], dup_seqs[0] + DUPLICATE_BATCH))
