"""A new run's history stays lean: one patch marker stands for every patch, the apps are planned
in one activity, the plan goes out with the steps' start, and the steps' results with the run's
end, each in one state write (what a burst pays per person)."""

from __future__ import annotations

import json

import pytest
from temporalio.api.enums.v1 import EventType

from devstack.demo_data import demo_users
from devstack.scim_server import ScimServer
from tests.conftest import (
    SCIM_TOKEN,
    ScimApp,
    StackFactory,
    catalog_yaml,
    scim_app_yaml,
    terminated,
)
from workflows.offboarding import LOCAL_RECORDS

pytestmark = pytest.mark.slow


async def test_a_new_run_records_one_patch_one_plan_and_two_state_writes(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    leaver = demo_users(3)[2]
    with ScimServer(token=SCIM_TOKEN) as second:
        second.seed([leaver], {"Legal": [leaver.user_name]})
        catalog = catalog_yaml(
            scim_app_yaml(), scim_app_yaml("docusign", name="DocuSign", base_url=second.base_url)
        )
        stack = await make_stack(scim_app, catalog_text=catalog)
        response = await stack.webhook(terminated(leaver, 2))
        run_id = response.json()["run_id"]
        run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert [a["status"] for a in run["apps"]] == ["verified", "verified"]

    markers, upserts, activities, settle_timeouts = [], 0, [], 0
    local: list[tuple[str, int]] = []  # local activities run: (type, result)
    async for event in stack.client.get_workflow_handle("offboard-E1002").fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED:
            attrs = event.marker_recorded_event_attributes
            if attrs.marker_name == "core_patch":
                markers.append(json.loads(attrs.details["patch-data"].payloads[0].data)["id"])
            elif attrs.marker_name == "core_local_activity":
                data = json.loads(attrs.details["data"].payloads[0].data)
                result = json.loads(attrs.details["result"].payloads[0].data)
                local.append((data["activity_type"], result))
        elif event.event_type == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            upserts += 1
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            settle_timeouts += 1
        elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            activities.append(event.activity_task_scheduled_event_attributes.activity_type.name)
    assert markers == [LOCAL_RECORDS] and upserts == 1
    # Both apps planned by one activity, then one step activity each: the server dispatches
    # nothing else. The state is written by local activities, twice: everything up to the
    # steps' start (before a step's activity writes the trail itself), then both outcomes with
    # the run's end. Only a machine so loaded that the steps ended over 10 s apart writes the
    # first one apart.
    assert sorted(activities) == ["deprovision_scim"] * 2 + ["plan_apps"]
    writes = 2 + settle_timeouts
    assert [kind for kind, _ in local] == ["catalog_apps"] + ["record_run"] * writes
    # The first write: the plan, run.started and both steps' start (4 events), in that order.
    assert local[1][1] == 4
    trail = [e["kind"] for e in (await stack.audit("E1002"))["events"]]
    run_events = trail[trail.index("run.planned") :]
    assert run_events[:4] == ["run.planned", "run.started", "step.started", "step.started"]
    assert run_events.count("step.verified") == 2 and run_events[-1] == "run.completed"
