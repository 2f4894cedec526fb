"""Collection through a 429, then revocations at the close: in batches across continue-as-new,
and a SCIM revocation the app refuses becomes an exception task for the app's owners; the
campaign completes only once it is resolved."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from devstack.demo_data import demo_users
from devstack.scim_server import ScimServer, SeedUser
from tests.conftest import SCIM_TOKEN, StackFactory, catalog_yaml, scim_app_yaml
from tests.scim_quirks import Quirks
from tests.test_campaign_review import client_for, poll
from workflows.campaign import AccessReviewCampaignWorkflow
from workflows.campaign_messages import CampaignInput, CampaignTemplate

pytestmark = pytest.mark.slow

CATALOG = catalog_yaml(scim_app_yaml(page_size=10), protected="")
USERS = demo_users(60)


def everyone_in_one_group(users: list[SeedUser]) -> Iterator[tuple[ScimServer, Quirks]]:
    """A scim2-server behind a quirk front, seeded with ``users``, all in "Everyone"."""
    quirks = Quirks()
    with ScimServer(token=SCIM_TOKEN, middleware=quirks.wrap) as server:
        server.seed(users, {"Everyone": [u.user_name for u in users]})
        yield server, quirks


@pytest.fixture
def scim() -> Iterator[tuple[ScimServer, Quirks]]:
    yield from everyone_in_one_group(USERS)


async def test_revocations_continue_as_new_and_a_refused_one_goes_to_the_owner(
    make_stack: StackFactory, scim: tuple[ScimServer, Quirks]
) -> None:
    server, quirks = scim
    stack = await make_stack(catalog_text=CATALOG.replace("{base_url}", server.base_url))
    refused = USERS[7]
    refused_user = server.find_user(refused.user_name)
    assert refused_user is not None
    # The app refuses to deactivate one account (403): not retryable, a person must act.
    quirks.fail_next(10, 403, method="PATCH", path_contains=refused_user["id"])
    # Mid-listing, the app asks us to slow down: the listing waits and carries on.
    quirks.fail_next(1, 429, method="GET", path_contains="startIndex=31", retry_after="1")

    # Started the way a Schedule starts one: the workflow creates the campaign row itself.
    campaign_id = f"campaign-cas-{uuid.uuid4().hex[:8]}"
    handle = await stack.client.start_workflow(
        AccessReviewCampaignWorkflow.run,
        CampaignInput(
            template=CampaignTemplate(name="CAN", on_no_decision="revoke", due_in_days=3),
            history_limit=100,  # 60 revocations need two runs
        ),
        id=campaign_id,
        task_queue=stack.settings.task_queue,
    )
    first_run = handle.result_run_id
    campaign = await poll(
        lambda: stack.http.get(f"/api/v1/campaigns/{campaign_id}"),
        lambda r: r.status_code == 200 and r.json()["status"] == "reviewing",
        "the review to open",
    )
    campaign = campaign.json()
    assert campaign["counts"]["items"] == 60 and campaign["name"] == "CAN"
    assert quirks.count("GET", "startIndex=31") == 2, "the 429'd page was asked again"

    response = await stack.http.post(f"/api/v1/campaigns/{campaign_id}/close")
    assert response.status_code == 200, response.text
    assert response.json()["closed"]["scim_revocations"] == 60

    tasks = await poll(
        lambda: stack.tasks(status="open"),
        lambda ts: any(t["kind"] == "exception" for t in ts),
        "the exception task",
    )
    [task] = [t for t in tasks if t["kind"] == "exception"]
    assert task["app"] == "ironclad" and task["assignees"] == ["legal-ops@example.com"]
    assert refused.user_name in task["instructions"] and "HTTP 403" in task["instructions"]
    campaign = await _json(stack.http.get(f"/api/v1/campaigns/{campaign_id}"))
    assert campaign["status"] == "revoking"

    described = await stack.client.get_workflow_handle(campaign_id).describe()
    assert described.run_id != first_run, "the revocation loop continued as new"

    owner = client_for(stack, stack.token("app-admin", "legal-ops@example.com"))
    done = await owner.post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "done", "note": "deactivated in the Ironclad admin console"},
    )
    assert done.status_code == 200, done.text
    await owner.aclose()
    campaign = await poll(
        lambda: _json(stack.http.get(f"/api/v1/campaigns/{campaign_id}")),
        lambda c: c["status"] in ("completed", "failed"),
        "the campaign to finish",
    )
    assert campaign["status"] == "completed"

    report = await _json(stack.http.get(f"/api/v1/campaigns/{campaign_id}/report"))
    assert report["summary"]["revocations"] == {
        "pending": 0,
        "verified": 59,
        "done": 1,
        "failed": 0,
    }
    rows = {r["account"]: r for r in report["rows"]}
    assert rows[refused.user_name]["revocation"] == "done"
    assert (
        "deactivated in the Ironclad admin console" in rows[refused.user_name]["revocation_detail"]
    )
    for user in USERS:
        state = server.find_user(user.user_name)
        assert state is not None
        assert state["active"] is (user is refused), user.user_name
    trail = await stack.audit(refused.user_name.lower())
    kinds = [e["kind"] for e in trail["events"]]
    assert kinds == [
        "review.revocation_requested",
        "review.revocation_failed",
        "review.revocation_done",
    ]


async def _json(request: object) -> dict[str, object]:
    response = await request  # type: ignore[misc]
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body
