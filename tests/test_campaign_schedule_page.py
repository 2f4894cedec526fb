"""The quarterly schedule page: an admin saves a schedule from the form (a Temporal Schedule on
the dev server, first Monday of each quarter at 09:00 in its time zone), sees its next runs,
replaces it under the same name, and deletes it; bad input changes nothing."""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest
from temporalio.service import RPCError

from api.deps import SESSION_COOKIE
from api.web.render import csrf_token
from services.campaign_schedules import SCHEDULE_PREFIX
from tests.conftest import ScimApp, StackFactory

pytestmark = pytest.mark.slow


async def page_until(http: httpx.AsyncClient, ready: re.Pattern[str], present: bool) -> str:
    """The schedules page once ``ready`` is (or is no longer) on it: listing is eventually
    consistent on the server."""
    text = ""
    for _ in range(150):
        text = (await http.get("/campaigns/schedules")).text
        if bool(ready.search(text)) is present:
            return text
        await asyncio.sleep(0.2)
    raise AssertionError(f"the schedules page never {'showed' if present else 'lost'} it")


async def test_admin_saves_replaces_and_deletes_a_quarterly_schedule(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app)
    name = f"web-{stack.settings.task_queue[-8:]}"
    form = {
        "csrf_token": csrf_token(stack.admin_token),
        "schedule_name": name,
        "name": "Quarterly review",
        "apps": "ironclad",
        "due_in_days": "10",
        "reviewer": "manager",
        "on_no_decision": "keep",
        "time_zone": "Europe/Berlin",
    }
    async with httpx.AsyncClient(
        base_url=str(stack.http.base_url), cookies={SESSION_COOKIE: stack.admin_token}
    ) as http:
        try:
            bad = await http.post("/campaigns/schedules", data={**form, "time_zone": "Mars/Base"})
            assert bad.status_code == 303 and "unknown+time+zone" in bad.headers["location"]
            unknown = await http.post("/campaigns/schedules", data={**form, "apps": "nope"})
            assert "unknown+app" in unknown.headers["location"]
            saved = await http.post("/campaigns/schedules", data=form)
            assert saved.headers["location"] == f"/campaigns/schedules?saved={name}"
            row = re.compile(rf'data-schedule="{name}".*?</tr>', re.S)
            text = await page_until(http, row, True)
            shown = row.search(text)
            assert shown is not None
            assert "first Monday of each quarter" in shown.group(0)
            assert "Europe/Berlin" in shown.group(0) and "due in 10.0 days" in shown.group(0)
            assert re.search(r"\d{4}-(01|04|07|10)-0[1-7] 0[78]:00 UTC", shown.group(0))
            # Saving the same name replaces it.
            again = await http.post("/campaigns/schedules", data={**form, "due_in_days": "5"})
            assert again.status_code == 303
            text = await page_until(http, re.compile(r"due in 5\.0 days"), True)
            assert text.count(f'data-schedule="{name}"') == 1
            gone = await http.post(
                f"/campaigns/schedules/{name}/delete", data={"csrf_token": form["csrf_token"]}
            )
            assert gone.status_code == 303
            await page_until(http, re.compile(f'data-schedule="{name}"'), False)
            forged = await http.post("/campaigns/schedules", data={**form, "csrf_token": "x"})
            assert forged.status_code == 403
        finally:
            with contextlib.suppress(RPCError):
                await stack.client.get_schedule_handle(f"{SCHEDULE_PREFIX}{name}").delete()
