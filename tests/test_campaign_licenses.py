"""Licences reclaimed by an access review: the seats and monthly cost of its revocations that
took (verified, or done by a person), per app and in total, in the API view, the evidence, the
campaign page and the metric (labelled ``source="campaign"``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.deps import SESSION_COOKIE
from devstack.demo_data import demo_users
from devstack.scim_server import ScimServer
from tests.conftest import Stack, StackFactory, catalog_yaml, scim_app_yaml
from tests.scim_quirks import Quirks
from tests.test_campaign_review import poll
from tests.test_campaign_revocations import everyone_in_one_group
from tests.test_licenses import metric

pytestmark = pytest.mark.slow

CATALOG = catalog_yaml(
    scim_app_yaml(app_keys="    license: {{cost_per_month: 12.5, currency: USD}}\n"),
    protected="",
)
USERS = demo_users(4)
COST = 'currency="USD",source="campaign"'
SEATS = 'app="ironclad",source="campaign"'


@pytest.fixture
def scim() -> Iterator[tuple[ScimServer, Quirks]]:
    yield from everyone_in_one_group(USERS)


async def campaign(stack: Stack, campaign_id: str) -> dict[str, Any]:
    response = await stack.http.get(f"/api/v1/campaigns/{campaign_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def scrape(stack: Stack) -> tuple[float, float]:
    text = (await stack.http.get("/metrics")).text
    return (
        metric(text, "offboard_license_cost_reclaimed_total", COST),
        metric(text, "offboard_license_seats_reclaimed_total", SEATS),
    )


async def test_a_campaign_reports_the_licences_its_revocations_reclaimed(
    make_stack: StackFactory, scim: tuple[ScimServer, Quirks]
) -> None:
    server, quirks = scim
    stack = await make_stack(catalog_text=CATALOG.replace("{base_url}", server.base_url))
    refused = server.find_user(USERS[2].user_name)
    assert refused is not None
    # The app refuses one deactivation: that seat is reclaimed only once a person does it.
    quirks.fail_next(10, 403, method="PATCH", path_contains=refused["id"])
    cost_before, seats_before = await scrape(stack)
    started = await stack.http.post(
        "/api/v1/campaigns",
        json={"name": "Q2 Ironclad", "apps": ["ironclad"], "on_no_decision": "revoke"},
    )
    assert started.status_code == 202, started.text
    campaign_id = started.json()["id"]
    await poll(
        lambda: campaign(stack, campaign_id), lambda c: c["status"] == "reviewing", "the review"
    )
    closed = await stack.http.post(f"/api/v1/campaigns/{campaign_id}/close")
    assert closed.status_code == 200, closed.text

    tasks = await poll(
        lambda: stack.tasks(status="open"),
        lambda ts: any(t["kind"] == "exception" for t in ts),
        "the exception task for the refused revocation",
    )
    view = await poll(
        lambda: campaign(stack, campaign_id),
        lambda c: c["licenses"]["seats"] == 3,
        "three verified revocations",
    )
    assert view["licenses"] == {
        "seats": 3,
        "monthly_cost": {"USD": 37.5},
        "by_app": {"ironclad": {"seats": 3, "monthly_cost": {"USD": 37.5}}},
    }
    [task] = [t for t in tasks if t["kind"] == "exception"]
    done = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "done", "note": "by hand"}
    )
    assert done.status_code == 200, done.text
    await poll(
        lambda: campaign(stack, campaign_id), lambda c: c["status"] == "completed", "completion"
    )

    report = (await stack.http.get(f"/api/v1/campaigns/{campaign_id}/report")).json()
    whole = {"seats": 4, "monthly_cost": {"USD": 50.0}}
    assert report["summary"]["licenses"] == {**whole, "by_app": {"ironclad": whole}}
    assert (await campaign(stack, campaign_id))["licenses"]["seats"] == 4
    async with httpx.AsyncClient(
        base_url=str(stack.http.base_url), cookies={SESSION_COOKIE: stack.admin_token}
    ) as browser:
        page = await browser.get(f"/campaigns/{campaign_id}")
    assert page.status_code == 200, page.text
    assert "Licences reclaimed by revocations: 4 seats" in page.text
    assert "50.00 USD a month" in page.text
    cost_after, seats_after = await scrape(stack)
    assert (cost_after - cost_before, seats_after - seats_before) == (50.0, 4)
