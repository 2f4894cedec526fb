"""A worker that dies mid-offboarding loses nothing: a new one finishes the run, once.

The runs live in Temporal, not in the worker. These tests stop the worker at the two places a
real deploy restarts it (during a slow SCIM write, and while a run waits days on a person) and
check the user-visible outcome: the run still ends `completed`, the account is deactivated, and
the person's audit trail records each step exactly once with an intact hash chain.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from tests.conftest import Stack, steps, terminated

pytestmark = pytest.mark.slow

# Steps that happen once per run; a replayed or retried activity must not write them twice.
ONCE = (
    "run.planned",
    "run.started",
    "step.started",
    "scim.deactivated",
    "scim.groups_removed",
    "step.verified",
    "task.created",
    "task.completed",
    "run.completed",
)


async def wait_for(predicate: Any, what: str, timeout: float = 30) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def open_tasks(stack: Stack, run_id: str, timeout: float = 30) -> list[dict[str, Any]]:
    """The run's open tasks, once there are any.

    The step reads `waiting_human` a moment before the task workflow has written its inbox row.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        tasks = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
        if tasks or loop.time() > deadline:
            return tasks
        await asyncio.sleep(0.1)


def finished(run: dict[str, Any]) -> bool:
    if run["status"] != "completed":
        return False
    # A terminal status is written together with completed_at, never before it.
    assert run["completed_at"] is not None, run
    return True


async def complete_imanage(stack: Stack, run_id: str) -> None:
    [task] = await open_tasks(stack, run_id)
    assert task["app"] == "imanage" and task["kind"] == "manual_step"
    done = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "done", "note": "disabled in Control Center"},
    )
    assert done.status_code == 200, done.text


def assert_trail_once(trail: dict[str, Any]) -> None:
    assert trail["chain_valid"] is True
    events = trail["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    kinds = Counter(e["kind"] for e in events)
    for kind in ("scim.deactivated", "step.verified", "task.created", "run.completed"):
        assert kinds[kind] == 1, f"{kind} x{kinds[kind]}: {[e['kind'] for e in events]}"
    # Nothing that happens once per run was written twice for the same app.
    pairs = Counter((e["kind"], e["app"]) for e in events if e["kind"] in ONCE)
    assert {k: n for k, n in pairs.items() if n > 1} == {}
    assert "run.failed" not in kinds and "step.failed" not in kinds


async def restart_worker_during_patch(
    stack: Stack, index: int, hold: float, timeout: float
) -> tuple[str, dict[str, Any]]:
    """Terminate seeded user ``index`` while the app holds the deactivation PATCH ``hold``
    seconds (a slow SaaS endpoint), replace the worker meanwhile (deploy, crash, scale-in),
    and wait until Ironclad is verified again; returns (run_id, run)."""
    assert stack.scim is not None
    quirks = stack.scim.quirks
    quirks.delay_next(1, hold, method="PATCH", path_contains="/Users/")
    response = await stack.webhook(terminated(stack.scim.users[index], index))
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    await wait_for(lambda: quirks.count("PATCH", "/Users/") >= 1, "the deactivation PATCH")
    await stack.stop_worker()
    await stack.start_worker()
    run = await stack.wait_run(
        run_id,
        lambda r: steps(r) == {"ironclad": "verified", "imanage": "waiting_human"},
        timeout,
    )
    return run_id, run


async def test_worker_stopped_during_slow_scim_patch_run_still_completes_once(
    stack: Stack,
) -> None:
    assert stack.scim is not None
    quirks = stack.scim.quirks
    scim_id = stack.scim.ids[stack.scim.users[4].user_name]
    run_id, run = await restart_worker_during_patch(stack, 4, hold=3, timeout=60)
    assert run["status"] == "waiting_human"
    assert stack.scim.server.get_user(scim_id)["active"] is False
    assert stack.scim.server.groups_of(scim_id) == []
    # The graceful shutdown let the call finish; the next worker did not send it again.
    assert quirks.count("PATCH", "/Users/") == 1

    await complete_imanage(stack, run_id)
    run = await stack.wait_run(run_id, finished)
    assert steps(run) == {"ironclad": "verified", "imanage": "done"}

    assert_trail_once(await stack.audit("E1004"))


async def test_worker_stopped_past_grace_during_scim_patch_retries_promptly(
    stack: Stack,
) -> None:
    """The SCIM call outlives the worker's graceful shutdown: the activity is cut off.

    The next worker must retry it soon (a 120 s start-to-close with no heartbeat would leave
    the run stuck for minutes), and the retry must not duplicate the trail.
    """
    assert stack.scim is not None
    quirks = stack.scim.quirks
    scim_id = stack.scim.ids[stack.scim.users[5].user_name]
    # Well under the 120 s start-to-close timeout: the cut-off attempt must not be waited out.
    run_id, run = await restart_worker_during_patch(stack, 5, hold=60, timeout=45)
    assert quirks.count("PATCH", "/Users/") >= 2, "the deactivation should have been retried"
    assert stack.scim.server.get_user(scim_id)["active"] is False

    await complete_imanage(stack, run_id)
    run = await stack.wait_run(run_id, finished)
    assert steps(run) == {"ironclad": "verified", "imanage": "done"}
    assert_trail_once(await stack.audit("E1005"))


async def test_worker_restarted_while_waiting_on_human_task_run_completes_once(
    stack: Stack,
) -> None:
    assert stack.scim is not None
    grace = stack.scim.users[6]
    response = await stack.webhook(terminated(grace, 6))
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    await stack.wait_run(
        run_id, lambda r: steps(r) == {"ironclad": "verified", "imanage": "waiting_human"}
    )
    patches = stack.scim.quirks.count("PATCH")

    await stack.stop_worker()
    # Nothing runs meanwhile, but the run and its task are still there for the inbox.
    assert (await stack.run(run_id))["status"] == "waiting_human"
    assert [t["app"] for t in await stack.tasks(status="open") if t["run_id"] == run_id] == [
        "imanage"
    ]
    await stack.start_worker()

    await complete_imanage(stack, run_id)
    run = await stack.wait_run(run_id, finished)
    assert steps(run) == {"ironclad": "verified", "imanage": "done"}
    assert run["completed_at"] is not None
    # The new worker replayed the run; it did not deprovision the SCIM account again.
    assert stack.scim.quirks.count("PATCH") == patches

    trail = await stack.audit("E1006")
    assert_trail_once(trail)
    assert [e["kind"] for e in trail["events"]].count("task.completed") == 1
