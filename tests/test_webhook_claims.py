"""An HR event is handled once, whatever crashes or races: the event id is claimed first."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select

from db.models import OffboardingRun, Person, WebhookEvent, utcnow
from db.session import Db
from services.offboardings import offboarding_input, start_offboarding
from tests.conftest import Stack, steps, terminated
from workflows.types import JoinRequest

pytestmark = pytest.mark.slow

DONE = {"ironclad": "verified", "imanage": "waiting_human"}


def runs_of(stack: Stack, person_id: str) -> list[OffboardingRun]:
    with stack.session() as session:
        query = select(OffboardingRun).where(OffboardingRun.person_id == person_id)
        return list(session.exec(query).all())


def stale_claim(stack: Stack, evt: dict[str, Any], token: str, run_id: str | None = None) -> None:
    """What a handler that died mid-way leaves: a claim older than the lease, not done."""
    employee = evt["employee"]
    with stack.session() as session:
        if session.get(Person, employee["id"]) is None:
            session.add(Person(id=employee["id"], email=employee["email"], status="terminated"))
        session.add(
            WebhookEvent(
                event_id=evt["event_id"],
                type=evt["type"],
                person_id=employee["id"],
                run_id=run_id,
                status="claimed",
                start_token=token,
                claimed_at=utcnow() - timedelta(minutes=5),
            )
        )
        session.commit()


async def finish(stack: Stack, run_id: str) -> None:
    """End the run (its manual step would wait for a person otherwise)."""
    response = await stack.http.post(f"/api/v1/offboardings/{run_id}/cancel")
    assert response.status_code in (200, 202), response.text
    await stack.wait_run(run_id, lambda r: r["completed_at"] is not None)


async def redelivery_answers_with(stack: Stack, evt: dict[str, Any], run_id: str) -> None:
    """A redelivery of the event answers 200 with its first run, and starts no other."""
    again = await stack.webhook(evt)
    assert again.status_code == 200, again.text
    assert again.json()["run_id"] == run_id
    assert [r.run_id for r in runs_of(stack, evt["employee"]["id"])] == [run_id]


async def test_concurrent_copies_start_one_run_and_leave_no_trace(stack: Stack) -> None:
    assert stack.scim is not None
    evt = terminated(stack.scim.users[3], 3)

    answers = await asyncio.gather(*(stack.webhook(evt) for _ in range(6)))

    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 1, [a.text for a in answers]
    assert set(codes) <= {200, 202, 409}, codes
    for answer in answers:
        if answer.status_code == 409:
            assert answer.json()["error"]["code"] == "duplicate_event"
    run_id = next(a.json()["run_id"] for a in answers if a.status_code == 202)
    assert {a.json()["run_id"] for a in answers if a.status_code == 200} <= {run_id}
    await stack.wait_run(run_id, lambda r: steps(r) == DONE)
    assert [r.run_id for r in runs_of(stack, "E1003")] == [run_id]
    kinds = [e["kind"] for e in (await stack.audit("E1003"))["events"]]
    assert "run.joined" not in kinds, kinds


async def test_redelivery_of_a_finished_run_answers_with_it(stack: Stack) -> None:
    assert stack.scim is not None
    evt = terminated(stack.scim.users[4], 4)
    first = await stack.webhook(evt)
    assert first.status_code == 202, first.text
    run_id = first.json()["run_id"]
    await stack.wait_run(run_id, lambda r: steps(r) == DONE)
    await finish(stack, run_id)

    await redelivery_answers_with(stack, evt, run_id)


async def test_a_dead_handlers_started_run_is_found_not_started_again(stack: Stack) -> None:
    """The API died after starting the run, before recording it; the run finished meanwhile."""
    assert stack.scim is not None
    evt = terminated(stack.scim.users[5], 5)
    token = "dead-handler-token"
    stale_claim(stack, evt, token)
    db = Db(stack.db_url)
    person = await db.run(lambda session: session.get(Person, "E1005"))
    assert person is not None
    inp = offboarding_input(
        person, reason="resigned", trigger="webhook", actor="hr-webhook"
    ).model_copy(update={"start_token": token})
    join = JoinRequest(source="hr-webhook", event_id=evt["event_id"])
    run_id, _ = await start_offboarding(stack.client, db, stack.settings, inp, join)
    await stack.wait_run(run_id, lambda r: steps(r) == DONE)
    await finish(stack, run_id)

    await redelivery_answers_with(stack, evt, run_id)
    with stack.session() as session:
        claim = session.get(WebhookEvent, evt["event_id"])
        assert claim is not None and claim.status == "done" and claim.run_id == run_id


async def test_a_dead_handlers_claim_without_a_run_is_finished(stack: Stack) -> None:
    """The API died after claiming, before starting: the redelivery does the work."""
    assert stack.scim is not None
    evt = terminated(stack.scim.users[6], 6)
    stale_claim(stack, evt, "never-started")

    redelivered = await stack.webhook(evt)

    assert redelivered.status_code == 200, redelivered.text
    run_id = redelivered.json()["run_id"]
    run = await stack.wait_run(run_id, lambda r: steps(r) == DONE)
    assert run["person"]["id"] == "E1006"
    assert stack.scim.user_by_email(stack.scim.users[6].email)["active"] is False


async def test_a_fresh_claim_of_another_handler_is_409(stack: Stack) -> None:
    assert stack.scim is not None
    evt = terminated(stack.scim.users[7], 7)
    stale_claim(stack, evt, "busy-token")
    with stack.session() as session:
        claim = session.get(WebhookEvent, evt["event_id"])
        assert claim is not None
        claim.claimed_at = utcnow()
        session.add(claim)
        session.commit()

    response = await stack.webhook(evt)

    assert response.status_code == 409, response.text
    assert runs_of(stack, "E1007") == []
