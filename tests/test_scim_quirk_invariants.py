"""The promise, against every app behaviour we know: a termination end to end, then the app
itself (read directly, past the quirk front) must agree with what offboard said.

(a) ``verified`` => the account is inactive or gone and in no group;
(b) every bystander is still active, and every other member is still in every group;
(c) no app is ``skipped`` when the app has the account;
(d) a run is never ``completed`` while access remains.
Plus each profile's expected end: verified, or failed with an exception task saying what is
known.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.conftest import ScimApp, Stack, StackFactory, steps, terminated
from tests.scim_quirk_profiles import PROFILES, Profile
from tests.test_scim_stack import SCIM_ONLY

pytestmark = pytest.mark.slow

LEAVER = 4  # in "All staff", "Legal" and "Sales"


def snapshot(app: ScimApp) -> tuple[dict[str, bool], dict[str, set[str]]]:
    """The app's true state: each user's active flag, each group's member ids."""
    users = app.server._search("/Users", None)
    groups = app.server._search("/Groups", None)
    return (
        {u["id"]: u.get("active", True) is not False for u in users},
        {g["displayName"]: {m["value"] for m in g.get("members", [])} for g in groups},
    )


async def settled(stack: Stack, run_id: str) -> dict[str, Any]:
    """The run once the app's step has ended (verified/skipped) or its exception is open."""

    async def ready(run: dict[str, Any]) -> bool:
        status = steps(run).get("ironclad")
        if status in ("verified", "skipped"):
            return True
        if status != "failed":
            return False
        return any(t["run_id"] == run_id for t in await stack.tasks(status="open"))

    for _ in range(1200):
        run = await stack.run(run_id)
        if await ready(run):
            return run
        await asyncio.sleep(0.1)
    return await stack.wait_run(run_id, lambda r: False, timeout=1)


@pytest.mark.parametrize("profile", PROFILES, ids=[p.name for p in PROFILES])
async def test_what_offboard_says_is_what_the_app_shows(
    make_stack: StackFactory, scim_app: ScimApp, profile: Profile
) -> None:
    leaver = scim_app.users[LEAVER]
    leaver_id = scim_app.ids[leaver.user_name]
    profile.setup(scim_app, LEAVER)
    users_before, groups_before = snapshot(scim_app)
    assert any(leaver_id in members for members in groups_before.values())
    extra = "".join(f"      {k}: {v}\n" for k, v in profile.scim.items())
    stack = await make_stack(scim_app, catalog_text=SCIM_ONLY + extra, step_retry_budget_seconds=5)
    event = terminated(leaver, LEAVER)
    if profile.email_case == "mixed":
        event["employee"]["email"] = leaver.email.title()  # Dave.Davis@Example.Com
    response = await stack.webhook(event)
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]

    run = await settled(stack, run_id)
    [step] = run["apps"]
    users_after, groups_after = snapshot(scim_app)
    account = scim_app.server.get_user(leaver_id)
    access_remains = (account is not None and account.get("active") is not False) or any(
        leaver_id in members for members in groups_after.values()
    )
    # (a) verified means the app shows access gone
    if step["status"] == "verified":
        assert not access_remains, step
    # (b) nobody else touched
    for user_id, active in users_before.items():
        if user_id != leaver_id:
            assert users_after.get(user_id) == active, f"bystander {user_id} changed"
    for name, members in groups_before.items():
        lost = members - {leaver_id} - groups_after.get(name, set())
        assert not lost, f"{name} lost {len(lost)} other members"
    # (c) the app has the account, so it is never skipped
    assert step["status"] != "skipped", step
    # (d) never completed while access remains
    if access_remains:
        assert run["status"] != "completed", run
    assert step["status"] == profile.outcome, step
    if profile.outcome == "failed":
        # Its only open work is the exception task (the status write may trail the task's).
        await stack.wait_run(run_id, lambda r: r["status"] == "waiting_human", timeout=60)
        [task] = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
        assert task["kind"] == "exception" and step["detail"] in task["instructions"]
        if account is not None and account.get("active") is False:
            # What is known is said: access was cut before the step stopped.
            assert "access cut at" in step["detail"], step
