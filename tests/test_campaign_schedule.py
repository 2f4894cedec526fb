"""``offboard campaign schedule``: a Temporal Schedule (first Monday of each quarter, 09:00 in a
configured time zone) that starts a campaign from its template when it fires, on the dev server.
Also the rest of ``offboard campaign``: status, report, and the usage errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from click.testing import Result
from temporalio.service import RPCError
from typer.testing import CliRunner

from cli.main import app as cli
from config import get_settings
from tests.conftest import CATALOG, ScimApp, StackFactory
from tests.test_campaign_review import poll

pytestmark = pytest.mark.slow


def values(ranges: Any) -> set[int]:
    return {v for r in ranges for v in range(r.start, max(r.end, r.start) + 1, r.step or 1)}


@pytest.fixture
def cli_env(
    make_stack: StackFactory, scim_app: ScimApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Any:
    async def build() -> Any:
        stack = await make_stack(scim_app)
        catalog = tmp_path / "apps.yaml"
        catalog.write_text(CATALOG.format(base_url=scim_app.server.base_url))
        env = {
            "OFFBOARD_TEMPORAL_ADDRESS": stack.settings.temporal_address,
            "OFFBOARD_TASK_QUEUE": stack.settings.task_queue,
            "OFFBOARD_DATABASE_URL": stack.db_url,
            "OFFBOARD_DATA_DIR": str(tmp_path),
            "OFFBOARD_CATALOG": str(catalog),
            "OFFBOARD_CAMPAIGN_TIME_ZONE": "Europe/Berlin",
        }
        for key, value in env.items():
            monkeypatch.setenv(key, value or "")
        get_settings.cache_clear()
        return stack

    yield build
    get_settings.cache_clear()


async def offboard(*args: str) -> Result:
    # The CLI runs its own event loop (asyncio.run), so it gets a thread of its own.
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_quarterly_schedule_starts_a_campaign_when_triggered(cli_env: Any) -> None:
    stack = await cli_env()
    name = f"q-{uuid.uuid4().hex[:8]}"
    schedule_id = f"campaign-schedule-{name}"
    client = stack.client

    usage = await offboard("campaign", "schedule", "--quarterly", "--cron", "0 9 * * 1")
    assert usage.exit_code == 2
    bad_zone = await offboard("campaign", "schedule", "--quarterly", "--time-zone", "Mars/Olympus")
    assert bad_zone.exit_code == 2 and "time zone" in bad_zone.output

    created = await offboard(
        "campaign", "schedule", "--quarterly", "--id", name, "--name", "Quarterly review",
        "--apps", "ironclad", "--due-in-days", "10", "--on-no-decision", "revoke",
    )  # fmt: skip
    assert created.exit_code == 0, created.output
    assert schedule_id in created.output
    handle = client.get_schedule_handle(schedule_id)
    cron_name = f"{name}-cron"
    try:
        described = await handle.describe()
        [calendar] = described.schedule.spec.calendars
        assert values(calendar.month) == {1, 4, 7, 10}
        assert values(calendar.day_of_month) == set(range(1, 8))
        assert values(calendar.day_of_week) == {1}  # Monday
        assert values(calendar.hour) == {9} and values(calendar.minute) == {0}
        assert described.schedule.spec.time_zone_name == "Europe/Berlin"
        berlin = ZoneInfo("Europe/Berlin")
        upcoming = [t.astimezone(berlin) for t in described.info.next_action_times]
        assert len(upcoming) >= 3
        for moment in upcoming:
            assert moment.month in (1, 4, 7, 10) and moment.day <= 7
            assert moment.weekday() == 0 and (moment.hour, moment.minute) == (9, 0)

        listed = await offboard("campaign", "schedule", "--list")
        assert listed.exit_code == 0, listed.output
        assert name in listed.output

        # Firing it starts a campaign from the template (the worker runs it).
        await handle.trigger()
        campaigns = await poll(
            lambda: _json(stack.http.get("/api/v1/campaigns")),
            lambda cs: any(c["trigger"] == "schedule" and c["status"] == "reviewing" for c in cs),
            "the scheduled campaign",
        )
        [campaign] = [c for c in campaigns if c["trigger"] == "schedule"]
        assert campaign["id"].startswith(f"campaign-{name}-")
        year = datetime.now().year
        assert campaign["name"].startswith("Quarterly review ") and str(year) in campaign["name"]
        assert campaign["apps"] == ["ironclad"] and campaign["on_no_decision"] == "revoke"
        assert campaign["counts"]["items"] == 20

        status = await offboard("campaign", "status", campaign["id"], "--json")
        assert status.exit_code == 0, status.output
        assert json.loads(status.output)["counts"]["items"] == 20
        report = await offboard("campaign", "report", campaign["id"], "--format", "csv")
        assert report.exit_code == 0, report.output
        rows = list(csv.DictReader(io.StringIO(report.output)))
        assert len(rows) == 20 and {r["app"] for r in rows} == {"ironclad"}
        missing = await offboard("campaign", "status", "campaign-nope")
        assert missing.exit_code == 1

        cron = await offboard(
            "campaign", "schedule", "--cron", "0 9 1 */3 *", "--id", cron_name, "--name", "Cron"
        )
        assert cron.exit_code == 0, cron.output
        cron_schedule = client.get_schedule_handle(f"campaign-schedule-{cron_name}")
        assert (await cron_schedule.describe()).schedule.spec.time_zone_name == "Europe/Berlin"
    finally:
        for each in (name, cron_name):
            await offboard("campaign", "schedule", "--delete", each)
    with pytest.raises(RPCError):
        await handle.describe()


async def _json(request: Any) -> Any:
    response = await request
    assert response.status_code == 200, response.text
    return response.json()
