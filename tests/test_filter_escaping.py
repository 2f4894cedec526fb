"""Finding the right account: filter values are escaped, and an ambiguous match is never guessed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import SecretStr
from temporalio.api.enums.v1 import EventType

from connectors.scim import escape_filter_value
from db.models import Person
from devstack.demo_data import MALLORY
from devstack.scim_server import SeedUser
from tests.conftest import ScimApp, Stack, StackFactory, steps, terminated

pytestmark = pytest.mark.slow

OWNERS = ["legal-ops@example.com"]  # ironclad's catalog owners in tests/conftest.py


# -- helpers -----------------------------------------------------------------------------


async def wait_tasks(
    stack: Stack, ready: Any, timeout: float = 60, **params: str
) -> list[dict[str, Any]]:
    """Poll GET /tasks until ``ready(tasks)``; fail with the last list seen."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    tasks: list[dict[str, Any]] = []
    while loop.time() < deadline:
        tasks = await stack.tasks(**params)
        if ready(tasks):
            return tasks
        await asyncio.sleep(0.1)
    raise AssertionError(f"tasks never got ready: {json.dumps(tasks, indent=1, default=str)}")


def open_of_kind(kind: str, run_id: str, app: str) -> Any:
    return lambda tasks: any(
        t["kind"] == kind and t["run_id"] == run_id and t["app"] == app and t["status"] == "open"
        for t in tasks
    )


async def wait_task_settled(stack: Stack, task_id: str, timeout: float = 15) -> None:
    """Wait until the task's workflow has sent its first notice and sits on its reminder timer.

    Cancelling it before then is what test_retry_closes_the_exception_task and
    test_a_retry_sent_as_the_exception_opens_is_not_lost do; the other tests act on a settled
    task so they stay deterministic.
    """
    handle = stack.client.get_workflow_handle(f"task-{task_id}")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"task {task_id} never settled on its reminder timer")


async def complete(stack: Stack, task_id: str, outcome: str, note: str) -> dict[str, Any]:
    response = await stack.http.post(
        f"/api/v1/tasks/{task_id}/complete", json={"outcome": outcome, "note": note}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def active(stack: Stack, scim_id: str) -> bool:
    assert stack.scim is not None
    user = stack.scim.server.get_user(scim_id)
    assert user is not None, scim_id
    return bool(user.get("active"))


# -- (a) the escaping itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "quoted"),
    [
        ("alice.adams@example.com", '"alice.adams@example.com"'),
        ('a"b', '"a\\"b"'),
        ("a\\b", '"a\\\\b"'),
        ('a\\"b', '"a\\\\\\"b"'),  # an escaped quote in the input cannot close the literal
        ('"', '"\\""'),
        ("\\", '"\\\\"'),
        ("", '""'),
        (MALLORY, '"mallory\\" or emails.value co \\"@example.com"'),
    ],
)
def test_escape_filter_value(value: str, quoted: str) -> None:
    assert escape_filter_value(value) == quoted


@pytest.mark.parametrize("value", [MALLORY, 'x" or userName pr or "', "tail\\", '\\"" or ""="'])
def test_escaped_value_is_one_literal(value: str) -> None:
    quoted = escape_filter_value(value)
    assert quoted.startswith('"') and quoted.endswith('"')
    inner = quoted[1:-1]
    # Reading the literal back (RFC 7644 3.4.2.2 / JSON string rules) gives the value,
    # and no unescaped quote sits inside it.
    assert json.loads(quoted) == value
    i = 0
    while i < len(inner):
        assert inner[i] != '"', f"unescaped quote at {i} in {quoted}"
        i += 2 if inner[i] == "\\" else 1


# -- (b) Mallory --------------------------------------------------------------------------


async def test_offboarding_mallory_touches_only_mallory(stack: Stack) -> None:
    assert stack.scim is not None
    scim = stack.scim
    mallory = scim.users[12]
    assert mallory.email == MALLORY
    mallory_id = scim.ids[mallory.user_name]
    others = {u.user_name: scim.ids[u.user_name] for u in scim.users if u is not mallory}
    groups_before = {name: scim.server.groups_of(i) for name, i in others.items()}
    assert scim.server.groups_of(mallory_id), "Mallory should start in groups"

    # The trust boundary refuses her address outright (not an email) ...
    refused = await stack.webhook(terminated(mallory, 12))
    assert refused.status_code == 422, refused.text
    assert "employee.email" in refused.text
    # ... so the connector's escaping is the second line: reach it with a directory row that
    # predates the boundary's check, offboarded by employee id.
    with stack.session() as session:
        session.add(Person(id="E1012", email=MALLORY, name="Mallory Moore"))
        session.commit()
    response = await stack.http.post("/api/v1/offboardings", json={"employee_id": "E1012"})
    assert response.status_code == 202, response.text
    run = await stack.wait_run(
        response.json()["run_id"],
        lambda r: steps(r) == {"ironclad": "verified", "imanage": "waiting_human"},
    )

    ironclad = next(a for a in run["apps"] if a["app"] == "ironclad")
    assert ironclad["account"] == MALLORY
    assert not active(stack, mallory_id)
    assert scim.server.groups_of(mallory_id) == []
    still_active = {name: active(stack, i) for name, i in others.items()}
    assert still_active == dict.fromkeys(others, True)
    assert {name: scim.server.groups_of(i) for name, i in others.items()} == groups_before

    user_filters = scim.quirks.sent_filters("/Users")
    assert 'emails.value eq "mallory\\" or emails.value co \\"@example.com"' in user_filters
    assert not any(MALLORY in f for f in user_filters), user_filters
    # Every write went to her: the user PATCH by her id, group PATCHes naming only her.
    writes = [(m, t, b) for m, t, _, b in scim.quirks.requests if m in ("PATCH", "PUT", "DELETE")]
    assert writes
    for method, target, body in writes:
        if "/Users/" in target:
            assert target.rstrip("/").endswith(f"/Users/{mallory_id}"), (method, target)
        else:
            assert "/Groups/" in target, target
            for other_id in others.values():
                assert other_id not in body.decode(), (target, body)


# -- (c), (d) an ambiguous match ------------------------------------------------------------


async def _ambiguous_run(stack: Stack) -> tuple[str, str, str]:
    """Seed a second account with Dave's email (other case, other userName); terminate Dave.

    Returns (run_id, dave's id, the duplicate's id) once the exception and iManage tasks are open.
    """
    assert stack.scim is not None
    dave = stack.scim.users[3]
    dave_id = stack.scim.ids[dave.user_name]
    twin = SeedUser("d.davis.legacy@example.com", dave.email.upper(), "Dave", "Davis")
    twin_id = stack.scim.server.seed([twin])[twin.user_name]

    response = await stack.webhook(terminated(dave, 3))
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    tasks = await wait_tasks(
        stack,
        lambda ts: (
            open_of_kind("exception", run_id, "ironclad")(ts)
            and open_of_kind("manual_step", run_id, "imanage")(ts)
        ),
    )
    for task in tasks:
        await wait_task_settled(stack, task["id"])
    return run_id, dave_id, twin_id


async def test_ambiguous_match_fails_the_step_and_asks_a_person(stack: Stack) -> None:
    assert stack.scim is not None
    run_id, dave_id, twin_id = await _ambiguous_run(stack)

    run = await stack.wait_run(
        run_id, lambda r: steps(r) == {"ironclad": "failed", "imanage": "waiting_human"}
    )
    assert run["status"] == "waiting_human"
    detail = next(a for a in run["apps"] if a["app"] == "ironclad")["detail"]
    assert "ambiguous" in detail.lower()
    assert dave_id in detail and twin_id in detail
    [exception] = [t for t in await stack.tasks(status="open") if t["kind"] == "exception"]
    assert exception["run_id"] == run_id and exception["app"] == "ironclad"
    assert exception["assignees"] == OWNERS
    assert exception["person"]["id"] == "E1003"
    assert "ambiguous" in exception["instructions"].lower()
    # Never guessed: both accounts untouched, no write sent.
    assert active(stack, dave_id) and active(stack, twin_id)
    assert stack.scim.quirks.count("PATCH") == stack.scim.quirks.count("PUT") == 0
    assert stack.scim.quirks.count("DELETE") == 0

    # The owner removes the stale duplicate, then asks for a retry.
    removed = stack.scim.server.client.delete(f"/Users/{twin_id}")
    assert removed.status_code == 204, removed.text
    retry = await stack.http.post(f"/api/v1/offboardings/{run_id}/steps/ironclad/retry")
    assert retry.status_code == 202, retry.text

    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
    assert not active(stack, dave_id)
    assert stack.scim.server.groups_of(dave_id) == []
    assert all(
        active(stack, stack.scim.ids[u.user_name])
        for u in stack.scim.users
        if u.user_name != "dave.davis@example.com"
    )
    # The run still waits on iManage. (Whether the exception task closes: see
    # test_retry_closes_the_exception_task.)
    assert run["status"] == "waiting_human"
    [manual] = [t for t in await stack.tasks(status="open") if t["kind"] == "manual_step"]
    assert manual["app"] == "imanage" and manual["run_id"] == run_id

    await complete(stack, manual["id"], "done", "disabled in Control Center")
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert steps(run) == {"ironclad": "verified", "imanage": "done"}

    again = await stack.http.post(f"/api/v1/offboardings/{run_id}/steps/ironclad/retry")
    assert again.status_code == 409, again.text


async def test_exception_resolved_by_hand_ends_the_step_done(stack: Stack) -> None:
    assert stack.scim is not None
    run_id, dave_id, twin_id = await _ambiguous_run(stack)
    [exception] = [t for t in await stack.tasks(status="open") if t["kind"] == "exception"]
    [manual] = [t for t in await stack.tasks(status="open") if t["kind"] == "manual_step"]

    done = await complete(stack, exception["id"], "done", "deactivated both by hand in Ironclad")
    assert done["status"] == "done"

    run = await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "done")
    step = next(a for a in run["apps"] if a["app"] == "ironclad")
    assert "deactivated both by hand in Ironclad" in step["detail"]
    assert run["status"] == "waiting_human"  # iManage is still open
    # The tool itself still guessed nothing.
    assert active(stack, dave_id) and active(stack, twin_id)

    await complete(stack, manual["id"], "done", "disabled in Control Center")
    run = await stack.wait_run(run_id, lambda r: r["status"] == "completed")
    assert steps(run) == {"ironclad": "done", "imanage": "done"}
    kinds = [e["kind"] for e in (await stack.audit("E1003"))["events"]]
    assert "step.failed" in kinds and kinds[-1] == "run.completed"


async def test_exception_needs_a_note(stack: Stack) -> None:
    run_id, _, _ = await _ambiguous_run(stack)
    [exception] = [t for t in await stack.tasks(status="open") if t["kind"] == "exception"]
    response = await stack.http.post(
        f"/api/v1/tasks/{exception['id']}/complete", json={"outcome": "done", "note": "  "}
    )
    assert response.status_code in (409, 422), response.text
    assert "note" in response.json()["error"]["message"].lower()
    run = await stack.run(run_id)
    assert steps(run)["ironclad"] == "failed"
    assert await wait_tasks(stack, open_of_kind("exception", run_id, "ironclad"))


class HeldChatWebhook:
    """A Slack-compatible webhook that holds every delivery until released (no sleeps)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.received = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> str:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hook"

    async def __aexit__(self, *_: object) -> None:
        self.release.set()
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            await reader.readexactly(length)
            self.received += 1
            await self.release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def test_retry_closes_the_exception_task(make_stack: StackFactory, scim_app: ScimApp) -> None:
    hook = HeldChatWebhook()
    async with hook as url:
        stack = await make_stack(scim_app, slack_webhook_url=SecretStr(url))
        dave = scim_app.users[3]
        twin = SeedUser("d.davis.legacy@example.com", dave.email.upper(), "Dave", "Davis")
        twin_id = scim_app.server.seed([twin])[twin.user_name]
        response = await stack.webhook(terminated(dave, 3))
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        [exception] = [
            t
            for t in await wait_tasks(stack, open_of_kind("exception", run_id, "ironclad"))
            if t["kind"] == "exception"
        ]

        # The owner fixes the app and retries while the task's chat notice is still in flight.
        removed = scim_app.server.client.delete(f"/Users/{twin_id}")
        assert removed.status_code == 204, removed.text
        retry = await stack.http.post(f"/api/v1/offboardings/{run_id}/steps/ironclad/retry")
        assert retry.status_code == 202, retry.text
        hook.release.set()

        await stack.wait_run(run_id, lambda r: steps(r).get("ironclad") == "verified")
        # The retry made the exception moot: it must leave the inbox.
        await wait_tasks(
            stack, lambda ts: any(t["id"] == exception["id"] and t["status"] != "open" for t in ts)
        )


async def _retry_as_soon_as_failed(stack: Stack, index: int) -> str:
    """Terminate a person with a duplicate account; send the first retry the step accepts."""
    assert stack.scim is not None
    person = stack.scim.users[index]
    twin = SeedUser(f"legacy-{index}@example.com", person.email.upper(), "Twin", "Legacy")
    stack.scim.server.seed([twin])
    response = await stack.webhook(terminated(person, index))
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while True:
        retry = await stack.http.post(f"/api/v1/offboardings/{run_id}/steps/ironclad/retry")
        if retry.status_code == 202:
            return run_id
        assert retry.status_code == 409, retry.text
        assert loop.time() < deadline, "the step never became retryable"


async def test_a_retry_sent_as_the_exception_opens_is_not_lost(stack: Stack) -> None:
    """The retry lands while the exception task is still being created; it must still close.

    The duplicates stay, so each second attempt fails again and opens a new exception. What
    matters: the first one leaves the inbox and the run goes on. Before the fix, a cancel that
    landed while the task signalled its parent was dropped (the task lived on and the run
    waited for it forever), or the task's late "open" write reopened it after it was cancelled.
    Five people at once, so some retry hits those moments in most runs of the old code.
    """
    people = range(3, 8)
    run_ids = await asyncio.gather(*(_retry_as_soon_as_failed(stack, i) for i in people))

    def exceptions(tasks: list[dict[str, Any]], run_id: str) -> list[dict[str, Any]]:
        mine = (t for t in tasks if t["kind"] == "exception" and t["run_id"] == run_id)
        return sorted(mine, key=lambda t: t["due_at"])

    await wait_tasks(
        stack,
        lambda ts: all(
            [t["status"] for t in exceptions(ts, r)] == ["cancelled", "open"] for r in run_ids
        ),
    )
    for index in people:
        kinds = [e["kind"] for e in (await stack.audit(f"E{1000 + index}"))["events"]]
        assert kinds.count("step.retry_requested") == 1
        assert kinds.count("step.failed") == 2
        assert kinds.count("task.cancelled") == 1
