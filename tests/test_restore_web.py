"""The run page shows the restore plan to an admin, who approves it with one button (Chromium)."""

# Fixtures are imported from tests.test_web_ui by name.
# ruff: noqa: F811

from __future__ import annotations

import pytest
from playwright.async_api import Browser, expect

from tests.conftest import ScimApp, StackFactory, terminated
from tests.test_restore import rescinded, wait_restore
from tests.test_scim_stack import SCIM_ONLY
from tests.test_web_ui import browser, chromium, sign_in  # noqa: F401

pytestmark = pytest.mark.slow


async def test_an_admin_approves_the_restore_on_the_run_page(
    make_stack: StackFactory, scim_app: ScimApp, browser: Browser
) -> None:
    stack = await make_stack(scim_app, catalog_text=SCIM_ONLY)
    uid = scim_app.ids[scim_app.users[8].user_name]
    run_id = (await stack.webhook(terminated(scim_app.users[8], 8))).json()["run_id"]
    await stack.wait_run(run_id, lambda r: r["status"] == "completed", 60)
    assert (await stack.webhook(rescinded(stack, 8))).status_code == 202
    await wait_restore(stack, run_id, lambda v: v["status"] == "offered")

    context, page = await sign_in(browser, str(stack.http.base_url), stack.admin_token)
    try:
        await page.goto(f"/runs/{run_id}")
        plan = page.locator("section.restore")
        await expect(plan).to_contain_text("Restore plan · offered")
        await expect(plan).to_contain_text("reactivate the account")
        await plan.get_by_role("button", name="Approve the restore").click()
        await expect(plan).to_contain_text("approved by admin@example.com")
        await expect(plan.get_by_role("button", name="Approve the restore")).to_have_count(0)
    finally:
        await context.close()
    await wait_restore(stack, run_id, lambda v: v["status"] == "completed")
    assert scim_app.server.get_user(uid)["active"] is True
