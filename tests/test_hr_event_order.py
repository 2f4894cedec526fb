"""HR events arrive out of order: per person the latest (by ``occurred_at``) wins, and a late
event is recorded and ignored, so a rescind delivered before its termination still holds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

from db.models import OffboardingRun, Person, WebhookEvent, aware, utcnow
from tests.conftest import ScimApp, Stack, StackFactory, steps, terminated

pytestmark = pytest.mark.slow

RESCINDED = "employee.termination_rescinded"


def hr(person: Any, index: int, type_: str, occurred_at: str | None, **more: Any) -> dict[str, Any]:
    """An HR event for the index-th seeded user (id E10xx), happened at ``occurred_at``."""
    evt = terminated(person, index)
    evt["type"] = type_
    if occurred_at is not None:
        evt["occurred_at"] = occurred_at
    return {**evt, **more}


def person_row(stack: Stack, person_id: str) -> Person:
    with stack.session() as session:
        person = session.get(Person, person_id)
        assert person is not None
        return person


def runs_of(stack: Stack, person_id: str) -> list[OffboardingRun]:
    with stack.session() as session:
        query = select(OffboardingRun).where(OffboardingRun.person_id == person_id)
        return list(session.exec(query).all())


def claim_of(stack: Stack, event_id: str) -> WebhookEvent:
    with stack.session() as session:
        claim = session.get(WebhookEvent, event_id)
        assert claim is not None
        return claim


async def ignored_events(stack: Stack, person_id: str) -> list[dict[str, Any]]:
    return [e for e in (await stack.audit(person_id))["events"] if e["kind"] == "hr.event_ignored"]


async def test_a_rescind_delivered_before_its_termination_keeps_the_account(
    stack: Stack,
) -> None:
    assert stack.scim is not None
    gina = stack.scim.users[6]
    rescind = hr(gina, 6, RESCINDED, "2026-03-02")  # date-only: read in OFFBOARD_HR_TIME_ZONE
    first = await stack.webhook(rescind)
    assert first.status_code == 202, first.text
    assert first.json()["run_id"] is None

    late = hr(gina, 6, "employee.terminated", "2026-03-01T17:30:00")  # zone-less
    response = await stack.webhook(late)

    assert response.status_code == 202, response.text
    why = f"older than {rescind['event_id']} of 2026-03-02T00:00:00+00:00"
    assert response.json() == {"run_id": None, "event_id": late["event_id"], "ignored": why}
    assert runs_of(stack, "E1006") == []
    assert person_row(stack, "E1006").status == "active"
    assert stack.scim.user_by_email(gina.email)["active"] is True
    assert stack.scim.quirks.count("PATCH") == 0
    claim = claim_of(stack, late["event_id"])
    assert (claim.status, claim.detail, claim.run_id) == ("stale", why, None)
    [ignored] = await ignored_events(stack, "E1006")
    assert ignored["detail"]["event_id"] == late["event_id"]
    assert ignored["detail"]["why"] == why
    # HR retries it: the same answer as a duplicate, nothing more on the trail.
    again = await stack.webhook(late)
    assert again.status_code == 200, again.text
    assert len(await ignored_events(stack, "E1006")) == 1


async def test_an_undated_rescind_remembers_the_termination_date_it_cancelled(
    stack: Stack,
) -> None:
    """HR sends no occurred_at: the rescind names the termination's date, and the termination
    on that date (whatever its form), delivered after it, is the one it cancelled. Once: HR
    terminating again for that date is a new termination."""
    assert stack.scim is not None
    ivy = stack.scim.users[8]
    rescind = hr(ivy, 8, RESCINDED, None, effective_at="2026-03-02")
    assert (await stack.webhook(rescind)).json()["run_id"] is None

    late = hr(ivy, 8, "employee.terminated", None, effective_at="2026-03-02T15:00:00Z")
    response = await stack.webhook(late)

    assert response.status_code == 202, response.text
    why = f"rescinded by {rescind['event_id']} (termination effective 2026-03-02)"
    assert response.json()["ignored"] == why
    assert runs_of(stack, "E1008") == []
    assert person_row(stack, "E1008").status == "active"
    assert stack.scim.user_by_email(ivy.email)["active"] is True
    [ignored] = await ignored_events(stack, "E1008")
    assert ignored["detail"]["why"] == why

    other = hr(ivy, 8, "employee.terminated", None, effective_at="2026-03-02")
    started = await stack.webhook(other)
    assert started.status_code == 202, started.text
    assert started.json()["run_id"] is not None
    assert person_row(stack, "E1008").status == "terminated"


async def test_an_upsert_leaving_out_a_field_keeps_what_hr_said_before(stack: Stack) -> None:
    assert stack.scim is not None
    kim = stack.scim.users[10]
    first = hr(kim, 10, "employee.upserted", None)
    assert (await stack.webhook(first)).status_code == 202
    partial = hr(kim, 10, "employee.upserted", None)
    partial["employee"] = {"id": "E1010", "email": kim.email, "department": "Finance"}
    assert (await stack.webhook(partial)).status_code == 202

    person = person_row(stack, "E1010")
    assert person.department == "Finance"
    assert person.manager_email == "alice.adams@example.com"
    assert person.name == first["employee"]["name"]


async def test_an_older_termination_after_a_rescind_does_not_restart_the_run(
    stack: Stack,
) -> None:
    assert stack.scim is not None
    hank = stack.scim.users[7]
    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).isoformat()
    start = await stack.webhook(
        hr(
            hank,
            7,
            "employee.terminated",
            (now - timedelta(minutes=5)).isoformat(),
            effective_at=later,
        )
    )
    run_id = start.json()["run_id"]
    await stack.wait_run(run_id, lambda r: r["status"] == "scheduled")
    rescinded = await stack.webhook(hr(hank, 7, RESCINDED, now.isoformat()))
    assert rescinded.json()["run_id"] == run_id
    await stack.wait_run(run_id, lambda r: r["status"] == "cancelled")

    # A resend of the termination from before the rescind, under a new event id.
    resent = hr(hank, 7, "employee.terminated", (now - timedelta(minutes=4)).isoformat())
    response = await stack.webhook(resent)

    assert response.status_code == 202, response.text
    assert response.json()["ignored"].startswith("older than")
    assert [r.run_id for r in runs_of(stack, "E1007")] == [run_id]
    assert person_row(stack, "E1007").status == "active"
    assert stack.scim.user_by_email(hank.email)["active"] is True


async def test_a_stale_upsert_does_not_overwrite_newer_details(stack: Stack) -> None:
    assert stack.scim is not None
    ivy = stack.scim.users[8]
    newer = hr(ivy, 8, "employee.upserted", "2026-03-05T10:00:00Z")
    newer["employee"]["department"] = "Litigation"
    older = hr(ivy, 8, "employee.upserted", "2026-03-04T10:00:00Z")
    older["employee"]["department"] = "Tax"
    assert (await stack.webhook(newer)).status_code == 202

    response = await stack.webhook(older)

    assert response.json()["ignored"] == (
        f"older than {newer['event_id']} of 2026-03-05T10:00:00+00:00"
    )
    person = person_row(stack, "E1008")
    assert person.department == "Litigation"
    assert (person.hr_event_id, person.hr_event_type) == (newer["event_id"], "employee.upserted")
    assert person.hr_event_at is not None
    assert aware(person.hr_event_at) == datetime(2026, 3, 5, 10, tzinfo=UTC)
    # Details are ordered apart from the status: a termination from before that upsert still
    # offboards (losing it would leave a leaver's accounts open), keeping the newer details.
    termination = hr(ivy, 8, "employee.terminated", "2026-03-04T12:00:00Z")
    termination["employee"]["department"] = "Tax"
    started = await stack.webhook(termination)
    assert started.json()["ignored"] is None and started.json()["run_id"] is not None
    person = person_row(stack, "E1008")
    assert (person.status, person.department) == ("terminated", "Litigation")


async def test_times_without_a_zone_are_read_in_the_hr_time_zone(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, hr_time_zone="America/New_York")
    jack = scim_app.users[9]
    evt = hr(jack, 9, "employee.upserted", "2026-03-01")
    assert (await stack.webhook(evt)).status_code == 202
    claim = claim_of(stack, evt["event_id"])
    assert claim.occurred_at is not None
    assert aware(claim.occurred_at) == datetime(2026, 3, 1, 5, tzinfo=UTC)

    termination = hr(jack, 9, "employee.terminated", "2026-03-01T08:00", effective_at="2099-01-02")
    response = await stack.webhook(termination)
    assert response.status_code == 202, response.text
    run = await stack.wait_run(response.json()["run_id"], lambda r: r["status"] == "scheduled")
    assert datetime.fromisoformat(run["effective_at"]) == datetime(2099, 1, 2, 5, tzinfo=UTC)
    person = person_row(stack, "E1009")
    assert person.terminated_at is not None
    assert aware(person.terminated_at) == datetime(2099, 1, 2, 5, tzinfo=UTC)


async def test_an_upsert_saying_active_and_a_rehire_make_a_leaver_active(stack: Stack) -> None:
    assert stack.scim is not None
    kim = stack.scim.users[10]
    done = await stack.webhook(hr(kim, 10, "employee.terminated", "2026-03-01T09:00:00Z"))
    await stack.wait_run(done.json()["run_id"], lambda r: steps(r).get("ironclad") == "verified")
    assert person_row(stack, "E1010").status == "terminated"

    # Before the termination took effect HR still says active: that is no rehire.
    early = hr(kim, 10, "employee.upserted", "2026-03-01T08:00:00Z")
    early["employee"]["status"] = "active"
    assert (await stack.webhook(early)).json()["ignored"] is not None
    assert person_row(stack, "E1010").status == "terminated"

    back = hr(kim, 10, "employee.upserted", "2026-04-01T09:00:00Z")
    back["employee"]["status"] = "Active"
    assert (await stack.webhook(back)).json()["ignored"] is None
    person = person_row(stack, "E1010")
    assert (person.status, person.terminated_at) == ("active", None)

    # A rehire is ordered the same way: one older than the latest status change is ignored.
    gone = await stack.webhook(hr(kim, 10, "employee.terminated", "2026-05-01T09:00:00Z"))
    assert gone.json()["ignored"] is None
    stale = await stack.webhook(hr(kim, 10, "employee.rehired", "2026-04-15T09:00:00Z"))
    assert stale.json()["ignored"] is not None
    assert person_row(stack, "E1010").status == "terminated"
    rehired = await stack.webhook(hr(kim, 10, "employee.rehired", "2026-06-01T09:00:00Z"))
    assert rehired.status_code == 202, rehired.text
    person = person_row(stack, "E1010")
    assert (person.status, person.hr_status_event_id) == ("active", rehired.json()["event_id"])


async def test_concurrent_copies_of_a_late_event_are_ignored_once(stack: Stack) -> None:
    assert stack.scim is not None
    lena = stack.scim.users[11]
    assert (await stack.webhook(hr(lena, 11, RESCINDED, "2026-03-02T00:00:00Z"))).status_code == 202
    late = hr(lena, 11, "employee.terminated", "2026-03-01T00:00:00Z")

    answers = await asyncio.gather(*(stack.webhook(late) for _ in range(6)))

    codes = sorted(a.status_code for a in answers)
    assert codes.count(202) == 1, [a.text for a in answers]
    assert set(codes) <= {200, 202, 409}, codes
    assert len(await ignored_events(stack, "E1011")) == 1
    assert runs_of(stack, "E1011") == []


async def test_a_rescind_waits_for_a_termination_being_handled(stack: Stack) -> None:
    """Its run may be about to start: the rescind is told to come back (409), writing nothing,
    so that on redelivery it finds the run and cancels it."""
    assert stack.scim is not None
    niaj = stack.scim.users[13]
    with stack.session() as session:
        session.add(
            WebhookEvent(
                event_id="evt-in-flight",
                type="employee.terminated",
                person_id="E1013",
                status="claimed",
                claimed_at=utcnow(),
            )
        )
        session.commit()
    rescind = hr(niaj, 13, RESCINDED, None)

    response = await stack.webhook(rescind)

    assert response.status_code == 409, response.text
    assert "a termination of this person is being processed" in response.json()["error"]["message"]
    with stack.session() as session:
        assert session.get(WebhookEvent, rescind["event_id"]) is None
        assert session.get(Person, "E1013") is None
