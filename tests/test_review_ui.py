"""An access review in a real browser (Debian's Chromium): a manager signs in from the link in
their review email, sees only their own accounts, revokes two at once and keeps one with a
justification; the admin's campaign page shows the progress; closing it applies the decisions
and the revoked accounts are inactive on the SCIM server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from pydantic import SecretStr

from tests.conftest import Inbox, ScimApp, StackFactory, catalog_yaml, scim_app_yaml
from tests.test_web_ui import ARTIFACTS, browser, chromium  # noqa: F401 (fixtures)

pytestmark = pytest.mark.slow

CATALOG = catalog_yaml(scim_app_yaml(deprovision="deactivate", gone_after_deactivate_ok=True))
ALICE = "alice.adams@example.com"
PEOPLE = f"""id,email,name,manager_email,department,status,terminated_at
E1000,{ALICE},Alice Adams,,Legal,active,
E1001,bob.brown@example.com,Bob Brown,{ALICE},Legal,active,
E1002,carol.clark@example.com,Carol Clark,{ALICE},Sales,active,
E1003,dave.davis@example.com,Dave Davis,{ALICE},Sales,terminated,2026-10-01
E1004,erin.evans@example.com,Erin Evans,gone.boss@example.com,Legal,active,
"""
MINE = ["bob.brown@example.com", "carol.clark@example.com", "dave.davis@example.com"]


async def poll(fetch: Callable[[], Any], ready: Callable[[Any], bool], what: str) -> Any:
    last: Any = None
    for _ in range(600):
        last = await fetch()
        if ready(last):
            return last
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {str(last)[:2000]}")


async def test_manager_reviews_from_the_email_link_and_close_revokes(
    make_stack: StackFactory,
    scim_app: ScimApp,
    smtp: tuple[Inbox, int],
    browser: Browser,  # noqa: F811 (the fixture)
) -> None:
    inbox, port = smtp
    stack = await make_stack(
        scim_app, catalog_text=CATALOG, smtp_url=SecretStr(f"smtp://127.0.0.1:{port}")
    )
    api = stack.http
    ARTIFACTS.mkdir(exist_ok=True)
    base = stack.settings.effective_public_url
    imported = await api.post(
        "/api/v1/people:import", content=PEOPLE, headers={"Content-Type": "text/csv"}
    )
    assert imported.status_code == 200, imported.text
    # -- The admin starts the review from the campaigns page.
    admin = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    apage = await admin.new_page()
    admin_errors: list[str] = []
    apage.on("console", lambda m: admin_errors.append(m.text) if m.type == "error" else None)
    await apage.goto("/login?next=/campaigns")
    await apage.fill("#token", stack.admin_token)
    await apage.get_by_role("button", name="Sign in").click()
    await expect(apage).to_have_url(f"{base}/campaigns")
    await apage.fill("#name", "Q4 access review")
    await apage.get_by_label("Ironclad").check()
    await apage.select_option("#reviewer", "manager")
    await apage.get_by_role("button", name="Start the review").click()
    await expect(apage).to_have_url(re.compile(r"/campaigns/campaign-[0-9a-f]+$"))
    campaign_id = apage.url.rsplit("/", 1)[1]
    started = (await api.get(f"/api/v1/campaigns/{campaign_id}")).json()
    assert (started["apps"], started["reviewer"], started["on_no_decision"]) == (
        ["ironclad"],
        "manager",
        "keep",
    )

    # -- The email: Alice's own review link.
    mails = await poll(
        lambda: asyncio.sleep(0, [m for m in inbox.messages if m["to"] == [ALICE]]),
        bool,
        "the review email to Alice",
    )
    link = re.search(r"http\S+", mails[0]["body"])
    assert link is not None
    assert link.group(0) == f"{base}/campaigns/{campaign_id}/review"
    items = (await api.get(f"/api/v1/campaigns/{campaign_id}/items")).json()
    erin = next(i for i in items if i["account"] == "erin.evans@example.com")
    assert erin["reviewer"] == "legal-ops@example.com"
    assert erin["reviewer_reason"] == (
        "app owner: the manager gone.boss@example.com is not in the HR directory"
    )

    # -- Alice follows it: sign-in first, then straight back to her review page.
    alice_token = stack.token("reviewer", ALICE)
    context = await browser.new_context(base_url=base, viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    errors: list[str] = []
    # Script and CSP errors; the refused decision's own 422 is expected.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text) if m.type == "error" and "status of 422" not in m.text else None
        ),
    )
    await page.goto(link.group(0))
    await expect(page).to_have_url(re.compile(r"/login\?next=/campaigns/.+/review$"))
    await page.fill("#token", alice_token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(link.group(0))
    rows = page.locator(".review-table tbody tr")
    await expect(rows).to_have_count(3)
    shown = sorted([await r.get_attribute("data-account") or "" for r in await rows.all()])
    assert shown == MINE
    # Riskiest first: the leaver leads, with the reason in words.
    first = rows.first
    await expect(first).to_have_attribute("data-account", "dave.davis@example.com")
    await expect(first).to_contain_text("terminated in HR")
    await expect(first).to_contain_text("Sales")
    await page.screenshot(path=str(ARTIFACTS / "review.png"), full_page=True)

    # -- Keeping a leaver's account needs a justification: refused, nothing decided.
    await page.locator('tr[data-account="dave.davis@example.com"] input[type=checkbox]').check()
    await page.get_by_role("button", name="Keep selected").click()
    await expect(page.locator(".alert-error")).to_contain_text("needs a justification")
    await expect(page.locator(".review-table input[type=checkbox]")).to_have_count(3)

    # -- Bulk: revoke Dave and Carol with one justification.
    for account in ("dave.davis@example.com", "carol.clark@example.com"):
        await page.locator(f'tr[data-account="{account}"] input[type=checkbox]').check()
    await page.locator('tr[data-account="bob.brown@example.com"] input[type=checkbox]').uncheck()
    await page.fill("textarea[name=justification]", "Left / moved teams")
    await page.get_by_role("button", name="Revoke selected").click()
    await expect(page.locator(".alert-ok")).to_contain_text("2 accounts marked for revocation")
    # -- Keep Bob, undo it (until the close, any decision can be taken back), keep him again.
    bob = page.locator('tr[data-account="bob.brown@example.com"]')
    await bob.locator("input[type=text]").fill("On the legal team?")
    await bob.get_by_role("button", name="Keep").click()
    await expect(page.locator(".alert-ok")).to_contain_text("1 account kept")
    await bob.get_by_role("button", name="Undo").click()
    await expect(page.locator(".alert-ok")).to_contain_text("1 decision undone")
    await bob.locator("input[type=text]").fill("Still on the legal team")
    await bob.get_by_role("button", name="Keep").click()
    await expect(page.locator(".alert-ok")).to_contain_text("1 account kept")
    await expect(page.locator(".counter").first).to_contain_text("0")
    await expect(bob).to_contain_text("Still on the legal team")
    await page.screenshot(path=str(ARTIFACTS / "review-decided.png"), full_page=True)
    assert not errors, errors
    decided = {
        i["account"]: (i["decision"], i["justification"], i["decided_by"])
        for i in (await api.get(f"/api/v1/campaigns/{campaign_id}/items?reviewer={ALICE}")).json()
    }
    assert decided == {
        "bob.brown@example.com": ("keep", "Still on the legal team", ALICE),
        "carol.clark@example.com": ("revoke", "Left / moved teams", ALICE),
        "dave.davis@example.com": ("revoke", "Left / moved teams", ALICE),
    }
    # The inbox counts what is left for her to review: nothing; so does /reviews.
    await page.goto("/")
    await expect(page.locator("#review-count")).to_contain_text("0")
    await page.goto("/reviews")
    await expect(page.locator("h2")).to_contain_text("No reviews waiting for you")
    # The campaign pages are for admins: Alice is told, and pointed at her own page.
    refused = await page.goto(f"/campaigns/{campaign_id}")
    assert refused is not None and refused.status == 403

    # -- The admin's campaign page shows the progress, then closes the review.
    await apage.goto(f"/campaigns/{campaign_id}")
    total = len(items)
    progress = apage.locator("#campaign-progress")
    await expect(progress).to_have_attribute("value", "3")
    await expect(progress).to_have_attribute("max", str(total))
    reviewers = apage.locator("#reviewers")
    await expect(reviewers.locator("tr", has_text=ALICE)).to_contain_text("3/3")
    await expect(reviewers.locator("tr", has_text="legal-ops@example.com")).to_contain_text(
        "not started"
    )
    await expect(apage.locator("#population")).to_contain_text("listed by")
    await apage.screenshot(path=str(ARTIFACTS / "campaign.png"), full_page=True)
    await apage.get_by_text("Close now…").click()
    await apage.fill("#reason", "audit binder due")
    await apage.get_by_label("I understand: close the review now").check()
    await apage.get_by_role("button", name="Close the review").click()
    await expect(apage.locator(".alert-ok")).to_contain_text("The review is closed")

    # -- Closing applied the decisions: the two revoked accounts are inactive on the app.
    done = await poll(
        lambda: api.get(f"/api/v1/campaigns/{campaign_id}"),
        lambda r: r.json()["status"] in ("completed", "failed"),
        "the campaign to complete",
    )
    assert done.json()["status"] == "completed", done.text
    for account in ("dave.davis@example.com", "carol.clark@example.com"):
        assert scim_app.user_by_email(account)["active"] is False, account
    assert scim_app.user_by_email("bob.brown@example.com")["active"] is True
    # The campaign page followed along by itself (htmx), and prints without the chrome.
    live = apage.locator("#campaign-live")
    await expect(live).to_have_attribute("data-status", "completed", timeout=30_000)
    await apage.emulate_media(media="print")
    await expect(apage.locator(".topbar")).to_be_hidden()
    await expect(apage.get_by_text("Download CSV")).to_be_hidden()
    await expect(apage.locator("#reviewers")).to_be_visible()
    await apage.screenshot(path=str(ARTIFACTS / "campaign-print.png"), full_page=True)
    assert not admin_errors, admin_errors
    await context.close()
    await admin.close()
