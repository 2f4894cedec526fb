"""Nobody decides: at the deadline ``on_no_decision`` applies, on Temporal's time-skipping server.

The 14-day review window passes in seconds: the reminders (50%, one day before), the owners'
escalation (last day) and the close fire at their workflow times; under ``revoke`` every
account is deactivated on the real SCIM server and read back (a protected account is kept),
under ``keep`` nothing is touched. Both campaigns end ``completed``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.testing import WorkflowEnvironment

from db.models import Campaign
from db.session import Db
from devstack.demo_data import demo_users
from devstack.scim_server import ScimServer, SeedUser
from services.campaigns import start_campaign
from tests.conftest import SCIM_TOKEN, Inbox, Stack, StackFactory, catalog_yaml, scim_app_yaml
from tests.test_campaign_review import poll
from worker import build_worker
from workflows.campaign_messages import CampaignOutcome, CampaignTemplate

pytestmark = pytest.mark.slow

CATALOG = catalog_yaml(scim_app_yaml(gone_after_deactivate_ok=True), service_accounts='"svc-*"')

PEOPLE = """id,email,name,manager_email,department,status,terminated_at
E1000,alice.adams@example.com,Alice Adams,,Legal,active,
E1001,bob.brown@example.com,Bob Brown,alice.adams@example.com,Legal,active,
E1002,carol.clark@example.com,Carol Clark,alice.adams@example.com,Legal,terminated,2026-10-01
"""

SEEDED = [
    *[u.user_name for u in demo_users(3)],
    "svc-ci@example.com",
    "breakglass@example.com",
    "nobody.known@example.com",
]


@pytest.fixture
def scim() -> Iterator[ScimServer]:
    extras = [
        SeedUser(name, name, "X", "Y")
        for name in SEEDED
        if name not in {u.user_name for u in demo_users(3)}
    ]
    with ScimServer(token=SCIM_TOKEN) as server:
        server.seed([*demo_users(3), *extras])
        yield server


@contextlib.asynccontextmanager
async def campaign_on(
    stack: Stack, env: WorkflowEnvironment, template: CampaignTemplate
) -> AsyncIterator[Campaign]:
    """Import PEOPLE, run a worker on the time-skipping server and start the campaign there."""
    response = await stack.http.post(
        "/api/v1/people:import", content=PEOPLE, headers={"Content-Type": "text/csv"}
    )
    assert response.status_code == 200, response.text
    worker = build_worker(
        env.client, stack.settings, stack.catalog, stack.registry, f"ts-{uuid.uuid4().hex}"
    )
    settings = stack.settings.model_copy(update={"task_queue": worker.task_queue})
    async with worker:
        yield await start_campaign(
            env.client, Db(stack.db_url), settings, stack.catalog, template, "admin@example.com"
        )


async def run_to_deadline(
    stack: Stack, env: WorkflowEnvironment, on_no_decision: str
) -> tuple[str, CampaignOutcome]:
    template = CampaignTemplate(
        name=f"deadline {on_no_decision}",
        due_in_days=14,
        on_no_decision=on_no_decision,  # type: ignore[arg-type]
    )
    async with campaign_on(stack, env, template) as campaign:
        await poll(
            lambda: _get(stack, f"/api/v1/campaigns/{campaign.id}"),
            lambda c: c["status"] == "reviewing",
            "the review to open",
        )
        # Skip the idle days (the test server jumps from timer to timer), then wait for the
        # close and the revocations, which run in real time.
        await env.sleep(timedelta(days=14, hours=1))
        handle = env.client.get_workflow_handle(campaign.id, result_type=CampaignOutcome)
        outcome = await handle.result()
    return campaign.id, outcome


async def _get(stack: Stack, path: str, **params: Any) -> Any:
    response = await stack.http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def _at(event: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(event["at"])


async def assert_timeline(stack: Stack, campaign_id: str) -> None:
    """Reminders at 50% and one day before, escalation on the last day, close at the due time."""
    trail = await stack.campaign_audit(campaign_id)
    assert trail["chain_valid"] is True
    events = {e["kind"]: e for e in trail["events"]}
    reminders = [e for e in trail["events"] if e["kind"] == "notify.review_reminder"]
    start = _at(events["campaign.started"])
    assert [round((_at(e) - start) / timedelta(hours=1)) for e in reminders] == [7 * 24, 13 * 24]
    escalation = _at(events["notify.review_escalation"]) - start
    assert timedelta(days=13) < escalation < timedelta(days=14)
    assert events["review.closed"]["detail"]["reason"] == "deadline"
    assert _at(events["review.closed"]) - start >= timedelta(days=14) - timedelta(minutes=1)
    assert reminders[0]["detail"]["recipients"] == {
        "alice.adams@example.com": 2,  # Bob and Carol
        "legal-ops@example.com": 4,  # Alice (no manager), svc-ci, breakglass, the orphan
    }
    assert events["notify.review_escalation"]["detail"]["recipients"] == {
        "legal-ops@example.com": 6
    }


async def test_deadline_without_decisions_revokes_everything_but_protected(
    make_stack: StackFactory,
    scim: ScimServer,
    time_skipping_env: WorkflowEnvironment,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    stack = await make_stack(
        catalog_text=CATALOG.replace("{base_url}", scim.base_url),
        worker=False,
        smtp_url=SecretStr(f"smtp://127.0.0.1:{port}"),
    )
    campaign_id, outcome = await run_to_deadline(stack, time_skipping_env, "revoke")
    assert outcome.status == "completed"
    await assert_timeline(stack, campaign_id)
    reminders = [m for m in inbox.messages if m["subject"].startswith("Reminder: access review")]
    assert sorted(r for m in reminders for r in m["to"]) == [
        "alice.adams@example.com", "alice.adams@example.com",
        "legal-ops@example.com", "legal-ops@example.com",
    ]  # fmt: skip
    assert all(f"/campaigns/{campaign_id}/review" in m["body"] for m in reminders)

    items = await _get(stack, f"/api/v1/campaigns/{campaign_id}/items")
    assert len(items) == len(SEEDED)
    assert all(i["auto_decided"] for i in items)
    by_account = {i["account"]: i for i in items}
    kept = by_account.pop("breakglass@example.com")
    assert kept["decision"] == "keep" and kept["revocation"] is None
    assert {i["decision"] for i in by_account.values()} == {"revoke"}
    assert {i["revocation"] for i in by_account.values()} == {"verified"}
    for name in by_account:
        user = scim.find_user(name)
        assert user is not None and user["active"] is False, name
    breakglass = scim.find_user("breakglass@example.com")
    assert breakglass is not None and breakglass["active"] is True

    report = await _get(stack, f"/api/v1/campaigns/{campaign_id}/report")
    assert report["summary"]["by_decision"] == {"keep": 1, "revoke": 5, "pending": 0}
    assert report["summary"]["auto_decided"] == 6
    assert report["summary"]["revocations"]["verified"] == 5
    carol = await stack.audit("E1002")
    kinds = [e["kind"] for e in carol["events"]]
    assert kinds == ["review.revocation_requested", "scim.deactivated", "step.verified"]
    assert carol["events"][0]["detail"]["auto_decided"] is True


async def test_deadline_without_decisions_keeps_everything(
    make_stack: StackFactory, scim: ScimServer, time_skipping_env: WorkflowEnvironment
) -> None:
    stack = await make_stack(
        catalog_text=CATALOG.replace("{base_url}", scim.base_url), worker=False
    )
    campaign_id, outcome = await run_to_deadline(stack, time_skipping_env, "keep")
    assert outcome.status == "completed"
    await assert_timeline(stack, campaign_id)

    items = await _get(stack, f"/api/v1/campaigns/{campaign_id}/items")
    assert len(items) == len(SEEDED)
    assert {(i["decision"], i["auto_decided"], i["revocation"]) for i in items} == {
        ("keep", True, None)
    }
    for name in SEEDED:
        user = scim.find_user(name)
        assert user is not None and user["active"] is True, name
    campaign = await _get(stack, f"/api/v1/campaigns/{campaign_id}")
    assert campaign["status"] == "completed"
    assert campaign["counts"] == {"items": 6, "decided": 6, "keep": 6, "revoke": 0, "pending": 0}
