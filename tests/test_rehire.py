"""A rehire (``employee.rehired``, or ``employee.upserted`` with status active for a terminated
person): the person is active again, a live run stops removing, and the restore plan of what
already took effect is offered."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from db.models import Person
from tests.conftest import Stack, steps, terminated
from tests.test_restore import finish_manual_task, wait_restore

pytestmark = pytest.mark.slow


def hr_event(stack: Stack, index: int, kind: str, **employee: Any) -> dict[str, Any]:
    assert stack.scim is not None
    event = terminated(stack.scim.users[index], index)
    event["employee"].update(employee)
    return {**event, "event_id": f"evt-{uuid.uuid4().hex}", "type": kind}


def person(stack: Stack, person_id: str) -> Person:
    with stack.session() as session:
        found = session.get(Person, person_id)
        assert found is not None
        return found


async def test_an_upsert_marking_a_leaver_active_is_a_rehire(stack: Stack) -> None:
    run_id = (await stack.webhook(hr_event(stack, 5, "employee.terminated"))).json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human", 60)
    await finish_manual_task(stack, run_id)
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", 60)
    assert person(stack, "E1005").status == "terminated"

    # A plain upsert (no status) of a terminated person changes nothing about the run.
    plain = await stack.webhook(hr_event(stack, 5, "employee.upserted", department="Sales"))
    assert plain.status_code == 202 and plain.json()["run_id"] is None
    active = await stack.webhook(hr_event(stack, 5, "employee.upserted", status="active"))
    assert active.status_code == 202 and active.json()["run_id"] == run_id
    rehired = person(stack, "E1005")
    assert rehired.status == "active" and rehired.terminated_at is None
    plan = await wait_restore(stack, run_id, lambda v: v["status"] == "offered")
    assert plan["reason"] == "rehired"
    assert {a["app"]: a["action"] for a in plan["apps"]} == {
        "imanage": "human_task",
        "ironclad": "reactivate",
    }


async def test_a_rehire_stops_a_live_run_and_offers_what_took_effect(stack: Stack) -> None:
    assert stack.scim is not None
    uid = stack.scim.ids[stack.scim.users[6].user_name]
    run_id = (await stack.webhook(hr_event(stack, 6, "employee.terminated"))).json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human", 60)

    response = await stack.webhook(hr_event(stack, 6, "employee.rehired"))
    assert response.status_code == 202, response.text
    run = await stack.wait_run(run_id, lambda r: r["status"] == "cancelled", 60)
    assert steps(run) == {"ironclad": "verified", "imanage": "cancelled"}
    assert not [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
    plan = await wait_restore(stack, run_id, lambda v: v["status"] == "offered")
    # The manual app was never done, so there is nothing to restore there.
    assert [a["app"] for a in plan["apps"]] == ["ironclad"]
    assert stack.scim.server.get_user(uid)["active"] is False  # until an admin approves
    assert person(stack, "E1006").status == "active"


async def test_a_rehire_after_an_admin_run_offers_the_restore(stack: Stack) -> None:
    """An admin offboarded the person (HR never said terminated): HR's rehire still offers to
    restore what that run did."""
    assert stack.scim is not None
    started = await stack.http.post(
        "/api/v1/offboardings", json={"email": stack.scim.users[8].email, "reason": "contract end"}
    )
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human", 60)
    await finish_manual_task(stack, run_id)
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", 60)
    person_id = (await stack.run(run_id))["person"]["id"]

    event = hr_event(stack, 8, "employee.rehired")
    event["employee"]["id"] = person_id
    rehired = await stack.webhook(event)

    assert rehired.status_code == 202, rehired.text
    assert rehired.json()["run_id"] == run_id
    plan = await wait_restore(stack, run_id, lambda v: v["status"] == "offered")
    assert {a["app"]: a["action"] for a in plan["apps"]}["ironclad"] == "reactivate"
