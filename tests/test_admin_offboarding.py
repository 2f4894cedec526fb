"""An IT admin offboards by hand: by email, as a dry run, later, cancelled, never the protected."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select

from db.models import AuditEvent, HumanTask, OffboardingRun
from devstack.scim_server import SeedUser
from tests.conftest import Stack, steps

pytestmark = pytest.mark.slow

OFFBOARDINGS = "/api/v1/offboardings"


# -- helpers -----------------------------------------------------------------------------


async def workflows_on_queue(stack: Stack) -> list[Any]:
    query = f'TaskQueue = "{stack.settings.task_queue}"'
    return [execution async for execution in stack.client.list_workflows(query)]


async def wait_workflows_on_queue(stack: Stack, count: int, timeout: float = 15) -> list[Any]:
    """Visibility is eventually consistent: wait until `count` executions are listed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: list[Any] = []
    while loop.time() < deadline:
        found = await workflows_on_queue(stack)
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} workflow(s) on the queue, saw {found}")


def rows(stack: Stack, model: Any) -> list[Any]:
    with stack.session() as session:
        return list(session.exec(select(model)).all())


async def wait_open_tasks(stack: Stack, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tasks: list[dict[str, Any]] = []
    while loop.time() < deadline:
        tasks = await stack.tasks(status="open")
        if len(tasks) >= count:
            return tasks
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} open task(s), saw {tasks}")


def assert_error(response: httpx.Response, status: int, *mentions: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    told = f"{error['message']} {error['details']}".lower()
    for word in mentions:
        assert word.lower() in told, f"{word!r} not in {error}"
    return error


async def upsert_person(stack: Stack, person_id: str, user: SeedUser) -> None:
    response = await stack.webhook(
        {
            "event_id": f"evt-{uuid.uuid4().hex}",
            "type": "employee.upserted",
            "employee": {
                "id": person_id,
                "email": user.email,
                "name": f"{user.given_name} {user.family_name}",
                "manager_email": "alice.adams@example.com",
                "department": "Legal",
            },
        }
    )
    assert response.status_code == 202, response.text


def in_future(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


# -- starting -------------------------------------------------------------------------------


async def test_offboard_known_hr_person_by_email(stack: Stack) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]
    await upsert_person(stack, "E1003", dave)
    assert rows(stack, OffboardingRun) == []  # an upsert alone offboards nobody

    response = await stack.http.post(
        OFFBOARDINGS, json={"email": dave.email.upper(), "reason": "left the firm"}
    )

    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    assert run["person"] == {"id": "E1003", "email": dave.email}
    assert stack.scim.user_by_email(dave.email)["active"] is False
    [task] = await wait_open_tasks(stack, 1)
    assert task["run_id"] == run_id and task["app"] == "imanage"
    assert task["person"]["id"] == "E1003"


async def test_offboard_unknown_contractor_by_email(stack: Stack) -> None:
    assert stack.scim is not None
    contractor = SeedUser(
        "Pat.Temp@Partner.example", "Pat.Temp@Partner.example", "Pat", "Temp", external_id=None
    )
    [scim_id] = stack.scim.server.seed([contractor]).values()

    response = await stack.http.post(
        OFFBOARDINGS, json={"email": "  Pat.Temp@Partner.example ", "reason": "contract ended"}
    )

    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    assert run["person"] == {"id": "pat.temp@partner.example", "email": "pat.temp@partner.example"}
    user = stack.scim.server.get_user(scim_id)
    assert user is not None and user["active"] is False
    # Nobody else lost access.
    assert all(stack.scim.user_by_email(u.email)["active"] for u in stack.scim.users)
    trail = await stack.audit("pat.temp@partner.example")
    assert trail["events"][0]["kind"] == "run.planned"


async def test_dry_run_returns_the_plan_and_changes_nothing(stack: Stack) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]

    response = await stack.http.post(OFFBOARDINGS, json={"email": dave.email, "dry_run": True})

    assert response.status_code == 200, response.text
    plan = {entry["app"]: entry for entry in response.json()["apps"]}
    assert set(plan) == {"ironclad", "imanage"}
    for entry in plan.values():
        assert set(entry) == {"app", "action", "account", "reason"}
    assert plan["ironclad"]["action"] == "deprovision"
    assert plan["ironclad"]["account"] == dave.user_name
    assert plan["imanage"]["action"] == "manual_task"

    assert stack.scim.user_by_email(dave.email)["active"] is True
    assert stack.scim.server.groups_of(stack.scim.ids[dave.user_name])
    assert stack.scim.quirks.count("PATCH") == stack.scim.quirks.count("PUT") == 0
    assert stack.scim.quirks.count("DELETE") == 0
    assert rows(stack, OffboardingRun) == []
    assert rows(stack, AuditEvent) == []
    assert rows(stack, HumanTask) == []
    listed = await stack.http.get(OFFBOARDINGS)
    assert listed.status_code == 200 and listed.json() == []
    [only] = await wait_workflows_on_queue(stack, 1)
    assert only.workflow_type == "PlanWorkflow"


async def test_dry_run_for_unmatched_person_says_why(stack: Stack) -> None:
    response = await stack.http.post(
        OFFBOARDINGS, json={"email": "nobody@elsewhere.example", "dry_run": True}
    )
    assert response.status_code == 200, response.text
    plan = {entry["app"]: entry for entry in response.json()["apps"]}
    assert plan["ironclad"]["action"] == "skip"
    assert plan["ironclad"]["account"] is None
    assert "nobody@elsewhere.example" in plan["ironclad"]["reason"]


async def test_unknown_app_is_refused_and_nothing_starts(stack: Stack) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]
    for dry_run in (False, True):
        response = await stack.http.post(
            OFFBOARDINGS,
            json={"email": dave.email, "apps": ["ironclad", "salesforce"], "dry_run": dry_run},
        )
        error = assert_error(response, 422, "salesforce")
        assert "ironclad" not in error["message"]
    assert await workflows_on_queue(stack) == []
    assert rows(stack, OffboardingRun) == []
    assert stack.scim.user_by_email(dave.email)["active"] is True


@pytest.mark.parametrize(
    "body",
    [{"reason": "no identity"}, {"email": "", "employee_id": ""}, {"dry_run": True}],
    ids=["nothing", "empty strings", "dry run without identity"],
)
async def test_missing_email_and_employee_id_is_422(stack: Stack, body: dict[str, Any]) -> None:
    response = await stack.http.post(OFFBOARDINGS, json=body)
    assert_error(response, 422, "email", "employee_id")
    assert await workflows_on_queue(stack) == []
    assert rows(stack, OffboardingRun) == []


async def test_unknown_employee_id_is_404_not_a_new_person(stack: Stack) -> None:
    response = await stack.http.post(OFFBOARDINGS, json={"employee_id": "E404"})
    assert_error(response, 404, "E404")
    assert await workflows_on_queue(stack) == []


# -- timing and cancelling ----------------------------------------------------------------


async def test_effective_at_holds_the_run_until_then(stack: Stack) -> None:
    assert stack.scim is not None
    erin = stack.scim.users[4]

    response = await stack.http.post(
        OFFBOARDINGS, json={"email": erin.email, "effective_at": in_future(3)}
    )

    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    # Read-your-writes: the run is there the moment the 202 is.
    first = await stack.http.get(f"{OFFBOARDINGS}/{run_id}")
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "scheduled"
    assert first.json()["run_id"] == run_id
    assert stack.scim.user_by_email(erin.email)["active"] is True

    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    assert run["status"] in ("running", "waiting_human")
    assert stack.scim.user_by_email(erin.email)["active"] is False
    kinds = [e["kind"] for e in (await stack.audit(erin.email))["events"]]
    assert kinds.index("run.waiting") < kinds.index("run.started")


async def test_unparseable_effective_at_is_422_naming_the_field(stack: Stack) -> None:
    # A zone-less time is read in OFFBOARD_HR_TIME_ZONE (tests/test_intake_validation.py).
    response = await stack.http.post(
        OFFBOARDINGS, json={"email": "x@example.com", "effective_at": "next tuesday"}
    )
    assert_error(response, 422, "effective_at")
    assert await workflows_on_queue(stack) == []


async def test_cancel_while_scheduled_deactivates_nothing(stack: Stack) -> None:
    assert stack.scim is not None
    frank = stack.scim.users[5]
    response = await stack.http.post(
        OFFBOARDINGS, json={"email": frank.email, "effective_at": in_future(3600)}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    await stack.wait_run(
        run_id,
        lambda r: (
            r["status"] == "scheduled" and steps(r) == {"ironclad": "pending", "imanage": "pending"}
        ),
    )

    cancel = await stack.http.post(f"{OFFBOARDINGS}/{run_id}/cancel")

    assert cancel.status_code in (200, 202), cancel.text
    run = await stack.wait_run(run_id, lambda r: r["status"] == "cancelled")
    assert steps(run) == {"ironclad": "cancelled", "imanage": "cancelled"}
    assert run["completed_at"] is not None
    assert stack.scim.user_by_email(frank.email)["active"] is True
    assert stack.scim.quirks.count("PATCH") == 0
    assert await stack.tasks() == []
    listed = await stack.http.get(OFFBOARDINGS, params={"status": "cancelled"})
    assert [r["run_id"] for r in listed.json()] == [run_id]

    again = await stack.http.post(f"{OFFBOARDINGS}/{run_id}/cancel")
    assert_error(again, 409, "cancelled")


async def test_protected_account_is_never_deprovisioned(stack: Stack) -> None:
    assert stack.scim is not None
    ids = stack.scim.server.seed(
        [SeedUser("breakglass@example.com", "breakglass@example.com", "Break", "Glass")]
    )
    scim_id = ids["breakglass@example.com"]

    dry = await stack.http.post(
        OFFBOARDINGS, json={"email": "BreakGlass@Example.com", "dry_run": True}
    )
    assert dry.status_code == 200, dry.text
    assert {e["action"] for e in dry.json()["apps"]} == {"skip"}

    response = await stack.http.post(OFFBOARDINGS, json={"email": "BreakGlass@Example.com"})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")

    assert steps(run) == {"ironclad": "skipped", "imanage": "skipped"}
    for step in run["apps"]:
        assert "protected" in step["detail"].lower(), step
    user = stack.scim.server.get_user(scim_id)
    assert user is not None and user["active"] is True
    assert stack.scim.quirks.count("PATCH") == 0
    assert await stack.tasks() == []  # not even a manual task for iManage

    # A finished run cannot be cancelled.
    cancel = await stack.http.post(f"{OFFBOARDINGS}/{run_id}/cancel")
    assert_error(cancel, 409, "completed")


# -- who may ------------------------------------------------------------------------------

ADMIN_ENDPOINTS = [
    ("POST", OFFBOARDINGS, {"email": "carol.clark@example.com"}),
    ("POST", OFFBOARDINGS, {"email": "carol.clark@example.com", "dry_run": True}),
    ("GET", OFFBOARDINGS, None),
    ("GET", f"{OFFBOARDINGS}/{{run_id}}", None),
    ("POST", f"{OFFBOARDINGS}/{{run_id}}/cancel", None),
    ("POST", f"{OFFBOARDINGS}/{{run_id}}/steps/ironclad/retry", None),
]


async def test_offboarding_endpoints_need_an_admin_token(stack: Stack) -> None:
    assert stack.scim is not None
    # A real, live run, so a refusal cannot be a 404 in disguise.
    later = in_future(3600)
    response = await stack.http.post(
        OFFBOARDINGS, json={"email": "dave.davis@example.com", "effective_at": later}
    )
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    await stack.wait_run(run_id, lambda r: r["status"] == "scheduled" and bool(r["apps"]))
    await wait_workflows_on_queue(stack, 1)
    reviewer = stack.token("reviewer", "r@example.com")
    base_url = str(stack.http.base_url)

    async with (
        httpx.AsyncClient(base_url=base_url) as anonymous,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": f"Bearer {reviewer}"}
        ) as as_reviewer,
        httpx.AsyncClient(
            base_url=base_url, headers={"Authorization": "Bearer not-a-real-token"}
        ) as forged,
    ):
        for method, path, body in ADMIN_ENDPOINTS:
            url = path.format(run_id=run_id)
            no_token = await anonymous.request(method, url, json=body)
            assert_error(no_token, 401)
            bad_token = await forged.request(method, url, json=body)
            assert_error(bad_token, 401)
            refused = await as_reviewer.request(method, url, json=body)
            assert_error(refused, 403, "admin")

    # None of that started, cancelled or changed anything.
    assert len(await workflows_on_queue(stack)) == 1
    assert (await stack.run(run_id))["status"] == "scheduled"
    assert [r.run_id for r in rows(stack, OffboardingRun)] == [run_id]
    assert stack.scim.user_by_email("carol.clark@example.com")["active"] is True


async def test_app_admin_sees_runs_of_the_apps_they_own(stack: Stack) -> None:
    assert stack.scim is not None
    response = await stack.http.post(OFFBOARDINGS, json={"email": "dave.davis@example.com"})
    assert response.status_code == 202, response.text
    run_id = response.json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    owner = stack.token("app-admin", "legal-ops@example.com")  # owns ironclad
    stranger = stack.token("app-admin", "sales-ops@example.com")  # owns nothing
    base_url = str(stack.http.base_url)

    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {owner}"}
    ) as as_owner:
        one = await as_owner.get(f"{OFFBOARDINGS}/{run_id}")
        assert one.status_code == 200, one.text
        listed = await as_owner.get(OFFBOARDINGS)
        assert listed.status_code == 200, listed.text
        assert [r["run_id"] for r in listed.json()] == [run_id]
    async with httpx.AsyncClient(
        base_url=base_url, headers={"Authorization": f"Bearer {stranger}"}
    ) as as_stranger:
        hidden = await as_stranger.get(f"{OFFBOARDINGS}/{run_id}")
        assert hidden.status_code in (403, 404)
