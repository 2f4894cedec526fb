"""Cookies only where CSRF is checked: the JSON API's writes take bearer tokens only; the web
UI's forms (logout too) carry a CSRF token and refuse a foreign Origin."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.conftest import Stack, steps, terminated

pytestmark = pytest.mark.slow


async def signed_in(stack: Stack) -> tuple[httpx.AsyncClient, str]:
    """A browser-like client holding only the session cookie; and a page's CSRF token."""
    browser = httpx.AsyncClient(base_url=str(stack.http.base_url))
    form = await browser.get("/login")
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert nonce is not None
    login = await browser.post(
        "/login", data={"token": stack.admin_token, "csrf_token": nonce.group(1), "next": "/"}
    )
    assert login.status_code == 303, login.text
    inbox = await browser.get("/")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', inbox.text)
    assert csrf is not None
    return browser, csrf.group(1)


async def test_a_session_cookie_cannot_change_anything_on_the_json_api(stack: Stack) -> None:
    assert stack.scim is not None
    started = await stack.webhook(terminated(stack.scim.users[3], 3))
    run_id = started.json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")
    browser, _ = await signed_in(stack)
    try:
        # Reads work with the cookie (the audit page's download links) ...
        assert (await browser.get(f"/api/v1/offboardings/{run_id}")).status_code == 200
        # ... writes do not, however they are encoded.
        for attempt in (
            browser.post(f"/api/v1/offboardings/{run_id}/cancel"),
            browser.post(f"/api/v1/offboardings/{run_id}/cancel", json={}),
            browser.post(f"/api/v1/offboardings/{run_id}/approve"),
            browser.post(f"/api/v1/offboardings/{run_id}/steps/ironclad/retry"),
            browser.post("/api/v1/campaigns/c-x/close"),
            browser.post("/api/v1/offboardings", json={"email": "x@example.com"}),
        ):
            response = await attempt
            assert response.status_code == 401, response.text
    finally:
        await browser.aclose()
    run = await stack.run(run_id)
    assert run["status"] == "waiting_human"


async def test_logout_needs_the_csrf_token_and_this_origin(stack: Stack) -> None:
    browser, csrf = await signed_in(stack)
    try:
        assert (await browser.get("/logout")).status_code == 405
        forged = await browser.post("/logout")
        assert forged.status_code == 403
        foreign = await browser.post(
            "/logout", data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert (await browser.get("/")).status_code == 200  # still signed in

        out = await browser.post(
            "/logout", data={"csrf_token": csrf}, headers={"Origin": str(stack.http.base_url)}
        )
        assert out.status_code == 303
        assert (await browser.get("/")).status_code == 303
    finally:
        await browser.aclose()
