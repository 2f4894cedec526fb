"""Ownership handover: a task for the leaver's manager beside the app's deprovisioning, with
the usual reminders and evidence; the run completes only once it is done."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import ScimApp, StackFactory, catalog_yaml, scim_app_yaml, steps, terminated

pytestmark = pytest.mark.slow

HANDOVER = """    handover:
      assignees: manager
      sla_hours: 48
      instructions: >-
        Reassign {{{{ name }}}}'s Ironclad contracts and workflows to {{{{ manager_email }}}}.
"""
CATALOG = catalog_yaml(scim_app_yaml(app_keys=HANDOVER))


async def test_handover_task_goes_to_the_manager_and_holds_the_run(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=CATALOG)
    leaver = scim_app.users[4]
    response = await stack.webhook(terminated(leaver, 4))  # manager: alice.adams@example.com
    run_id = response.json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    task = None
    for _ in range(300):
        found = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
        if found:
            [task] = found
            break
        await asyncio.sleep(0.1)
    assert task is not None, "no handover task"
    assert task["kind"] == "handover" and task["assignees"] == ["alice.adams@example.com"]
    name = f"{leaver.given_name} {leaver.family_name}"
    assert task["instructions"] == (
        f"Reassign {name}'s Ironclad contracts and workflows to alice.adams@example.com."
    )
    await stack.wait_run(run_id, lambda r: r["status"] == "waiting_human", timeout=60)

    done = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "done", "note": "contracts moved to Alice"},
    )
    assert done.status_code == 200, done.text
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", timeout=60)
    kinds = [e["kind"] for e in (await stack.audit("E1004"))["events"]]
    assert "task.completed" in kinds and kinds[-1] == "run.completed"
