"""The app DB behaves the same on SQLite (offboard dev) and PostgreSQL (production).

Every test runs on both: a fresh SQLite file and a fresh database on a real PostgreSQL server.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text, update
from sqlmodel import Session, SQLModel, col, select

from activities.records import RecordActivities
from config import parse_catalog
from db import audit
from db.migrate import alembic_config, upgrade
from db.models import ApiToken, AuditEvent, HumanTask, OffboardingRun, Person, Step
from db.session import get_engine
from devstack.postgres_server import PostgresServer
from services.authz import Principal
from services.tasks import list_tasks
from services.tokens import create_token, hash_token, lookup
from workflows.types import AuditEventIn, HumanTaskInput, RecordInput, StepState, TaskRecord

pytestmark = pytest.mark.slow


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database (no tables yet) on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'offboard.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture
def migrated(db_url: str) -> str:
    upgrade(db_url)
    return db_url


def sessions(url: str) -> Callable[[], Session]:
    return lambda: Session(get_engine(url), expire_on_commit=False)


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None
    return head


def db_revision(url: str) -> str | None:
    with get_engine(url).connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def ev(step: str, *, at: str = "2026-03-01T09:00:00+00:00", **kw: Any) -> AuditEventIn:
    person = "E1001"
    return AuditEventIn(
        person_id=person,
        workflow_id=f"offboard-{person}",
        step_id=step,
        kind=kw.pop("kind", "step.verified"),
        at=at,
        **kw,
    )


def test_upgrade_from_empty_creates_every_table_and_is_idempotent(db_url: str) -> None:
    upgrade(db_url)
    tables = set(inspect(get_engine(db_url)).get_table_names())
    assert set(SQLModel.metadata.tables) <= tables, set(SQLModel.metadata.tables) - tables
    assert db_revision(db_url) == head_revision()
    with sessions(db_url)() as session:
        session.add(Person(id="E1001", email="dana@example.com", name="Dana"))
        session.commit()

    upgrade(db_url)  # offboard migrate on every deploy: a no-op, data kept

    assert db_revision(db_url) == head_revision()
    with sessions(db_url)() as session:
        person = session.get(Person, "E1001")
        assert person is not None and person.email == "dana@example.com"


def test_audit_trail_round_trips_and_an_auditor_can_recompute_the_chain(migrated: str) -> None:
    stamps = [
        "2026-03-01T09:00:00+00:00",
        "2026-03-01T09:00:00.123456+00:00",
        "2026-03-01T10:30:00.5+05:30",
        "2026-03-01T09:00:00Z",
    ]
    events = [
        ev(f"s{i}", at=at, app="ironclad", actor="admin@example.com", detail=detail)
        for i, (at, detail) in enumerate(
            zip(
                stamps,
                [
                    {},
                    {"account": "dana@example.com", "groups": ["legal", "all"]},
                    {"note": "Zugang entfernt ✓ — 日本語", "count": 3, "ratio": 0.25},
                    {"nested": {"b": [1, {"c": None}], "a": True}},
                ],
                strict=True,
            )
        )
    ]
    assert audit.append(sessions(migrated), events) == len(events)

    with sessions(migrated)() as session:
        exported = audit.person_events(session, "E1001")
    assert [e["seq"] for e in exported] == [1, 2, 3, 4]
    assert [e["at"] for e in exported] == stamps  # text, exactly as written
    assert [e["detail"] for e in exported] == [e.detail for e in events]
    assert audit.verify(exported).valid

    # The published rule, recomputed from the JSON export alone, as an auditor would.
    wire = json.loads(json.dumps(exported))
    prev = "0" * 64
    for event in wire:
        body = {k: v for k, v in event.items() if k not in ("hash", "prev_hash")}
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        assert event["prev_hash"] == prev
        assert event["hash"] == hashlib.sha256((prev + canonical).encode()).hexdigest()
        prev = event["hash"]

    # Someone edits a stored event: the chain says so, at that event.
    with sessions(migrated)() as session:
        session.exec(
            update(AuditEvent)
            .where(col(AuditEvent.subject_id) == "E1001", col(AuditEvent.seq) == 2)
            .values(detail={"account": "someone-else@example.com"})
        )
        session.commit()
        check = audit.verify(audit.person_events(session, "E1001"))
    assert not check.valid and check.first_bad_seq == 2


def test_a_retried_write_with_the_same_idempotency_key_is_a_no_op(migrated: str) -> None:
    first = [ev("deactivate"), ev("deactivate", kind="step.started")]
    assert audit.append(sessions(migrated), first) == 2
    # The activity is retried (same workflow, step, kind) and adds one new event.
    again = [ev("deactivate", detail={"retry": True}), ev("read_back")]
    assert audit.append(sessions(migrated), again) == 1
    assert audit.append(sessions(migrated), again) == 0

    with sessions(migrated)() as session:
        exported = audit.person_events(session, "E1001")
        assert len(audit.person_events(session, "E1001")) == 3
    assert [(e["seq"], e["kind"]) for e in exported] == [
        (1, "step.verified"),
        (2, "step.started"),
        (3, "step.verified"),
    ]
    assert exported[0]["detail"] == {}  # the first write wins; the retry did not overwrite it
    assert audit.verify(exported).valid


def snapshot(version: int, status: str, ironclad: str, **kw: Any) -> RecordInput:
    at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC) + timedelta(minutes=version)
    return RecordInput(
        run_id="run-1",
        workflow_id="offboard-E1001",
        person_id="E1001",
        email="dana@example.com",
        run_status=status,
        steps=[
            StepState(app="ironclad", connector="scim", status=ironclad, updated_at=at),
            StepState(app="imanage", connector="manual", status="waiting_human", updated_at=at),
        ],
        version=version,
        **kw,
    )


def run_and_steps(url: str) -> tuple[OffboardingRun, dict[str, str]]:
    with sessions(url)() as session:
        run = session.get(OffboardingRun, "run-1")
        assert run is not None
        steps = session.exec(select(Step).where(Step.run_id == "run-1")).all()
        return run, {s.app: s.status for s in steps}


def test_record_run_keeps_the_newest_snapshot_when_versions_arrive_out_of_order(
    migrated: str,
) -> None:
    records = RecordActivities(sessions(migrated))
    records.record_run(snapshot(1, "running", "running"))
    records.record_run(
        snapshot(3, "waiting_human", "verified", events=[ev("ironclad.verify", app="ironclad")])
    )
    # Version 2 was sent earlier but lands late; its audit event still counts, its state not.
    records.record_run(
        snapshot(2, "running", "running", events=[ev("ironclad.deactivate", app="ironclad")])
    )

    run, steps = run_and_steps(migrated)
    assert (run.status, run.state_version) == ("waiting_human", 3)
    assert steps == {"ironclad": "verified", "imanage": "waiting_human"}
    with sessions(migrated)() as session:
        exported = audit.person_events(session, "E1001")
    assert [e["detail"] for e in exported] == [{}, {}]
    assert audit.verify(exported).valid and len(exported) == 2

    records.record_run(snapshot(4, "completed", "verified"))
    assert run_and_steps(migrated)[0].status == "completed"


def lock_waiters(url: str) -> int:
    """Sessions of this database waiting on a lock now.

    One short transaction per look: PostgreSQL freezes what pg_stat_activity shows for the rest
    of a transaction, so a probe reusing one would never see the wait begin.
    """
    with get_engine(url).connect() as probe:
        count = probe.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar()
    return int(count or 0)


def test_an_older_snapshot_racing_a_newer_one_never_overwrites_it(
    postgres_server: PostgresServer,
) -> None:
    """PostgreSQL only: two workers write the same run at the same moment, newest must win.

    A newer snapshot is mid-transaction (row written, not committed) when an older one arrives
    on another worker. The older one must wait and then see the newer version, not overwrite it
    after the newer one commits (a lost update under READ COMMITTED).
    """
    url = postgres_server.new_database()
    upgrade(url)
    records = RecordActivities(sessions(url))
    records.record_run(snapshot(1, "running", "running"))

    with sessions(url)() as newer:
        newer.exec(
            update(OffboardingRun)
            .where(col(OffboardingRun.run_id) == "run-1")
            .values(status="completed", state_version=5)
        )
        errors: list[BaseException] = []

        def older() -> None:
            try:
                records.record_run(snapshot(4, "running", "running"))
            except BaseException as exc:
                errors.append(exc)

        late = threading.Thread(target=older)
        late.start()
        # Commit the newer snapshot only once the older write is blocked on the run's row.
        deadline = time.monotonic() + 20
        while not lock_waiters(url):
            assert time.monotonic() < deadline, "the older write never waited for the row"
            assert late.is_alive(), errors
            time.sleep(0.02)
        newer.commit()
        late.join(timeout=30)

    assert not errors, errors
    run, _ = run_and_steps(url)
    assert (run.status, run.state_version) == ("completed", 5)


def task_write(status: Literal["open", "done", "cancelled"], kind: str, seq: int) -> TaskRecord:
    task = HumanTaskInput(
        task_id="ironclad-1",
        kind="exception",
        app="ironclad",
        run_id="run-1",
        parent_workflow_id="offboard-E1001",
        person_id="E1001",
        person_email="dana@example.com",
        assignees=["legal-ops@example.com"],
    )
    event = AuditEventIn(
        person_id="E1001",
        workflow_id="task-ironclad-1",
        step_id=str(seq),
        kind=kind,
        at=datetime(2026, 3, 1, 9, seq, tzinfo=UTC).isoformat(),
        actor="offboard",
        app="ironclad",
        detail={},
    )
    due = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    return TaskRecord(task=task, status=status, due_at=due, event=event)


def test_a_late_open_write_never_reopens_a_cancelled_task(migrated: str) -> None:
    """A retry cancels an exception task while its "open" write is still on its way."""
    records = RecordActivities(sessions(migrated))
    records.record_task(task_write("cancelled", "task.cancelled", 2))
    records.record_task(task_write("open", "task.created", 1))

    with sessions(migrated)() as session:
        task = session.get(HumanTask, "ironclad-1")
        assert task is not None and task.status == "cancelled"
        kinds = [e["kind"] for e in audit.person_events(session, "E1001")]
    assert sorted(kinds) == ["task.cancelled", "task.created"]  # both happened: both audited


def test_api_tokens_are_stored_hashed_and_looked_up(migrated: str) -> None:
    with sessions(migrated)() as session:
        admin = create_token(session, "admin", "ops", "ops@example.com")
        reviewer = create_token(session, "reviewer", "rev", "manager@example.com")
        stored = session.exec(select(ApiToken.token_hash)).all()
    assert admin not in stored and hash_token(admin) in stored  # never the token itself

    with sessions(migrated)() as session:
        found = lookup(session, admin)
        assert found is not None
        assert (found.role, found.name, found.email) == ("admin", "ops", "ops@example.com")
        other = lookup(session, reviewer)
        assert other is not None and other.role == "reviewer"
        assert lookup(session, admin + "x") is None
        assert lookup(session, "") is None

        found.revoked_at = datetime.now(UTC)
        session.add(found)
        session.commit()
    with sessions(migrated)() as session:
        assert lookup(session, admin) is None
        assert lookup(session, reviewer) is not None


def test_task_visibility_is_one_sql_condition_on_both_backends(migrated: str) -> None:
    """An assignee is found inside the JSON list (any case); an app admin also gets the tasks
    of the apps they own, nothing else."""
    catalog = parse_catalog(
        "apps:\n"
        "  - {id: mine, name: Mine, owners: [Owner@example.com], connector: manual,"
        " manual: {assignees: [a@example.com]}}\n"
        "  - {id: other, name: Other, connector: manual, manual: {assignees: [a@example.com]}}\n"
    )

    def task(task_id: str, app: str, assignees: list[str]) -> HumanTask:
        return HumanTask(
            id=task_id,
            workflow_id=f"task-{task_id}",
            kind="manual_step",
            app=app,
            run_id="r1",
            person_id="E1",
            person_email="e1@example.com",
            assignees=assignees,
        )

    with sessions(migrated)() as session:
        session.add(task("t1", "other", ["x@example.com", "HELPER@example.com"]))
        session.add(task("t2", "mine", ["x@example.com"]))
        session.add(task("t3", "other", ["x@example.com"]))
        session.commit()
        helper = Principal(name="h", role="reviewer", email="helper@example.com")
        owner = Principal(name="o", role="app-admin", email="owner@example.com")
        admin = Principal(name="a", role="admin", email=None)
        seen = {
            who: [t.id for t in list_tasks(session, p, catalog)]
            for who, p in (("helper", helper), ("owner", owner), ("admin", admin))
        }
    assert seen == {"helper": ["t1"], "owner": ["t2"], "admin": ["t1", "t2", "t3"]}
