"""A reviewer who leaves mid-campaign hands their pending items to the app's owner without
waiting for the next notice: the running campaign checks every few hours (Temporal's
time-skipping server makes the hours pass), and the move is on the campaign's trail."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select
from temporalio.testing import WorkflowEnvironment

from db.models import Person
from devstack.scim_server import ScimServer
from tests.conftest import StackFactory
from tests.test_campaign_deadline import CATALOG, _get, campaign_on, scim  # noqa: F401 (fixture)
from tests.test_campaign_review import poll
from tests.test_end_to_end import save_history
from workflows.campaign import REVIEWER_CHECK_EVERY
from workflows.campaign_messages import CampaignTemplate

pytestmark = pytest.mark.slow
ALICE = "alice.adams@example.com"


async def test_items_of_a_reviewer_who_left_move_to_the_owner(
    make_stack: StackFactory,
    scim: ScimServer,  # noqa: F811 (the fixture)
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    stack = await make_stack(
        catalog_text=CATALOG.replace("{base_url}", scim.base_url), worker=False
    )
    template = CampaignTemplate(name="reviewer leaves", due_in_days=14)
    async with campaign_on(stack, env, template) as campaign:
        path = f"/api/v1/campaigns/{campaign.id}/items"
        items = await poll(
            lambda: _get(stack, path, reviewer=ALICE),
            lambda got: len(got) == 2,
            "Alice's two items",
        )
        assert {i["reviewer_reason"] for i in items} == {"manager"}
        # Alice is terminated in HR (as the HR webhook would record it).
        with stack.session() as session:
            alice = session.exec(select(Person).where(Person.email == ALICE)).one()
            alice.status = "terminated"
            session.add(alice)
            session.commit()
        await env.sleep(REVIEWER_CHECK_EVERY + timedelta(minutes=5))
        moved = await poll(
            lambda: _get(stack, path, reviewer="legal-ops@example.com"),
            lambda got: {i["account"] for i in items} <= {i["account"] for i in got},
            "Alice's items to move to the app owner",
        )
        reason = (
            "app owner: the reviewer alice.adams@example.com has left (terminated or offboarded)"
        )
        assert {
            i["reviewer_reason"] for i in moved if i["account"] in {"bob.brown@example.com"}
        } == {reason}
        assert await _get(stack, path, reviewer=ALICE) == []
        trail = await stack.campaign_audit(campaign.id)
        [event] = [e for e in trail["events"] if e["kind"] == "review.reviewer_moved"]
        assert event["detail"]["from"] == ALICE
        assert event["detail"]["to"] == "legal-ops@example.com"
        assert event["detail"]["items"] == 2
        assert trail["chain_valid"] is True
        await save_history(
            stack, campaign.id, env="OFFBOARD_SAVE_CAMPAIGN_HISTORY", client=env.client
        )
        await env.client.get_workflow_handle(campaign.id).terminate("test over")
