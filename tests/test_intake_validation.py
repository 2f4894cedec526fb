"""Attack inputs on both intake paths: each gets a precise 4xx in the JSON error format,
and nothing is written or started for it."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import select

from api.signature import sign
from db.models import AuditEvent, OffboardingRun, Person, WebhookEvent
from tests.conftest import WEBHOOK_SECRET, ScimApp, Stack, StackFactory, steps

pytestmark = pytest.mark.slow

WEBHOOK = "/api/v1/webhooks/hr"
OFFBOARDINGS = "/api/v1/offboardings"


def hr_event(**employee: Any) -> dict[str, Any]:
    person = {"id": f"EATK-{uuid.uuid4().hex[:8]}", "email": "mallory@example.com", **employee}
    return {
        "event_id": f"evt-{uuid.uuid4().hex}",
        "type": "employee.terminated",
        "employee": person,
        "reason": "test",
    }


def signed(body: bytes) -> dict[str, str]:
    return {"X-Offboard-Signature": sign(WEBHOOK_SECRET, body)}


@dataclass(frozen=True)
class Attack:
    """One hostile request: its path, body, extra headers, and the answer it must get."""

    path: str
    body: bytes
    status: int
    headers: dict[str, str]
    mentions: str = ""
    # Signed when sent, not when the test is collected: a slow run must not age it past the
    # signature window and get a 401 instead of the answer under test.
    signed: bool = False

    def send_headers(self) -> dict[str, str]:
        return {**self.headers, **(signed(self.body) if self.signed else {})}


def webhook(event: dict[str, Any], status: int = 422, mentions: str = "") -> Attack:
    body = json.dumps(event).encode()
    return Attack(WEBHOOK, body, status, {"Content-Type": "application/json"}, mentions, True)


def admin(payload: dict[str, Any], status: int = 422, mentions: str = "") -> Attack:
    body = json.dumps(payload).encode()
    return Attack(OFFBOARDINGS, body, status, {"Content-Type": "application/json"}, mentions)


def raw(path: str, body: bytes, content_type: str, status: int, sign_it: bool = True) -> Attack:
    return Attack(path, body, status, {"Content-Type": content_type}, signed=sign_it)


FIVE_MB = json.dumps({**hr_event(), "reason": "x" * (5 * 1024 * 1024)}).encode()
EVENT = json.dumps(hr_event()).encode()

ATTACKS: dict[str, Attack] = {
    "5 MB signed body": raw(WEBHOOK, FIVE_MB, "application/json", 413),
    "2,000-char employee id": webhook(hr_event(id="E" * 2000), mentions="employee.id"),
    "employee id ../x": webhook(hr_event(id="../x"), mentions="employee.id"),
    "employee id a/b": webhook(hr_event(id="a/b"), mentions="employee.id"),
    "empty employee id": webhook(hr_event(id=""), mentions="employee.id"),
    "employee id with a space inside": webhook(hr_event(id="E 1"), mentions="employee.id"),
    "empty email": webhook(hr_event(email=""), mentions="employee.email"),
    "not an email": webhook(hr_event(email="not-an-email"), mentions="employee.email"),
    "email with two @": webhook(hr_event(email="a@b@example.com"), mentions="employee.email"),
    "300-char email": webhook(hr_event(email="a" * 290 + "@example.com"), mentions="email"),
    "empty event id": webhook({**hr_event(), "event_id": ""}, mentions="event_id"),
    "event id ../x": webhook({**hr_event(), "event_id": "../x"}, mentions="event_id"),
    "unparseable effective_at": webhook(
        {**hr_event(), "effective_at": "next tuesday"}, mentions="effective_at"
    ),
    "unparseable occurred_at": webhook(
        {**hr_event(), "occurred_at": "yesterday"}, mentions="occurred_at"
    ),
    "occurred_at at the calendar's end": webhook(
        {**hr_event(), "occurred_at": "9999-12-31T23:00:00-05:00"}, mentions="occurred_at"
    ),
    "effective_at as a number (Unix seconds)": webhook(
        {**hr_event(), "effective_at": 1766361600}, mentions="effective_at"
    ),
    "effective_at as digits that are no date": webhook(
        {**hr_event(), "effective_at": "2026122"}, mentions="effective_at"
    ),
    "occurred_at in the future": webhook(
        {**hr_event(), "occurred_at": "2036-01-01T00:00:00Z"}, mentions="occurred_at"
    ),
    "unknown event type": webhook({**hr_event(), "type": "employee.promoted"}, mentions="type"),
    "webhook as text/plain": raw(WEBHOOK, EVENT, "text/plain", 415),
    "webhook form-encoded": raw(
        WEBHOOK, b"event_id=x&type=employee.terminated", "application/x-www-form-urlencoded", 415
    ),
    "webhook without a content type": raw(WEBHOOK, EVENT, "", 415),
    "admin bad email": admin({"email": "not-an-email"}, mentions="email"),
    "admin empty email": admin({"email": ""}, mentions="email"),
    "admin employee id a/b": admin({"employee_id": "a/b"}, mentions="employee_id"),
    "admin 2,000-char employee id": admin({"employee_id": "E" * 2000}, mentions="employee_id"),
    "admin unparseable effective_at": admin(
        {"email": "x@example.com", "effective_at": "soon"}, mentions="effective_at"
    ),
    "admin effective_at in year 1": admin(
        {"email": "x@example.com", "effective_at": "0001-01-01"}, mentions="effective_at"
    ),
    "admin 2 MB body": admin({"email": "x@example.com", "reason": "x" * 2_000_000}, 413),
    "admin form-encoded": raw(
        OFFBOARDINGS, b"email=x%40example.com", "application/x-www-form-urlencoded", 415, False
    ),
    "admin text/plain": raw(OFFBOARDINGS, b'{"email": "x@example.com"}', "text/plain", 415, False),
    "cancel form-encoded": raw(
        f"{OFFBOARDINGS}/some-run/cancel", b"x=1", "application/x-www-form-urlencoded", 415, False
    ),
}


def rows(stack: Stack) -> dict[str, int]:
    with stack.session() as session:
        return {
            m.__name__: len(session.exec(select(m)).all())
            for m in (WebhookEvent, OffboardingRun, Person, AuditEvent)
        }


@pytest.mark.parametrize("attack", list(ATTACKS.values()), ids=list(ATTACKS))
async def test_attack_is_refused_and_writes_nothing(stack: Stack, attack: Attack) -> None:
    response = await stack.http.post(
        attack.path, content=attack.body, headers=attack.send_headers()
    )

    assert response.status_code == attack.status, response.text[:500]
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}
    told = f"{error['message']} {json.dumps(error['details'])}"
    assert attack.mentions in told, error
    assert rows(stack) == {"WebhookEvent": 0, "OffboardingRun": 0, "Person": 0, "AuditEvent": 0}


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/offboardings?offset=9223372036854775808",
        "/api/v1/offboardings?offset=1000001",
        "/api/v1/offboardings?offset=-1",
        "/api/v1/offboardings?limit=100000",
        "/api/v1/tasks?offset=9223372036854775808",
        "/api/v1/campaigns/c-1/items?offset=9223372036854775808",
    ],
)
async def test_huge_offsets_are_422(stack: Stack, path: str) -> None:
    response = await stack.http.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "validation_error"


async def test_email_is_trimmed_and_lower_cased(stack: Stack) -> None:
    assert stack.scim is not None
    dave = stack.scim.users[3]
    evt = hr_event(id="E1003", email=f"  {dave.email.upper()} ")

    response = await stack.webhook(evt)

    assert response.status_code == 202, response.text
    run = await stack.wait_run(
        response.json()["run_id"], lambda r: steps(r).get("ironclad") == "verified"
    )
    assert run["person"]["email"] == dave.email
    assert stack.scim.user_by_email(dave.email)["active"] is False


async def test_a_zone_less_effective_at_is_read_in_the_hr_time_zone(
    make_stack: StackFactory, scim_app: ScimApp
) -> None:
    stack = await make_stack(scim_app, hr_time_zone="America/New_York")
    later = datetime.now(UTC).year + 1
    evt = {**hr_event(id="E1004", email=scim_app.users[4].email), "effective_at": f"{later}-06-01"}
    hr = await stack.webhook(evt)
    assert hr.status_code == 202, hr.text
    admin_start = await stack.http.post(
        OFFBOARDINGS,
        json={"email": scim_app.users[5].email, "effective_at": f"{later}-06-01T09:00:00"},
    )
    assert admin_start.status_code == 202, admin_start.text

    by_webhook = await stack.run(hr.json()["run_id"])
    by_admin = await stack.run(admin_start.json()["run_id"])

    assert datetime.fromisoformat(by_webhook["effective_at"]) == datetime(
        later, 6, 1, 4, tzinfo=UTC
    )
    assert datetime.fromisoformat(by_admin["effective_at"]) == datetime(later, 6, 1, 13, tzinfo=UTC)


async def test_a_stalled_body_is_cut_off(make_stack: StackFactory, scim_app: ScimApp) -> None:
    stack = await make_stack(scim_app, body_read_timeout_seconds=1)
    reader, writer = await asyncio.open_connection("127.0.0.1", stack.settings.port)
    head = (
        f"POST {WEBHOOK} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: 1000\r\nX-Offboard-Signature: t=1,v1=00\r\n\r\n"
    )
    writer.write(head.encode() + b'{"event_id": "half')
    await writer.drain()

    answer = await asyncio.wait_for(reader.read(4096), timeout=30)

    writer.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert rows(stack)["WebhookEvent"] == 0
