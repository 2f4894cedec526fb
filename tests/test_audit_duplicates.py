"""A duplicate audit event is dropped (the chain keeps one copy), counted and logged."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from structlog.testing import capture_logs

from db import audit
from db.migrate import upgrade
from db.session import session_factory
from domain.audit import AuditEventIn, Subject
from metrics import AUDIT_DUPLICATES


def test_a_dropped_duplicate_is_counted_and_logged(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    upgrade(url)
    sessions = session_factory(url)
    event = AuditEventIn(
        subject=Subject.person("E4243"),
        workflow_id="offboard-E4243",
        step_id="run-1:ironclad#1:deactivate",
        kind="scim.deactivated",
        at=datetime.now(UTC).isoformat(),
        app="ironclad",
        detail={},
    )
    before = AUDIT_DUPLICATES._value.get()

    assert audit.append(sessions, [event]) == 1
    with capture_logs() as logs:
        assert audit.append(sessions, [event, event]) == 0

    assert AUDIT_DUPLICATES._value.get() - before == 2
    [logged] = [e for e in logs if e["event"] == "audit.duplicates_dropped"]
    assert logged["count"] == 2
    assert logged["keys"][0] == [
        "offboard-E4243",
        "run-1:ironclad#1:deactivate",
        "scim.deactivated",
    ]
    with sessions() as session:
        assert [e["seq"] for e in audit.person_events(session, "E4243")] == [1]
