"""/metrics tells an operator what happened: webhooks, runs, steps, open tasks."""

from __future__ import annotations

import re

import httpx
import pytest

from devstack.ports import free_port
from metrics import count_scim_response, serve_metrics
from tests.conftest import Stack, steps, terminated

pytestmark = pytest.mark.slow


def value(text: str, series: str) -> float:
    match = re.search(rf"^{re.escape(series)} ([0-9.e+]+)$", text, re.MULTILINE)
    assert match, f"{series} not in /metrics"
    return float(match.group(1))


async def test_an_offboarding_shows_up_in_metrics(stack: Stack) -> None:
    assert stack.scim is not None
    before = (await stack.http.get("/metrics")).text
    bad = await stack.webhook(terminated(stack.scim.users[4], 4), secret="wrong")
    assert bad.status_code == 401
    response = await stack.webhook(terminated(stack.scim.users[4], 4))
    run_id = response.json()["run_id"]
    # iManage's task is open (waiting_human) only once its task row exists; wait for both.
    await stack.wait_run(
        run_id,
        lambda r: steps(r).get("ironclad") == "verified" and r["status"] == "waiting_human",
    )

    scrape = await stack.http.get("/metrics", headers={"Authorization": ""})
    assert scrape.status_code == 200
    text = scrape.text
    accepted = 'offboard_webhook_events_total{outcome="accepted"}'
    rejected = 'offboard_webhook_events_total{outcome="bad_signature"}'
    started = 'offboard_runs_started_total{trigger="webhook"}'
    for series in (accepted, rejected, started):
        earlier = value(before, series) if series in before else 0.0
        assert value(text, series) == earlier + 1
    assert (
        value(text, 'offboard_step_duration_seconds_count{app="ironclad",outcome="verified"}') >= 1
    )
    assert value(text, 'offboard_open_human_tasks{age="lt_1h",app="imanage"}') == 1
    assert value(text, 'offboard_runs{status="waiting_human"}') == 1
    assert value(text, 'offboard_scim_requests_total{app="ironclad",status="200"}') >= 1


async def test_a_worker_serves_its_own_metrics_on_its_port() -> None:
    """`offboard worker` has no API: its counters (steps, runs finished, SCIM responses) are
    served on OFFBOARD_WORKER_METRICS_PORT."""
    port = free_port()
    serve_metrics(port, host="127.0.0.1")
    count_scim_response("ironclad", 200)
    async with httpx.AsyncClient() as http:
        scrape = await http.get(f"http://127.0.0.1:{port}/metrics")
    assert scrape.status_code == 200
    assert value(scrape.text, 'offboard_scim_requests_total{app="ironclad",status="200"}') >= 1
    assert "offboard_step_duration_seconds" in scrape.text
