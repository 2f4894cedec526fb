"""The web UI in a real browser (Debian's Chromium): sign in, work a task, watch the run finish."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect
from sqlmodel import Session, select

from api.app import create_app
from api.web.render import csrf_token
from config import Settings, parse_catalog
from db import audit
from db.migrate import upgrade
from db.models import AuditEvent
from db.session import get_engine
from services.tokens import create_token
from tests.conftest import CATALOG, Stack, steps, terminated
from workflows.types import AuditEventIn

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
HELPDESK = "it-helpdesk@example.com"  # the catalog's iManage assignee
IT_LEAD = "it-lead@example.com"  # an owner of iManage


@pytest.fixture
def chromium() -> str:
    assert Path(CHROMIUM).exists(), "install Debian's Chromium: apt-get install -y chromium"
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    # Debian's Chromium, never a downloaded browser build; plain launch = a fresh temp profile.
    # What a click starts (an Update to a workflow, then the page it redirects to) can take
    # longer than Playwright's 5 s default on a loaded machine: assertions poll for 30 s.
    expect.set_options(timeout=30_000)
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        await browser.close()


async def sign_in(browser: Browser, base_url: str, token: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(
        base_url=base_url, viewport={"width": 1280, "height": 820}, device_scale_factor=1
    )
    page = await context.new_page()
    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/login\?next=/$"))
    await page.screenshot(path=str(ARTIFACTS / "login.png"))
    await page.fill("#token", token)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{base_url}/")
    return context, page


async def open_task(stack: Stack, run_id: str) -> dict[str, Any]:
    """The run's iManage task, once its workflow has written the row."""
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")
    for _ in range(100):
        found = [t for t in await stack.tasks(status="open") if t["run_id"] == run_id]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no open task for run {run_id}")


@pytest.mark.slow
async def test_helpdesk_completes_task_in_browser_and_run_completes(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    assert stack.scim is not None
    ARTIFACTS.mkdir(exist_ok=True)
    base = f"http://127.0.0.1:{stack.settings.port}"
    dave, erin = stack.scim.users[3], stack.scim.users[4]
    run_id = (await stack.webhook(terminated(dave, 3))).json()["run_id"]
    other_run = (await stack.webhook(terminated(erin, 4))).json()["run_id"]
    task = await open_task(stack, run_id)
    await open_task(stack, other_run)

    # The helpdesk signs in with the login form and lands on the inbox.
    helpdesk, page = await sign_in(browser, base, stack.token("app-admin", HELPDESK))
    cookie = next(c for c in await helpdesk.cookies() if c["name"] == "offboard_session")
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # the public URL is plain http here
    row = page.locator(".task-row", has_text=dave.email)
    await expect(row).to_contain_text("iManage Work")
    await expect(row.locator(".badge.due")).to_contain_text("due in 23h")
    await expect(page.locator(".task-row")).to_have_count(2)
    await page.screenshot(path=str(ARTIFACTS / "inbox.png"), full_page=True)

    # Forged form posts (no CSRF token, or a wrong one) are refused and change nothing.
    form = {"outcome": "done", "note": "forged"}
    missing = await page.request.post(f"/tasks/{task['id']}/complete", multipart=form)
    assert missing.status == 403
    wrong = await page.request.post(
        f"/tasks/{task['id']}/complete", multipart={**form, "csrf_token": "0" * 64}
    )
    assert wrong.status == 403
    assert "security token" in await wrong.text()
    [still] = [t for t in await stack.tasks() if t["id"] == task["id"]]
    assert still["status"] == "open"

    # The helpdesk owns no app, so the run page tells it which role is needed.
    refused = await page.goto(f"/runs/{run_id}")
    assert refused is not None and refused.status == 403
    await expect(page.locator(".need")).to_contain_text("admin")
    await page.screenshot(path=str(ARTIFACTS / "forbidden.png"))

    # iManage's owner watches the run live while the helpdesk works the task.
    lead, watch = await sign_in(browser, base, stack.token("app-admin", IT_LEAD))
    console_errors: list[str] = []
    watch.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
    await watch.goto(f"/runs/{run_id}")
    live = watch.locator("#run-live")
    await expect(live).to_have_attribute("data-status", "waiting_human")
    await expect(live.locator("tr[data-app=imanage]")).to_contain_text("waiting human")

    await page.goto("/")
    await page.locator(".task-row", has_text=dave.email).locator("a").click()
    await expect(page).to_have_url(f"{base}/tasks/{task['id']}")
    await expect(page.locator(".instructions")).to_contain_text(dave.email)
    await page.select_option("#outcome", "done")
    await page.fill("#note", "Disabled in Control Center, removed from 4 workspaces.")
    evidence = tmp_path / "control-center.png"
    evidence.write_bytes(b"\x89PNG fake screenshot of the disabled account")
    await page.set_input_files("#evidence", str(evidence))
    await page.screenshot(path=str(ARTIFACTS / "task.png"), full_page=True)
    await page.get_by_role("button", name="Mark complete").click()
    await expect(page).to_have_url(f"{base}/tasks/{task['id']}?completed=1")
    await expect(page.locator(".alert-ok")).to_contain_text("Task completed")

    # No reload: htmx polling brings the run page to completed, then stops polling.
    await expect(live).to_have_attribute("data-status", "completed", timeout=30_000)
    await expect(live.locator("tr[data-app=imanage]")).to_contain_text("done")
    await expect(live.locator("tr[data-app=ironclad]")).to_contain_text("verified")
    await expect(live).not_to_have_attribute("hx-trigger", re.compile(".*"))
    await watch.screenshot(path=str(ARTIFACTS / "run.png"), full_page=True)
    assert console_errors == []  # e.g. nothing blocked by the Content-Security-Policy

    run = await stack.run(run_id)
    assert run["status"] == "completed"
    sha = hashlib.sha256(evidence.read_bytes()).hexdigest()
    assert (stack.settings.data_dir / "evidence" / sha).read_bytes() == evidence.read_bytes()
    trail = await stack.audit("E1003")
    [done] = [e for e in trail["events"] if e["kind"] == "task.completed"]
    assert done["actor"] == HELPDESK
    assert done["detail"]["evidence_sha256"] == sha
    assert done["detail"]["note"].startswith("Disabled in Control Center")

    # An admin reads the person's trail with its chain check.
    admin, audit_page = await sign_in(browser, base, stack.admin_token)
    await audit_page.goto("/people/E1003/audit")
    await expect(audit_page.locator(".chain")).to_contain_text("Chain verified")
    await expect(audit_page.locator(".event")).to_have_count(len(trail["events"]))
    await audit_page.screenshot(path=str(ARTIFACTS / "audit.png"), full_page=True)
    await audit_page.goto("/runs")
    await expect(audit_page.locator("tbody tr")).to_have_count(2)
    await audit_page.screenshot(path=str(ARTIFACTS / "runs.png"), full_page=True)
    await audit_page.get_by_role("link", name="completed 1").click()
    await expect(audit_page).to_have_url(f"{base}/runs?status=completed")
    chip = audit_page.get_by_role("link", name="completed 1")
    await expect(chip).to_have_attribute("aria-current", "true")
    await expect(audit_page.locator("tbody tr")).to_have_count(1)
    await expect(audit_page.locator("tbody tr")).to_contain_text(dave.email)
    for context in (helpdesk, lead, admin):
        await context.close()


# ----- the same app in-process (no browser, no Temporal): cookies, redirects, roles -----------


async def _client(tmp_path: Path, public_url: str | None) -> tuple[httpx.AsyncClient, Settings]:
    settings = Settings(data_dir=tmp_path, public_url=public_url)
    upgrade(settings.effective_database_url)
    app = create_app(settings, parse_catalog(CATALOG.format(base_url="http://127.0.0.1:9/v2")))
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver"), settings


def _token(settings: Settings, role: str, email: str) -> str:
    with Session(get_engine(settings.effective_database_url)) as session:
        return create_token(session, role, f"{role}-web", email)  # type: ignore[arg-type]


async def _login(http: httpx.AsyncClient, token: str, next_: str = "/") -> httpx.Response:
    form = await http.get("/login", params={"next": next_})
    nonce = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert nonce is not None
    return await http.post(
        "/login", data={"token": token, "csrf_token": nonce.group(1), "next": next_}
    )


@pytest.mark.parametrize(
    ("public_url", "secure"),
    [("https://offboard.example.com", True), ("http://127.0.0.1:8000", False), (None, False)],
)
async def test_session_cookie_flags(tmp_path: Path, public_url: str | None, secure: bool) -> None:
    http, settings = await _client(tmp_path, public_url)
    async with http:
        response = await _login(http, _token(settings, "reviewer", "r@example.com"), "/tasks/x")
    assert response.status_code == 303
    assert response.headers["location"] == "/tasks/x"
    [session_cookie] = [
        c for c in response.headers.get_list("set-cookie") if c.startswith("offboard_session=")
    ]
    attributes = {a.strip().lower() for a in session_cookie.split(";")}
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert ("secure" in attributes) is secure


async def test_pages_redirect_to_login_and_name_the_needed_role(tmp_path: Path) -> None:
    http, settings = await _client(tmp_path, None)
    async with http:
        anonymous = await http.get("/runs", params={"status": "failed"})
        assert anonymous.status_code == 303
        assert anonymous.headers["location"] == "/login?next=/runs%3Fstatus%3Dfailed"

        bad = await http.post("/login", data={"token": "nope", "csrf_token": "x"})
        assert bad.status_code == 403 and "offboard_session" not in bad.headers.get(
            "set-cookie", ""
        )
        unknown = await _login(http, "ofb_not-a-token")
        assert unknown.status_code == 401 and "unknown or revoked" in unknown.text
        evil = await _login(http, _token(settings, "reviewer", "r@example.com"), "//evil.test/")
        assert evil.headers["location"] == "/"

        inbox = await http.get("/")
        assert inbox.status_code == 200 and "Nothing waiting for you" in inbox.text
        assert inbox.headers["x-frame-options"] == "DENY"
        runs = await http.get("/runs")
        assert runs.status_code == 403
        assert "admin or app-admin" in runs.text
        audit = await http.get("/people/E1/audit")
        assert audit.status_code == 403 and "Needed role: <strong>admin" in audit.text
        task = await http.get("/tasks/nope")
        assert task.status_code == 404

        csrf = re.search(r'name="csrf_token" value="([^"]+)"', inbox.text)
        assert csrf is not None
        out = await http.post("/logout", data={"csrf_token": csrf.group(1)})
        assert out.status_code == 303
        assert (await http.get("/")).status_code == 303


async def test_audit_page_shows_the_chain_check(tmp_path: Path) -> None:
    http, settings = await _client(tmp_path, None)
    engine = get_engine(settings.effective_database_url)
    events = [
        AuditEventIn(
            person_id="E7",
            workflow_id="offboard-E7",
            step_id=str(n),
            kind=kind,
            at=f"2026-01-0{n}T10:00:00+00:00",
            detail={"apps": [{"app": "ironclad", "action": "deprovision"}], "n": n},
        )
        for n, kind in enumerate(("run.planned", "step.started", "run.completed"), start=1)
    ]
    audit.append(lambda: Session(engine), events)
    async with http:
        await _login(http, _token(settings, "admin", "admin@example.com"))
        page = await http.get("/people/E7/audit")
        assert page.status_code == 200
        assert "Chain verified." in page.text
        assert "app ironclad · action deprovision" in page.text
        with Session(engine) as session:
            row = session.exec(
                select(AuditEvent).where(AuditEvent.subject_id == "E7", AuditEvent.seq == 2)
            ).one()
            row.detail = {"n": 99}
            session.add(row)
            session.commit()
        page = await http.get("/people/E7/audit")
        assert "Chain broken at seq 2" in page.text
        assert page.text.count("event event-bad") == 2
        missing = await http.get("/people/nobody/audit")
        assert missing.status_code == 404


def test_csrf_token_is_bound_to_the_session() -> None:
    assert csrf_token("ofb_a") == csrf_token("ofb_a")
    assert csrf_token("ofb_a") != csrf_token("ofb_b")
    assert "ofb_a" not in csrf_token("ofb_a")
