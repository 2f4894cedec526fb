"""A new run's history stays lean: one patch marker stands for every patch, the plan goes out
with the first step's start, and the last step's status with the run's end, each in one state
write (what a burst pays per person)."""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType

from devstack.demo_data import demo_users
from tests.conftest import ScimApp, StackFactory, terminated
from tests.test_scim_stack import SCIM_ONLY
from workflows.offboarding import LEAN_HISTORY

pytestmark = pytest.mark.slow


async def test_a_new_run_records_one_patch_and_two_state_writes(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=SCIM_ONLY)
    response = await stack.webhook(terminated(demo_users(3)[2], 2))
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert [a["status"] for a in run["apps"]] == ["verified"]

    markers, upserts, snapshots = [], 0, []
    async for event in stack.client.get_workflow_handle("offboard-E1002").fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == "core_patch":
                markers.append(json.loads(attrs.details["patch-data"].payloads[0].data)["id"])
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upserts += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            attrs = event.activity_task_scheduled_event_attributes
            if attrs.activity_type.name == "record_run":
                snapshots.append(json.loads(attrs.input.payloads[0].data))
    assert markers == [LEAN_HISTORY] and upserts == 1
    # Two writes: everything up to the step's start (before the step's activity writes the
    # trail itself), then the step's outcome with the run's end.
    assert len(snapshots) == 2
    first = snapshots[0]
    assert [e["kind"] for e in first["events"]] == ["run.planned", "run.started", "step.started"]
    assert [s["status"] for s in first["steps"]] == ["running"]
    # No write shows the step verified while the run is not yet complete: they went together.
    last = snapshots[-1]
    assert last["completed_at"] and last["run_status"] == "completed"
    assert [s["status"] for s in last["steps"]] == ["verified"]
    assert "step.verified" in [e["kind"] for e in last["events"]]
    assert all(s["completed_at"] for s in snapshots if s["steps"][0]["status"] == "verified")
