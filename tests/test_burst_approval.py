"""A run held by the burst guard goes ahead only when an admin approves it, and the approval
is on the person's trail with the approver's name."""

from __future__ import annotations

import pytest

from tests.conftest import ScimApp, StackFactory, steps, terminated
from tests.test_scim_stack import SCIM_ONLY

pytestmark = pytest.mark.slow


async def test_held_run_waits_for_an_audited_approval(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=SCIM_ONLY, burst_threshold=1)
    first = (await stack.webhook(terminated(scim_app.users[3], 3))).json()["run_id"]
    held = (await stack.webhook(terminated(scim_app.users[4], 4))).json()["run_id"]
    await stack.wait_run(first, lambda r: r["status"] == "completed", timeout=60)
    run = await stack.wait_run(held, lambda r: r["status"] == "scheduled", timeout=60)
    assert steps(run) == {"ironclad": "pending"}  # nothing touched while held
    assert scim_app.user_by_email(scim_app.users[4].email)["active"] is True

    # Only a held run can be approved.
    refused = await stack.http.post(f"/api/v1/offboardings/{first}/approve")
    assert refused.status_code == 409, refused.text
    approved = await stack.http.post(f"/api/v1/offboardings/{held}/approve")
    assert approved.status_code == 202, approved.text
    again = await stack.http.post(f"/api/v1/offboardings/{held}/approve")
    assert again.status_code == 409 and again.json()["error"]["code"] == "cannot_approve"

    await stack.wait_run(held, lambda r: r["status"] == "completed", timeout=60)
    events = (await stack.audit("E1004"))["events"]
    kinds = [e["kind"] for e in events]
    assert kinds.index("run.held_for_approval") < kinds.index("run.approved")
    assert kinds.index("run.approved") < kinds.index("run.started")
    [approval] = [e for e in events if e["kind"] == "run.approved"]
    assert approval["actor"] == approved.json()["approved_by"] != "offboard"
