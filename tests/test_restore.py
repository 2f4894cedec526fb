"""HR rescinds a termination: before it took effect the run is cancelled and nothing is
touched; after, a restore plan is offered, and once an admin approves it the SCIM account is
active again and back in its groups (read from the app itself), manual apps get a task, and
the trail has the offer, the approval and every app's outcome."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from activities.notify import NotifyActivities
from tests.conftest import ScimApp, Stack, StackFactory, steps, terminated
from tests.test_scim_stack import SCIM_ONLY
from workflows.types import NotifyInput

pytestmark = pytest.mark.slow

DAVE = 3


def rescinded(stack: Stack, index: int) -> dict[str, Any]:
    assert stack.scim is not None
    event = terminated(stack.scim.users[index], index)
    return {
        **event,
        "event_id": f"evt-{uuid.uuid4().hex}",
        "type": "employee.termination_rescinded",
    }


async def wait_restore(
    stack: Stack, run_id: str, ready: Any, timeout: float = 60
) -> dict[str, Any]:
    """Poll GET .../restore until ``ready(view)``; fail with the last answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: httpx.Response | None = None
    while loop.time() < deadline:
        last = await stack.http.get(f"/api/v1/offboardings/{run_id}/restore")
        if last.status_code == 200 and ready(last.json()):
            body: dict[str, Any] = last.json()
            return body
        await asyncio.sleep(0.2)
    answer = last.text if last is not None else "-"
    raise AssertionError(
        f"restore never got ready: {answer}\n{await stack.pending_work(f'restore-{run_id}')}"
    )


async def open_task(stack: Stack, run_id: str, kind: str) -> dict[str, Any]:
    """The one open task of ``kind`` on ``run_id``, once it is there."""
    for _ in range(300):
        found = [
            t
            for t in await stack.tasks(status="open")
            if t["run_id"] == run_id and t["kind"] == kind
        ]
        if found:
            [task] = found
            return task
        await asyncio.sleep(0.2)
    raise AssertionError(f"no open {kind} task for the run")


async def finish_manual_task(stack: Stack, run_id: str, app: str = "imanage") -> dict[str, Any]:
    for _ in range(300):
        found = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
        if found:
            [task] = found
            done = await stack.http.post(
                f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "done", "note": "ok"}
            )
            assert done.status_code == 200, done.text
            return task
        await asyncio.sleep(0.2)
    raise AssertionError("no open task for the run")


async def test_rescind_after_effect_restores_what_the_run_did_once_approved(
    stack: Stack,
) -> None:
    assert stack.scim is not None
    server = stack.scim.server
    dave = stack.scim.users[DAVE]
    scim_id = stack.scim.ids[dave.user_name]
    groups_before = sorted(server.groups_of(scim_id))
    assert groups_before

    run_id = (await stack.webhook(terminated(dave, DAVE))).json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human", 60)
    await finish_manual_task(stack, run_id)
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", 60)
    assert server.get_user(scim_id)["active"] is False and server.groups_of(scim_id) == []

    response = await stack.webhook(rescinded(stack, DAVE))
    assert response.status_code == 202, response.text
    plan = await wait_restore(stack, run_id, lambda v: v["status"] == "offered")
    apps = {a["app"]: a for a in plan["apps"]}
    assert apps["ironclad"]["action"] == "reactivate"
    assert sorted(apps["ironclad"]["groups"]) == groups_before
    assert apps["imanage"]["action"] == "human_task"
    assert server.get_user(scim_id)["active"] is False  # nothing restored before approval
    assert not [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]

    # Only admins read or approve it.
    reviewer = {"Authorization": f"Bearer {stack.token('reviewer', 'rev@example.com')}"}
    for method, path in (("GET", "restore"), ("POST", "restore/approve")):
        refused = await stack.http.request(
            method, f"/api/v1/offboardings/{run_id}/{path}", headers=reviewer
        )
        assert refused.status_code == 403, refused.text
    missing = await stack.http.post("/api/v1/offboardings/no-such-run/restore/approve")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    approved = await stack.http.post(f"/api/v1/offboardings/{run_id}/restore/approve")
    assert approved.status_code == 202, approved.text
    again = await stack.http.post(f"/api/v1/offboardings/{run_id}/restore/approve")
    assert again.status_code == 409 and again.json()["error"]["code"] == "cannot_approve_restore"

    def scim_settled(view: dict[str, Any]) -> bool:
        return {a["app"]: a["status"] for a in view["apps"]}["ironclad"] != "planned"

    view = await wait_restore(stack, run_id, scim_settled)
    apps = {a["app"]: a for a in view["apps"]}
    assert apps["ironclad"]["status"] == "restored", apps
    assert server.get_user(scim_id)["active"] is True
    assert sorted(server.groups_of(scim_id)) == groups_before
    task = await finish_manual_task(stack, run_id)
    assert task["kind"] == "restore" and task["assignees"] == ["it-helpdesk@example.com"]
    assert "Restore access in iManage Work" in task["instructions"]
    view = await wait_restore(stack, run_id, lambda v: v["status"] == "completed")
    assert {a["app"]: a["status"] for a in view["apps"]} == {
        "imanage": "restored",
        "ironclad": "restored",
    }
    assert view["approved_by"] == "admin@example.com"

    events = (await stack.audit("E1003"))["events"]
    kinds = [e["kind"] for e in events]
    for kind in ("restore.offered", "restore.approved", "scim.reactivated", "scim.groups_added"):
        assert kind in kinds, kinds
    assert kinds.index("restore.offered") < kinds.index("restore.approved")
    assert kinds.index("restore.approved") < kinds.index("scim.reactivated")
    assert kinds.count("restore.app_restored") == 2 and kinds[-1] == "restore.completed"
    [approval] = [e for e in events if e["kind"] == "restore.approved"]
    assert approval["actor"] == "admin@example.com"
    assert (await stack.audit("E1003"))["chain_valid"] is True
    target = os.environ.get("OFFBOARD_SAVE_RESTORE_HISTORY")
    if target:
        history = await stack.client.get_workflow_handle(f"restore-{run_id}").fetch_history()
        await asyncio.to_thread(Path(target).write_text, history.to_json())


async def test_rescind_before_effect_cancels_and_touches_nothing(stack: Stack) -> None:
    assert stack.scim is not None
    server = stack.scim.server
    eve = stack.scim.users[4]
    scim_id = stack.scim.ids[eve.user_name]
    groups_before = sorted(server.groups_of(scim_id))
    later = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    event = {**terminated(eve, 4), "effective_at": later}
    run_id = (await stack.webhook(event)).json()["run_id"]
    await stack.wait_run(run_id, lambda r: len(r["apps"]) == 2)

    assert (await stack.webhook(rescinded(stack, 4))).status_code == 202
    run = await stack.wait_run(run_id, lambda r: r["status"] == "cancelled", 60)
    assert set(steps(run).values()) == {"cancelled"}
    assert server.get_user(scim_id)["active"] is True
    assert sorted(server.groups_of(scim_id)) == groups_before
    kinds = [e["kind"] for e in (await stack.audit("E1004"))["events"]]
    assert "run.cancelled" in kinds and not any(k.startswith(("scim.", "restore.")) for k in kinds)
    none = await stack.http.get(f"/api/v1/offboardings/{run_id}/restore")
    assert none.status_code == 404 and json.loads(none.text)["error"]["code"] == "no_restore"


async def test_a_restore_the_app_does_not_show_is_failed_not_restored(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=SCIM_ONLY)
    uid = scim_app.ids[scim_app.users[7].user_name]
    run_id = (await stack.webhook(terminated(scim_app.users[7], 7))).json()["run_id"]
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", 60)
    scim_app.quirks.ignore_user_patch = True  # the app answers 204 and changes nothing
    assert (await stack.webhook(rescinded(stack, 7))).status_code == 202
    await wait_restore(stack, run_id, lambda v: v["status"] == "offered")
    approved = await stack.http.post(f"/api/v1/offboardings/{run_id}/restore/approve")
    assert approved.status_code == 202, approved.text

    # Not restored, and somebody is told: an exception task says what failed.
    task = await open_task(stack, run_id, "exception")
    assert "by hand" in task["instructions"]
    view = await wait_restore(stack, run_id, lambda v: v["apps"][0]["status"] == "failed")
    assert view["status"] == "restoring"
    assert "read back: the account is still inactive" in view["apps"][0]["detail"]
    assert scim_app.server.get_user(uid)["active"] is False
    kinds = [e["kind"] for e in (await stack.audit("E1007"))["events"]]
    assert "restore.app_failed" in kinds and "restore.app_restored" not in kinds

    done = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "done", "note": "re-enabled in the admin console"},
    )
    assert done.status_code == 200, done.text
    view = await wait_restore(stack, run_id, lambda v: v["status"] == "completed")
    assert view["apps"][0]["status"] == "restored"
    assert "re-enabled in the admin console" in view["apps"][0]["detail"]


def test_a_restore_task_asks_to_restore_not_to_remove() -> None:
    notify = NotifyActivities("http://127.0.0.1:8000")
    message = NotifyInput(
        task_id="restore-imanage-1",
        kind="assigned",
        task_kind="restore",
        recipients=["it-helpdesk@example.com"],
        app="imanage",
        person_email="dave@example.com",
        instructions="Restore access in iManage Work for dave@example.com",
    )
    rendered = notify.render(message)
    assert rendered.subject == "Task: restore dave@example.com's access to imanage"
    assert "remove" not in rendered.body
    removal = notify.render(message.model_copy(update={"task_kind": "manual_step"}))
    assert removal.subject == "Task: remove dave@example.com from imanage"


async def test_an_offer_made_before_a_new_termination_can_no_longer_be_approved(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    """Rescinded, then terminated again: approving the old offer would hand a leaver their
    access back, so it is refused and the account stays inactive."""
    stack = await make_stack(scim_app, catalog_text=SCIM_ONLY)
    leaver = scim_app.users[5]
    uid = scim_app.ids[leaver.user_name]
    run_id = (await stack.webhook(terminated(leaver, 5))).json()["run_id"]
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", 60)
    assert (await stack.webhook(rescinded(stack, 5))).status_code == 202
    await wait_restore(stack, run_id, lambda v: v["status"] == "offered")

    again = (await stack.webhook(terminated(leaver, 5))).json()["run_id"]
    assert again is not None and again != run_id
    refused = await stack.http.post(f"/api/v1/offboardings/{run_id}/restore/approve")

    assert refused.status_code == 409, refused.text
    assert "superseded" in refused.json()["error"]["message"]
    await stack.wait_run(again, lambda r: r["status"] == "completed", 60)
    assert scim_app.server.get_user(uid)["active"] is False
