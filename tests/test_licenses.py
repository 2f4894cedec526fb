"""Licences reclaimed: each run says the seats and monthly cost its verified (or done) steps
freed, from the catalog's ``license:``; /metrics keeps the running totals."""

from __future__ import annotations

import asyncio

import pytest

from tests.conftest import (
    ScimApp,
    StackFactory,
    catalog_yaml,
    manual_app_yaml,
    scim_app_yaml,
    steps,
    terminated,
)
from tests.test_restore import finish_manual_task, wait_restore

pytestmark = pytest.mark.slow

CATALOG = catalog_yaml(
    scim_app_yaml(app_keys="    license: {{cost_per_month: 45.5, currency: USD}}\n"),
    manual_app_yaml().replace(
        "    connector: manual\n",
        "    connector: manual\n    license: {{cost_per_month: 30, currency: EUR}}\n",
    ),
)
# The run's share of the counters (access reviews count under source="campaign").
USD, EUR = 'currency="USD",source="run"', 'currency="EUR",source="run"'


def metric(text: str, name: str, label: str) -> float:
    for line in text.splitlines():
        if line.startswith(f"{name}{{") and label in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def test_a_run_reports_the_seats_and_cost_it_reclaimed(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=CATALOG)
    before = (await stack.http.get("/metrics")).text
    response = await stack.webhook(terminated(scim_app.users[5], 5))
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")
    await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    run = await stack.run(run_id)
    assert run["licenses"] == {"seats": 1, "monthly_cost": {"USD": 45.5}}

    [task] = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
    done = await stack.http.post(
        f"/api/v1/tasks/{task['id']}/complete", json={"outcome": "done", "note": "disabled"}
    )
    assert done.status_code == 200, done.text
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert run["licenses"] == {"seats": 2, "monthly_cost": {"USD": 45.5, "EUR": 30.0}}
    listed = (await stack.http.get("/api/v1/offboardings")).json()
    assert [r["licenses"] for r in listed if r["run_id"] == run_id] == [run["licenses"]]

    name = "offboard_license_cost_reclaimed_total"
    for _ in range(100):  # counted once the state write has committed
        after = (await stack.http.get("/metrics")).text
        if metric(after, name, EUR) - metric(before, name, EUR) >= 30:
            break
        await asyncio.sleep(0.1)
    assert metric(after, name, USD) - metric(before, name, USD) == 45.5
    assert metric(after, name, EUR) - metric(before, name, EUR) == 30


async def test_a_seat_a_restore_gave_back_is_no_longer_reclaimed(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, catalog_text=CATALOG)
    leaver = terminated(scim_app.users[6], 6)
    run_id = (await stack.webhook(leaver)).json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")
    await finish_manual_task(stack, run_id)
    await stack.wait_run(run_id, lambda r: r["status"] == "completed")

    rescind = {**leaver, "event_id": "evt-rescind-6", "type": "employee.termination_rescinded"}
    assert (await stack.webhook(rescind)).status_code == 202
    await wait_restore(stack, run_id, lambda v: v["status"] == "offered")
    approved = await stack.http.post(f"/api/v1/offboardings/{run_id}/restore/approve")
    assert approved.status_code == 202, approved.text
    await wait_restore(
        stack,
        run_id,
        lambda v: {a["app"]: a["status"] for a in v["apps"]}["ironclad"] == "restored",
    )

    run = await stack.run(run_id)
    assert run["licenses"] == {"seats": 1, "monthly_cost": {"EUR": 30.0}}
