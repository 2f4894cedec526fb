"""The HR webhook refuses what it cannot trust, and never offboards twice for one termination."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.signature import sign
from db.models import AuditEvent, OffboardingRun, Person, WebhookEvent
from tests.conftest import WEBHOOK_SECRET, ScimApp, Stack, StackFactory, steps, terminated

pytestmark = pytest.mark.slow

WEBHOOK = "/api/v1/webhooks/hr"


# -- helpers -----------------------------------------------------------------------------


async def offboarding_workflows(stack: Stack, workflow_type: str | None = None) -> list[Any]:
    """Workflow executions the Temporal server knows on this stack's task queue."""
    query = f'TaskQueue = "{stack.settings.task_queue}"'
    if workflow_type is not None:
        query += f' AND WorkflowType = "{workflow_type}"'
    return [execution async for execution in stack.client.list_workflows(query)]


async def wait_offboarding_workflows(stack: Stack, count: int, timeout: float = 15) -> list[Any]:
    """Visibility is eventually consistent: wait until `count` OffboardingWorkflows are listed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    found: list[Any] = []
    while loop.time() < deadline:
        found = await offboarding_workflows(stack, "OffboardingWorkflow")
        if len(found) >= count:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} OffboardingWorkflow(s), saw {len(found)}")


async def current_run_id(stack: Stack, workflow_id: str) -> str | None:
    """The latest run of a workflow id, read from the server (strongly consistent)."""
    description = await stack.client.get_workflow_handle(workflow_id).describe()
    return description.run_id


async def wait_open_tasks(stack: Stack, count: int, timeout: float = 15) -> list[dict[str, Any]]:
    """The task row is written by the child workflow, just after the step says waiting_human."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tasks: list[dict[str, Any]] = []
    while loop.time() < deadline:
        tasks = await stack.tasks(status="open")
        if len(tasks) >= count:
            return tasks
        await asyncio.sleep(0.1)
    raise AssertionError(f"expected {count} open task(s), saw {tasks}")


def row_count(stack: Stack, model: Any) -> int:
    with stack.session() as session:
        return len(session.exec(select(model)).all())


async def wait_audit_kind(
    stack: Stack, person_id: str, kind: str, timeout: float = 15
) -> list[dict[str, Any]]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    kinds: list[str] = []
    while loop.time() < deadline:
        response = await stack.http.get(f"/api/v1/people/{person_id}/audit")
        if response.status_code == 200:
            events: list[dict[str, Any]] = response.json()["events"]
            kinds = [e["kind"] for e in events]
            matching = [e for e in events if e["kind"] == kind]
            if matching:
                return matching
        await asyncio.sleep(0.1)
    raise AssertionError(f"no {kind} audit event for {person_id}; saw {kinds}")


def employee(person_id: str, email: str) -> dict[str, Any]:
    return {
        "id": person_id,
        "email": email,
        "name": "Test Person",
        "manager_email": "alice.adams@example.com",
        "department": "Legal",
    }


def event(
    person_id: str, email: str, type_: str = "employee.terminated", **extra: Any
) -> dict[str, Any]:
    return {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "type": type_,
        "employee": employee(person_id, email),
        "reason": "resigned",
        **extra,
    }


# -- rejections ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """One bad delivery: how to build it, and what the sender must be told."""

    build: Callable[[dict[str, Any]], tuple[bytes, str | None]]
    status: int
    mentions: tuple[str, ...]
    fields: tuple[str, ...] = ()


def _signed(body: bytes, secret: str = WEBHOOK_SECRET, age: int = 0) -> tuple[bytes, str]:
    return body, sign(secret, body, int(time.time()) - age)


def _without(event_: dict[str, Any], field: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(event_))
    del copy["employee"][field]
    return copy


REJECTIONS: dict[str, Rejection] = {
    "missing signature header": Rejection(
        lambda e: (json.dumps(e).encode(), None), 401, ("missing", "x-offboard-signature")
    ),
    "bad signature (wrong secret)": Rejection(
        lambda e: _signed(json.dumps(e).encode(), secret="whsec-not-ours"),
        401,
        ("does not match",),
    ),
    "timestamp older than 300 s": Rejection(
        lambda e: _signed(json.dumps(e).encode(), age=400), 401, ("timestamp", "300")
    ),
    "timestamp from the future beyond 300 s": Rejection(
        lambda e: _signed(json.dumps(e).encode(), age=-400), 401, ("timestamp", "300")
    ),
    "malformed JSON body": Rejection(
        lambda e: _signed(json.dumps(e).encode()[:-7]), 422, ("json",), ("body",)
    ),
    "valid JSON missing employee.email": Rejection(
        lambda e: _signed(json.dumps(_without(e, "email")).encode()),
        422,
        ("employee.email",),
        ("employee.email",),
    ),
    "unknown type": Rejection(
        lambda e: _signed(json.dumps({**e, "type": "employee.promoted"}).encode()),
        422,
        ("type",),
        ("type",),
    ),
}


@pytest.mark.parametrize("case", list(REJECTIONS.values()), ids=list(REJECTIONS))
async def test_rejected_delivery_starts_nothing(stack: Stack, case: Rejection) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]
    person_id = f"EREJ-{uuid.uuid4().hex[:10]}"
    body, signature = case.build(event(person_id, dave.email))
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Offboard-Signature"] = signature

    response = await stack.http.post(WEBHOOK, content=body, headers=headers)

    assert response.status_code == case.status, response.text
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    assert error["code"] and error["message"]
    told = (error["message"] + " " + json.dumps(error["details"])).lower()
    for word in case.mentions:
        assert word in told, f"{word!r} not in {error}"
    if case.fields:
        named = {d["field"] for d in error["details"]}
        assert set(case.fields) <= named, error["details"]

    # Nothing happened: no workflow on the server, no rows, the account untouched.
    assert await offboarding_workflows(stack) == []
    with pytest.raises(RPCError) as missing:
        await current_run_id(stack, f"offboard-{person_id}")
    assert missing.value.status == RPCStatusCode.NOT_FOUND
    for model in (WebhookEvent, OffboardingRun, Person, AuditEvent):
        assert row_count(stack, model) == 0, model.__name__
    assert stack.scim.user_by_email(dave.email)["active"] is True
    assert stack.scim.quirks.count("PATCH") == 0


async def test_signature_header_without_any_value_is_401(stack: Stack) -> None:
    body = json.dumps(event("EREJ-empty", "x@example.com")).encode()
    for header in ("", "t=,v1=", f"t={int(time.time())}", "v1=abc"):
        response = await stack.webhook(body, header=header)
        assert response.status_code == 401, (header, response.text)
        assert response.json()["error"]["code"]
    assert await offboarding_workflows(stack) == []
    assert row_count(stack, WebhookEvent) == 0


# -- idempotency ----------------------------------------------------------------------------


async def _live_run(stack: Stack, index: int, **extra: Any) -> tuple[dict[str, Any], str]:
    """Terminate demo person `index` by webhook; return (event, run_id) once the run is live."""
    assert stack.scim is not None
    evt = {**terminated(stack.scim.users[index], index), **extra}
    response = await stack.webhook(evt)
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return evt, run_id


async def test_replayed_event_returns_same_run_and_starts_nothing(stack: Stack) -> None:
    assert stack.scim is not None
    evt, run_id = await _live_run(stack, 3)
    await stack.wait_run(
        run_id, lambda r: steps(r) == {"ironclad": "verified", "imanage": "waiting_human"}
    )
    await wait_open_tasks(stack, 1)
    [first] = await wait_offboarding_workflows(stack, 1)
    assert first.run_id == run_id

    replay = await stack.webhook(evt)  # same event_id, freshly signed, as HR retries do

    assert replay.status_code == 200, replay.text
    assert replay.json()["run_id"] == run_id
    assert await current_run_id(stack, "offboard-E1003") == run_id
    assert [w.run_id for w in await offboarding_workflows(stack, "OffboardingWorkflow")] == [run_id]
    assert row_count(stack, WebhookEvent) == 1
    assert row_count(stack, OffboardingRun) == 1
    # Only one manual task, not one per delivery.
    assert len(await stack.tasks(status="open")) == 1


async def test_second_termination_joins_the_live_run(stack: Stack) -> None:
    assert stack.scim is not None
    _, run_id = await _live_run(stack, 3)
    await stack.wait_run(run_id, lambda r: steps(r).get("imanage") == "waiting_human")
    await wait_open_tasks(stack, 1)
    await wait_offboarding_workflows(stack, 1)

    again = terminated(stack.scim.users[3], 3)  # a new event_id for the same person
    response = await stack.webhook(again)

    assert response.status_code == 202, response.text
    assert response.json()["run_id"] == run_id
    assert await current_run_id(stack, "offboard-E1003") == run_id
    assert [w.run_id for w in await offboarding_workflows(stack, "OffboardingWorkflow")] == [run_id]
    assert row_count(stack, OffboardingRun) == 1
    assert row_count(stack, WebhookEvent) == 2
    assert len(await stack.tasks(status="open")) == 1
    # The trail shows the second termination was received and folded into this run.
    [joined] = await wait_audit_kind(stack, "E1003", "run.joined")
    assert joined["detail"]["event_id"] == again["event_id"]
    assert (await stack.run(run_id))["status"] == "waiting_human"


# -- secrets and rescinds -----------------------------------------------------------------


async def test_either_of_two_webhook_secrets_verifies(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    old, new = "whsec-old-2f9a", "whsec-new-77c1"
    stack = await make_stack(scim_app, webhook_secrets=[SecretStr(old), SecretStr(new)])
    erin = scim_app.users[4]

    upsert = event("E1004", erin.email, "employee.upserted")
    accepted_old = await stack.webhook(upsert, secret=old)
    assert accepted_old.status_code == 202, accepted_old.text

    response = await stack.webhook(terminated(erin, 4), secret=new)
    assert response.status_code == 202, response.text
    run = await stack.wait_run(
        response.json()["run_id"], lambda r: steps(r).get("ironclad") == "verified"
    )
    assert run["person"]["id"] == "E1004"
    assert scim_app.user_by_email(erin.email)["active"] is False

    stale = await stack.webhook(event("E1005", scim_app.users[5].email), secret=WEBHOOK_SECRET)
    assert stale.status_code == 401, stale.text
    assert scim_app.user_by_email(scim_app.users[5].email)["active"] is True


async def test_rescinded_termination_cancels_a_waiting_run(stack: Stack) -> None:
    assert stack.scim is not None
    frank = stack.scim.users[5]
    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    _, run_id = await _live_run(stack, 5, effective_at=later)
    await stack.wait_run(
        run_id,
        lambda r: (
            r["status"] == "scheduled" and steps(r) == {"ironclad": "pending", "imanage": "pending"}
        ),
    )

    rescind = terminated(frank, 5)
    rescind["type"] = "employee.termination_rescinded"
    response = await stack.webhook(rescind)

    assert response.status_code == 202, response.text
    assert response.json()["run_id"] == run_id
    run = await stack.wait_run(run_id, lambda r: r["status"] == "cancelled")
    assert steps(run) == {"ironclad": "cancelled", "imanage": "cancelled"}
    assert run["completed_at"] is not None
    assert stack.scim.user_by_email(frank.email)["active"] is True
    assert stack.scim.quirks.count("PATCH") == 0
    assert await stack.tasks(status="open") == []
    description = await stack.client.get_workflow_handle("offboard-E1005", run_id=run_id).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    with stack.session() as session:
        person = session.get(Person, "E1005")
        assert person is not None and person.status == "active"


async def test_rescind_without_a_live_run_starts_nothing(stack: Stack) -> None:
    assert stack.scim is not None
    rescind = terminated(stack.scim.users[6], 6)
    rescind["type"] = "employee.termination_rescinded"
    response = await stack.webhook(rescind)
    assert response.status_code == 202, response.text
    assert response.json()["run_id"] is None
    assert await offboarding_workflows(stack) == []
    assert row_count(stack, OffboardingRun) == 0
