"""A signed termination webhook offboards a person everywhere, and the trail proves it."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from sqlmodel import select
from temporalio.client import Client
from typer.testing import CliRunner

from cli.main import app as cli
from db.models import AuditEvent
from tests.conftest import Stack, steps, terminated

pytestmark = pytest.mark.slow


async def save_history(
    stack: Stack,
    workflow_id: str,
    run_id: str | None = None,
    env: str = "OFFBOARD_SAVE_HISTORY",
    client: Client | None = None,
) -> None:
    """OFFBOARD_SAVE_HISTORY=<file> keeps this run's history for the replay test
    (tests/test_replay.py): do it before changing OffboardingWorkflow's logic;
    OFFBOARD_SAVE_TASK_HISTORY=<file> keeps its manual task's, before changing HumanTaskWorkflow."""
    target = os.environ.get(env)
    if target:
        handle = (client or stack.client).get_workflow_handle(workflow_id, run_id=run_id)
        history = await handle.fetch_history()
        await asyncio.to_thread(Path(target).write_text, history.to_json())


async def test_webhook_to_verified_scim_and_completed_manual_task(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]
    scim_id = stack.scim.ids[dave.user_name]
    assert stack.scim.server.groups_of(scim_id), "seeded user should start in a group"

    response = await stack.webhook(terminated(dave, 3))
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]

    run = await stack.wait_run(
        run_id, lambda r: steps(r) == {"ironclad": "verified", "imanage": "waiting_human"}
    )
    assert run["status"] == "waiting_human"
    assert stack.scim.server.get_user(scim_id)["active"] is False
    assert stack.scim.server.groups_of(scim_id) == []
    # Nobody else was touched.
    others = [u for u in stack.scim.users if u.user_name != dave.user_name]
    assert all(stack.scim.user_by_email(u.email)["active"] for u in others)

    [task] = await stack.tasks(status="open")
    assert task["kind"] == "manual_step" and task["app"] == "imanage"
    assert task["run_id"] == run_id
    assert dave.email in task["instructions"]
    assert task["assignees"] == ["it-helpdesk@example.com"]

    done = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "done", "note": "disabled in Control Center"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "done"
    again = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "done", "note": "twice"}
    )
    assert again.status_code == 409

    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert steps(run) == {"ironclad": "verified", "imanage": "done"}
    assert run["completed_at"] is not None
    await save_history(stack, run["workflow_id"], run_id)
    await save_history(stack, f"task-{task['id']}", env="OFFBOARD_SAVE_TASK_HISTORY")

    trail = await stack.audit("E1003")
    kinds = [e["kind"] for e in trail["events"]]
    assert trail["chain_valid"] is True
    assert kinds[0] == "run.planned" and kinds[-1] == "run.completed"
    for expected in (
        "step.started",
        "scim.deactivated",
        "scim.groups_removed",
        "step.verified",
        "task.created",
        "task.completed",
    ):
        assert expected in kinds
    assert kinds.index("scim.deactivated") < kinds.index("step.verified")
    assert [e["seq"] for e in trail["events"]] == list(range(1, len(kinds) + 1))

    csv = await stack.http.get("/api/v1/people/E1003/audit", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0] == "seq,at,kind,app,actor,detail,hash,prev_hash"
    assert len(csv.text.splitlines()) == len(kinds) + 1

    monkeypatch.setenv("OFFBOARD_DATABASE_URL", stack.db_url)
    from config import get_settings

    get_settings.cache_clear()
    runner = CliRunner()
    ok = runner.invoke(cli, ["audit", "verify", "E1003"])
    assert ok.exit_code == 0, ok.output

    with stack.session() as session:
        row = session.exec(
            select(AuditEvent).where(AuditEvent.subject_id == "E1003", AuditEvent.seq == 3)
        ).one()
        row.detail = {**row.detail, "account": "someone-else"}
        session.add(row)
        session.commit()
    bad = runner.invoke(cli, ["audit", "verify", "E1003"])
    assert bad.exit_code == 1
    assert "seq 3" in bad.output
    tampered = await stack.audit("E1003")
    assert tampered["chain_valid"] is False
    get_settings.cache_clear()
