"""A burst larger than an app's rate limit allows: every step waits its turn in the app's own
task queue (durably, costing no timeout) and finishes; none times out while waiting."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.api.enums.v1 import EventType

from devstack.demo_data import demo_users
from tests.conftest import ScimApp, StackFactory, terminated
from tests.test_scim_stack import SCIM_ONLY

pytestmark = pytest.mark.slow

# 5 requests/s and a 6 s step timeout: a worker runs one step of this app at a time. Twelve
# terminations need about 90 requests, ~18 s at this rate: started all at once, the later
# steps would wait longer than their timeout inside the rate gate, time out and start over.
THROTTLED = SCIM_ONLY + "      rate_limit_per_minute: 300\n      step_timeout_seconds: 6\n"
PEOPLE = 12


async def test_a_burst_beyond_the_rate_finishes_without_step_timeouts(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=THROTTLED)
    assert stack.catalog.apps[0].scim and stack.catalog.apps[0].scim.admission == 1
    people = demo_users(PEOPLE)
    responses = await asyncio.gather(
        *(stack.webhook(terminated(person, i)) for i, person in enumerate(people))
    )
    run_ids = [r.json()["run_id"] for r in responses]
    for run_id in run_ids:
        run = await stack.wait_run(run_id, lambda r: r["status"] == "completed", timeout=240)
        assert [a["status"] for a in run["apps"]] == ["verified"]
    for person in people:
        user = scim_app.server.find_user(person.user_name)
        assert user is not None and user["active"] is False
    # Every step ran once: none timed out and started over (a retried attempt shows in its
    # started event's attempt number; only a final timeout would be an event of its own).
    attempts = []
    for i in range(PEOPLE):
        handle = stack.client.get_workflow_handle(f"offboard-E{1000 + i}")
        async for event in handle.fetch_history_events():
            assert event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attempts.append(event.activity_task_started_event_attributes.attempt)
    assert attempts and set(attempts) == {1}
